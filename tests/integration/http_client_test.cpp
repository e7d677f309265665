// keyrot::http::client against a scripted server on real loopback sockets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "http/client.hpp"
#include "http_test_server.hpp"
#include "unit/http_run_sync.hpp"

namespace http_client_test {

using namespace keyrot;
using namespace keyrot::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Test CA, a server certificate for localhost + 127.0.0.1, and one for another name.
struct pki {
    fs::path dir;
    std::string ca, cert, key, other_cert, other_key;
};

const pki& test_pki() {
    static const pki p = [] {
        pki out;
        out.dir = fs::temp_directory_path() / ("keyrot_http_pki_" + std::to_string(::getpid()));
        fs::create_directories(out.dir);
        auto d = out.dir.string();
        std::string script =
            "set -e; cd '" + d +
            "'; "
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            "-keyout ca.key -out ca.pem -days 2 -subj '/CN=keyrot test CA' 2>/dev/null; "
            "for n in server other; do "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $n.key "
            "-out $n.csr -subj /CN=$n 2>/dev/null; done; "
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
            "> server.ext; "
            "printf 'subjectAltName=DNS:other.example\\nextendedKeyUsage=serverAuth\\n' > "
            "other.ext; "
            "for n in server other; do openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key "
            "-CAcreateserial -out $n.pem -days 2 -extfile $n.ext 2>/dev/null; done";
        if (std::system(script.c_str()) != 0) throw std::runtime_error("openssl failed");
        out.ca = d + "/ca.pem";
        out.cert = d + "/server.pem";
        out.key = d + "/server.key";
        out.other_cert = d + "/other.pem";
        out.other_key = d + "/other.key";
        return out;
    }();
    return p;
}

http::options opts_for(const std::string& url) {
    http::options o;
    o.base_url = url;
    o.requests_per_second = 0;
    o.backoff_base = 20ms;
    o.backoff_cap = 200ms;
    o.timeout = 5000ms;
    o.connect_timeout = 2000ms;
    o.https_proxy = "";
    o.no_proxy = "";
    return o;
}

struct fixture {
    net::io_context io;
    std::unique_ptr<http::client> client;

    explicit fixture(http::options o) {
        auto c = http::client::create(io.get_executor(), std::move(o));
        if (!c) throw std::runtime_error(c.err().describe());
        client = std::move(c.value());
    }

    result<http::response> send(http::request r) {
        return run_sync(io, client->send(std::move(r)));
    }
    result<http::response> get(const std::string& target) {
        http::request r;
        r.target = target;
        return send(std::move(r));
    }
};

http::request post(std::string target, std::string body = "{}") {
    http::request r;
    r.method = "POST";
    r.target = std::move(target);
    r.body = std::move(body);
    r.content_type = "application/json";
    return r;
}

net::awaitable<void> store_one(http::client& c, http::request r,
                               std::optional<result<http::response>>& out) {
    out.emplace(co_await c.send(std::move(r)));
}

// Sends all requests at once; waits for every answer.
net::awaitable<std::vector<result<http::response>>> send_all(http::client& c,
                                                             std::vector<http::request> reqs) {
    auto ex = co_await net::this_coro::executor;
    std::vector<std::optional<result<http::response>>> slots(reqs.size());
    std::size_t remaining = reqs.size();
    net::steady_timer done(ex, std::chrono::steady_clock::time_point::max());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        net::co_spawn(ex, store_one(c, std::move(reqs[i]), slots[i]), [&](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
            if (--remaining == 0) done.cancel();
        });
    }
    boost::system::error_code ec;
    if (remaining > 0) co_await done.async_wait(net::redirect_error(net::use_awaitable, ec));
    std::vector<result<http::response>> out;
    for (auto& s : slots) out.push_back(std::move(*s));
    co_return out;
}

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

test_reply ok_json(std::string body = R"({"ok":true})") {
    test_reply r;
    r.body = std::move(body);
    return r;
}

}  // namespace

