#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "common/asio.hpp"
#include "obs/http_server.hpp"
#include "obs/metrics.hpp"

namespace obs_http_test {

namespace net = keyrot::net;
using tcp = net::ip::tcp;
using keyrot::obs::http_server;

namespace {

struct reply {
    int status = 0;
    std::string head;
    std::string body;
};

// A blocking client: one request, Connection: close, read to EOF.
reply get(unsigned short port, const std::string& raw_request) {
    net::io_context io;
    tcp::socket s(io);
    s.connect({net::ip::make_address("127.0.0.1"), port});
    net::write(s, net::buffer(raw_request));
    std::string data;
    boost::system::error_code ec;
    net::read(s, net::dynamic_buffer(data), ec);
    reply r;
    auto split = data.find("\r\n\r\n");
    r.head = data.substr(0, split);
    if (split != std::string::npos) r.body = data.substr(split + 4);
    if (data.size() > 12) r.status = std::stoi(data.substr(9, 3));
    return r;
}

reply get_path(unsigned short port, const std::string& path, const std::string& method = "GET") {
    return get(port, method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
}

struct obs_http_server : ::testing::Test {
    net::io_context io;
    std::shared_ptr<prometheus::Registry> reg = std::make_shared<prometheus::Registry>();
    keyrot::obs::metrics m{reg, {.version = "9.9.9"}};
    std::atomic<bool> ready{false};
    std::unique_ptr<http_server> server;
    std::thread runner;

    void start(keyrot::obs::http_server_options opt = {}) {
        opt.listen = "127.0.0.1:0";
        server = std::make_unique<http_server>(
            io, reg,
            [this]() -> std::pair<bool, std::string> {
                if (ready) return {true, ""};
                return {false, "no pass has completed yet"};
            },
            opt);
        server->start();
        runner = std::thread([this] { io.run(); });
    }
    // Waits until the server serves `n` connections (accept runs on the io thread).
    void wait_for_connections(std::size_t n) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (server->connections() != n && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ASSERT_EQ(server->connections(), n);
    }
    void TearDown() override {
        if (server) net::post(io, [this] { server->stop(); });
        if (runner.joinable()) runner.join();  // run() returns: stop() left nothing pending
    }
};

}  // namespace

TEST(obs_http, parse_listen) {
    using keyrot::obs::parse_listen;
    EXPECT_EQ(parse_listen("127.0.0.1:9464"),
              (std::pair<std::string, unsigned short>{"127.0.0.1", 9464}));
    EXPECT_EQ(parse_listen("0.0.0.0:9464").first, "0.0.0.0");
    EXPECT_EQ(parse_listen("[::1]:0"), (std::pair<std::string, unsigned short>{"::1", 0}));
    EXPECT_EQ(parse_listen(":9464").first, "0.0.0.0");
    EXPECT_EQ(parse_listen("localhost:1").first, "127.0.0.1");
    EXPECT_THROW(parse_listen("9464"), std::invalid_argument);
    EXPECT_THROW(parse_listen("::1:9464"), std::invalid_argument);
    EXPECT_THROW(parse_listen("127.0.0.1:65536"), std::invalid_argument);
    EXPECT_THROW(parse_listen("127.0.0.1:"), std::invalid_argument);
    EXPECT_THROW(parse_listen("example.com:80"), std::invalid_argument);
}

TEST_F(obs_http_server, serves_metrics_health_and_readiness) {
    m.on_config_reload(true);
    start();
    const auto port = server->port();
    ASSERT_NE(port, 0);

    auto metrics = get_path(port, "/metrics");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_NE(metrics.head.find("text/plain; version=0.0.4"), std::string::npos) << metrics.head;
    EXPECT_NE(metrics.body.find("keyrotd_build_info{version=\"9.9.9\"} 1"), std::string::npos);
    EXPECT_NE(metrics.body.find("keyrotd_config_reloads_total{outcome=\"success\"} 1"),
              std::string::npos);

    auto health = get_path(port, "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, "ok\n");

    auto not_ready = get_path(port, "/readyz");
    EXPECT_EQ(not_ready.status, 503);
    EXPECT_EQ(not_ready.body, "no pass has completed yet\n");
    ready = true;
    auto is_ready = get_path(port, "/readyz?verbose");
    EXPECT_EQ(is_ready.status, 200);
    EXPECT_EQ(is_ready.body, "ok\n");

    EXPECT_EQ(get_path(port, "/").status, 404);
    EXPECT_EQ(get_path(port, "/metricsx").status, 404);
    EXPECT_EQ(get_path(port, "/metrics", "POST").status, 405);
}

TEST_F(obs_http_server, keep_alive_serves_several_requests) {
    start();
    const std::string one = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    auto r = get(server->port(),
                 one + one + "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    std::size_t n = 0;
    for (auto pos = r.body.find("HTTP/1.1 200"); pos != std::string::npos;
         pos = r.body.find("HTTP/1.1 200", pos + 1))
        ++n;
    EXPECT_EQ(n, 2u);  // the first reply's status is in r.status, the other two in its "body"
}

TEST_F(obs_http_server, bounded_requests_and_idle_connections) {
    keyrot::obs::http_server_options opt;
    opt.max_request_bytes = 1024;
    opt.read_timeout = std::chrono::milliseconds(300);
    opt.max_connections = 1;
    start(opt);
    const auto port = server->port();

    auto big = get(
        port, "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(4096, 'a') + "\r\n\r\n");
    EXPECT_EQ(big.status, 431);
    EXPECT_EQ(get(port, "garbage\r\n\r\n").status, 400);

    // An idle connection is closed after the read timeout...
    net::io_context cio;
    tcp::socket idle(cio);
    idle.connect({net::ip::make_address("127.0.0.1"), port});
    // ...and while it is open, it is the one connection allowed: a second is closed at once.
    wait_for_connections(1);
    auto refused = get_path(port, "/healthz");
    EXPECT_EQ(refused.status, 0);
    const auto t0 = std::chrono::steady_clock::now();
    std::string data;
    boost::system::error_code ec;
    net::read(idle, net::dynamic_buffer(data), ec);
    EXPECT_EQ(ec, net::error::eof);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    // Once it is gone, new connections are served again.
    wait_for_connections(0);
    EXPECT_EQ(get_path(port, "/healthz").status, 200);
}

TEST_F(obs_http_server, stop_closes_open_connections) {
    start();
    net::io_context cio;
    tcp::socket idle(cio);
    idle.connect({net::ip::make_address("127.0.0.1"), server->port()});
    wait_for_connections(1);
    net::post(io, [this] { server->stop(); });
    runner.join();  // returns only when the accept loop and the session are gone
    std::string data;
    boost::system::error_code ec;
    net::read(idle, net::dynamic_buffer(data), ec);
    EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
}

TEST(obs_http, bind_failure_throws) {
    net::io_context io;
    auto reg = std::make_shared<prometheus::Registry>();
    http_server a(io, reg, nullptr, {.listen = "127.0.0.1:0"});
    a.start();
    http_server b(io, reg, nullptr, {.listen = "127.0.0.1:" + std::to_string(a.port())});
    EXPECT_THROW(b.start(), std::runtime_error);
    http_server c(io, reg, nullptr, {.listen = "nonsense"});
    EXPECT_THROW(c.start(), std::invalid_argument);
}

}  // namespace obs_http_test