TEST(HttpClient, KeepAliveReusesOneConnection) {
    test_server srv([](const test_request&) { return ok_json(); });
    fixture f(opts_for(srv.url()));
    for (int i = 0; i < 5; ++i) {
        auto r = f.get("/v1/x?i=" + std::to_string(i));
        ASSERT_TRUE(r) << r.err().describe();
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->body, R"({"ok":true})");
        EXPECT_EQ(r->header("server"), "keyrot-test");
    }
    EXPECT_EQ(srv.connections(), 1);
    EXPECT_EQ(f.client->stats().reused, 4u);
    auto reqs = srv.requests();
    ASSERT_EQ(reqs.size(), 5u);
    EXPECT_EQ(reqs[0].headers["host"], "127.0.0.1:" + std::to_string(srv.port()));
    EXPECT_EQ(reqs[0].headers.count("authorization"), 0u);
}

TEST(HttpClient, KeepAliveOffOpensOneConnectionPerRequest) {
    test_server srv([](const test_request&) { return ok_json(); });
    auto o = opts_for(srv.url());
    o.keep_alive = false;
    fixture f(o);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.get("/a"));
    EXPECT_EQ(srv.connections(), 3);
}

TEST(HttpClient, ServerClosingAnIdleConnectionIsNoticedBeforeReuse) {
    test_server srv([](const test_request&) {
        auto r = ok_json();
        r.drop_after = true;  // says keep-alive, closes anyway
        return r;
    });
    fixture f(opts_for(srv.url()));
    ASSERT_TRUE(f.get("/a"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // A create is not retried: it must not be sent on the dead connection.
    auto r = f.send(post("/v1/organizations/o/developers/d/apps/a/keys"));
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(f.client->stats().stale_dropped, 1u);
    EXPECT_EQ(srv.connections(), 2);
}

TEST(HttpClient, AuthorizationAndBodyAreSent) {
    test_server srv([](const test_request& r) { return ok_json(r.body); });
    fixture f(opts_for(srv.url()));
    auto req = post("/v1/p", R"({"a":1})");
    req.authorization = secret("Bearer tok");
    req.headers.emplace_back("X-Extra", "1");
    auto r = f.send(std::move(req));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, R"({"a":1})");
    auto reqs = srv.requests();
    EXPECT_EQ(reqs[0].headers["authorization"], "Bearer tok");
    EXPECT_EQ(reqs[0].headers["content-type"], "application/json");
    EXPECT_EQ(reqs[0].headers["x-extra"], "1");
}

TEST(HttpClient, SlowServerTimesOut) {
    test_server srv([](const test_request&) {
        auto r = ok_json();
        r.delay = 1500ms;
        return r;
    });
    auto o = opts_for(srv.url());
    o.timeout = 200ms;
    o.max_attempts = 2;
    fixture f(o);
    auto t0 = std::chrono::steady_clock::now();
    auto r = f.get("/slow");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().what, error::kind::network);
    EXPECT_TRUE(r.err().timed_out);
    EXPECT_NE(r.err().message.find("GET /slow: no complete response within 200ms"),
              std::string::npos)
        << r.err().message;
    EXPECT_NE(r.err().message.find("after 2 attempts"), std::string::npos);
    EXPECT_EQ(srv.requests().size(), 2u);
    EXPECT_LT(since(t0), 1.4);
}

TEST(HttpClient, CreateThatTimesOutIsNotRetried) {
    test_server srv([](const test_request&) {
        auto r = ok_json();
        r.delay = 1000ms;
        return r;
    });
    auto o = opts_for(srv.url());
    o.timeout = 200ms;
    fixture f(o);
    std::string key = "MyConsumerKey-123";
    auto r = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/" + key, "{}"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.err().timed_out);
    EXPECT_NE(r.err().message.find("not retried"), std::string::npos);
    EXPECT_EQ(r.err().message.find(key), std::string::npos) << r.err().message;
    EXPECT_NE(r.err().message.find("<fp:"), std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(srv.requests().size(), 1u);
}

TEST(HttpClient, OversizedTruncatedAndGarbageResponsesAreClearErrors) {
    test_server srv([](const test_request& r) {
        test_reply rep;
        if (r.target == "/big") rep.body = std::string(5000, 'x');
        if (r.target == "/truncated")
            rep.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":";
        if (r.target == "/garbage") rep.raw = "SSH-2.0-OpenSSH\r\n\r\n";
        if (r.target == "/nothing") rep.raw = " ";
        return rep;
    });
    auto o = opts_for(srv.url());
    o.max_response_bytes = 1000;
    o.max_attempts = 1;
    fixture f(o);
    auto big = f.get("/big");
    ASSERT_FALSE(big) << big->status << " " << big->body.size();
    EXPECT_EQ(big.err().what, error::kind::protocol);
    EXPECT_NE(big.err().message.find("larger than 1000 bytes"), std::string::npos);
    auto tr = f.get("/truncated");
    ASSERT_FALSE(tr);
    EXPECT_EQ(tr.err().what, error::kind::network);
    EXPECT_NE(tr.err().message.find("in the middle of the response"), std::string::npos)
        << tr.err().message;
    auto g = f.get("/garbage");
    ASSERT_FALSE(g);
    EXPECT_EQ(g.err().what, error::kind::protocol) << g.err().message;
    EXPECT_NE(g.err().message.find("malformed"), std::string::npos) << g.err().message;
    EXPECT_FALSE(f.get("/nothing"));
}

TEST(HttpClient, RetriesAfter429HonouringRetryAfter) {
    std::atomic<int> n{0};
    test_server srv([&](const test_request&) {
        test_reply r;
        if (n++ == 0) {
            r.status = 429;
            r.headers = {{"Retry-After", "1"}};
            r.body = R"({"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}})";
            return r;
        }
        return ok_json();
    });
    fixture f(opts_for(srv.url()));
    auto t0 = std::chrono::steady_clock::now();
    auto r = f.get("/q");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->attempts, 2);
    EXPECT_GE(since(t0), 0.95);
}

TEST(HttpClient, RetryAfterIsCapped) {
    std::atomic<int> n{0};
    test_server srv([&](const test_request&) {
        test_reply r;
        if (n++ == 0) {
            r.status = 429;
            r.headers = {{"Retry-After", "3600"}};
            return r;
        }
        return ok_json();
    });
    auto o = opts_for(srv.url());
    o.max_retry_after = 300ms;
    fixture f(o);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(f.get("/q"));
    EXPECT_LT(since(t0), 1.0);
}

TEST(HttpClient, Retries503ThenGivesTheLastAnswer) {
    std::atomic<int> n{0};
    test_server srv([&](const test_request&) {
        test_reply r;
        if (n++ < 2) {
            r.status = 503;
            return r;
        }
        return ok_json();
    });
    std::vector<int> seen;
    auto o = opts_for(srv.url());
    o.observer = [&](std::string_view m, int s, double secs) {
        EXPECT_EQ(m, "GET");
        EXPECT_GE(secs, 0.0);
        seen.push_back(s);
    };
    fixture f(o);
    auto r = f.get("/x");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->attempts, 3);
    EXPECT_EQ(seen, (std::vector<int>{503, 503, 200}));

    test_server down([](const test_request&) {
        test_reply rep;
        rep.status = 503;
        return rep;
    });
    auto o2 = opts_for(down.url());
    o2.max_attempts = 3;
    fixture f2(o2);
    auto d = f2.get("/x");
    ASSERT_TRUE(d);  // an HTTP answer: the caller maps the status
    EXPECT_EQ(d->status, 503);
    EXPECT_EQ(d->attempts, 3);
    EXPECT_EQ(down.requests().size(), 3u);
}

TEST(HttpClient, PostCreateIsNeverRetriedButActionsAre) {
    test_server srv([](const test_request&) {
        test_reply r;
        r.status = 503;
        return r;
    });
    fixture f(opts_for(srv.url()));
    auto c = f.send(post("/v1/organizations/o/developers/d/apps/a/keys"));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, 503);
    EXPECT_EQ(srv.requests().size(), 1u);
    srv.clear();
    auto a = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/k?action=revoke", ""));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 503);
    EXPECT_EQ(srv.requests().size(), 5u);  // max_attempts
}

// The write fence (high availability): a write starts only with budget left,
// each attempt is cut to the budget, a retry must fit in it; reads are free.
TEST(HttpClient, WritesAreFencedReadsAreNot) {
    test_server srv([](const test_request& q) {
        auto r = ok_json();
        if (q.target.find("slow") != std::string::npos) r.delay = 1500ms;
        if (q.target.find("busy") != std::string::npos) r.status = 503;
        return r;
    });
    auto o = opts_for(srv.url());
    o.backoff_base = 50ms;
    o.backoff_cap = 100ms;
    std::optional<milliseconds> budget = 0ms;
    fixture f(o);
    f.client->set_write_budget([&budget] { return budget; });
    // No budget: the write is not sent at all.
    auto r = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/k?action=revoke", ""));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().what, error::kind::config);
    EXPECT_EQ(r.err().code, "FENCED");
    EXPECT_EQ(srv.requests().size(), 0u);
    // Reads are not fenced.
    ASSERT_TRUE(f.get("/v1/organizations/o/apps"));
    EXPECT_EQ(srv.requests().size(), 1u);
    srv.clear();
    // 300 ms left: a slow write is cut there, not at the 30 s timeout.
    budget = 300ms;
    auto t0 = std::chrono::steady_clock::now();
    r = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/slow", "{}"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.err().timed_out);
    EXPECT_NE(r.err().message.find("cut at the write fence"), std::string::npos) << r.err().message;
    EXPECT_LT(since(t0), 1.2);
    // Leadership is checked again before each retry: lost after the first
    // attempt, a retryable write (an action) is not retried.
    srv.clear();
    int calls = 0;
    f.client->set_write_budget(
        [&calls]() -> std::optional<milliseconds> { return ++calls == 1 ? 5000ms : 0ms; });
    auto a = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/busy?action=revoke", ""));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 503);
    EXPECT_EQ(srv.requests().size(), 1u);
    EXPECT_GE(calls, 2);
    f.client->set_write_budget([&budget] { return budget; });
    srv.clear();
    budget = std::nullopt;  // no fence: the usual retries
    a = f.send(post("/v1/organizations/o/developers/d/apps/a/keys/busy?action=revoke", ""));
    ASSERT_TRUE(a);
    EXPECT_EQ(srv.requests().size(), 5u);
}

TEST(HttpClient, ConnectionRefusedIsANetworkError) {
    std::uint16_t port;
    {
        test_server gone([](const test_request&) { return ok_json(); });
        port = gone.port();
    }
    auto o = opts_for("http://127.0.0.1:" + std::to_string(port));
    o.max_attempts = 2;
    fixture f(o);
    auto r = f.get("/x");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().what, error::kind::network);
    EXPECT_NE(r.err().message.find("cannot connect"), std::string::npos) << r.err().message;
}

TEST(HttpClient, RateLimitHoldsAcrossConcurrentRequests) {
    test_server srv([](const test_request&) { return ok_json(); });
    auto o = opts_for(srv.url());
    o.requests_per_second = 10;
    o.max_concurrency = 4;
    fixture f(o);
    std::vector<http::request> reqs(25);
    for (auto& r : reqs) r.target = "/r";
    auto t0 = std::chrono::steady_clock::now();
    auto out = run_sync(f.io, send_all(*f.client, std::move(reqs)));
    double took = since(t0);
    for (auto& r : out) ASSERT_TRUE(r);
    auto log = srv.requests();
    ASSERT_EQ(log.size(), 25u);
    // No window of ~1 s holds more than 10. Arrival times carry scheduling
    // jitter (tests/run.sh builds the sanitizer tree meanwhile): a request held
    // back by a busy CPU arrives next to the following one, so the window is
    // 0.8 s (200 ms of slack). Without the limiter all 25 arrive within
    // milliseconds; its exact schedule is http_rules_test's (no sockets).
    std::size_t j = 0;
    int worst = 0;
    for (std::size_t i = 0; i < log.size(); ++i) {
        while (log[i].arrived - log[j].arrived >= 0.8) ++j;
        worst = std::max(worst, static_cast<int>(i - j + 1));
    }
    EXPECT_LE(worst, 10);
    EXPECT_GE(took, 2.3);   // load only delays: the lower bound holds under any
    EXPECT_LT(took, 10.0);  // only pathological over-throttling
}

TEST(HttpClient, ConcurrencyIsBounded) {
    test_server srv([](const test_request&) {
        auto r = ok_json();
        r.delay = 150ms;
        return r;
    });
    auto o = opts_for(srv.url());
    o.max_concurrency = 2;
    fixture f(o);
    std::vector<http::request> reqs(6);
    for (auto& r : reqs) r.target = "/c";
    auto out = run_sync(f.io, send_all(*f.client, std::move(reqs)));
    for (auto& r : out) ASSERT_TRUE(r);
    EXPECT_EQ(srv.max_in_flight(), 2);
    EXPECT_LE(srv.connections(), 2);
}

TEST(HttpClient, PlainHttpOnlyToLoopback) {
    net::io_context io;
    auto o = opts_for("http://apigee.example.com");
    auto c = http::client::create(io.get_executor(), o);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().what, error::kind::config);
}

TEST(HttpsClient, VerifiesWithCaFile) {
    const auto& p = test_pki();
    test_server srv([](const test_request&) { return ok_json(); }, p.cert, p.key);
    auto o = opts_for(srv.url("localhost"));
    o.ca_file = p.ca;
    fixture f(o);
    for (int i = 0; i < 3; ++i) {
        auto r = f.get("/tls");
        ASSERT_TRUE(r) << r.err().describe();
        EXPECT_EQ(r->status, 200);
    }
    EXPECT_EQ(srv.connections(), 1);
    EXPECT_EQ(srv.requests()[0].headers["host"], "localhost:" + std::to_string(srv.port()));

    auto o_ip = opts_for(srv.url("127.0.0.1"));  // IP SAN, no SNI
    o_ip.ca_file = p.ca;
    fixture fi(o_ip);
    auto r = fi.get("/tls");
    ASSERT_TRUE(r) << r.err().describe();
}

TEST(HttpsClient, UnknownCaIsACertificateError) {
    const auto& p = test_pki();
    test_server srv([](const test_request&) { return ok_json(); }, p.cert, p.key);
    fixture f(opts_for(srv.url("localhost")));
    auto r = f.get("/tls");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().what, error::kind::network);
    EXPECT_NE(r.err().message.find("certificate verification failed"), std::string::npos)
        << r.err().message;
    EXPECT_NE(r.err().message.find("local issuer"), std::string::npos) << r.err().message;
    EXPECT_EQ(srv.requests().size(), 0u);
    EXPECT_EQ(srv.connections(), 1);  // a certificate error is not retried
}

TEST(HttpsClient, WrongHostNameFails) {
    const auto& p = test_pki();
    test_server srv([](const test_request&) { return ok_json(); }, p.other_cert, p.other_key);
    auto o = opts_for(srv.url("localhost"));
    o.ca_file = p.ca;
    fixture f(o);
    auto r = f.get("/tls");
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("hostname mismatch"), std::string::npos) << r.err().message;

    auto o_ip = opts_for(srv.url("127.0.0.1"));
    o_ip.ca_file = p.ca;
    fixture fi(o_ip);
    auto ri = fi.get("/tls");
    ASSERT_FALSE(ri);
    EXPECT_NE(ri.err().message.find("IP address mismatch"), std::string::npos) << ri.err().message;
}

TEST(HttpsClient, BadCaFileIsAConfigError) {
    net::io_context io;
    auto o = opts_for("https://localhost:1");
    o.ca_file = "/nonexistent/ca.pem";
    auto c = http::client::create(io.get_executor(), o);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().what, error::kind::config);
    EXPECT_NE(c.err().message.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST(HttpsClient, ThroughAConnectProxy) {
    const auto& p = test_pki();
    test_server srv([](const test_request&) { return ok_json(); }, p.cert, p.key);
    test_server proxy([](const test_request&) { return ok_json(); }, "", "", true);
    auto o = opts_for(srv.url("localhost"));
    o.ca_file = p.ca;
    o.https_proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
    fixture f(o);
    ASSERT_TRUE(f.client->via_proxy());
    for (int i = 0; i < 2; ++i) {
        auto r = f.get("/via-proxy");
        ASSERT_TRUE(r) << r.err().describe();
    }
    EXPECT_EQ(proxy.tunnels(), 1);  // the tunnel is kept alive
    EXPECT_EQ(srv.requests().size(), 2u);

    o.no_proxy = "example.com,localhost";
    fixture direct(o);
    EXPECT_FALSE(direct.client->via_proxy());

    o.no_proxy = "";
    o.https_proxy = "socks5://127.0.0.1:1";
    net::io_context io;
    auto bad = http::client::create(io.get_executor(), o);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.err().what, error::kind::config);
}

}  // namespace http_client_test
