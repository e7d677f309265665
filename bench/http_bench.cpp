// http_bench: throughput and client CPU per request of keyrot::http::client.
//
//   http_bench                      built-in loopback server: HTTP and HTTPS,
//                                   keep-alive on and off
//   http_bench --url URL [--ca FILE] [--target /v1/...] [--token T]
//                                   one run against any server (e.g. the emulator)
//   common: --requests N (2000) --concurrency C (8) --keep-alive on|off
//
// CPU is the client thread's own (CLOCK_THREAD_CPUTIME_ID): the built-in server
// runs on another thread and is not counted.
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "http/client.hpp"
#include "http_test_server.hpp"

using namespace keyrot;

namespace {

struct run_config {
    std::string url;
    std::string ca;
    std::string target = "/v1/organizations/bench/apps/x";
    std::string token;
    int requests = 2000;
    int concurrency = 8;
    bool keep_alive = true;
};

struct totals {
    int ok = 0;
    int failed = 0;
    std::string first_error;
};

double thread_cpu() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

net::awaitable<void> worker(http::client& c, const run_config& cfg, int n, totals& t) {
    for (int i = 0; i < n; ++i) {
        http::request r;
        r.target = cfg.target;
        if (!cfg.token.empty()) r.authorization = secret("Bearer " + cfg.token);
        auto res = co_await c.send(std::move(r));
        if (res && res->status < 400) {
            ++t.ok;
        } else {
            ++t.failed;
            if (t.first_error.empty())
                t.first_error = res ? "HTTP " + std::to_string(res->status) : res.err().describe();
        }
    }
}

int run(const std::string& label, const run_config& cfg) {
    net::io_context io;
    http::options o;
    o.base_url = cfg.url;
    o.ca_file = cfg.ca;
    o.requests_per_second = 0;
    o.max_concurrency = cfg.concurrency;
    o.keep_alive = cfg.keep_alive;
    o.max_attempts = 1;
    auto c = http::client::create(io.get_executor(), o);
    if (!c) {
        std::fprintf(stderr, "%s\n", c.err().describe().c_str());
        return 1;
    }
    totals t;
    int per = cfg.requests / cfg.concurrency;
    auto t0 = std::chrono::steady_clock::now();
    double cpu0 = thread_cpu();
    for (int w = 0; w < cfg.concurrency; ++w) {
        net::co_spawn(io, worker(*c.value(), cfg, per, t), [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    }
    io.run();
    double cpu = thread_cpu() - cpu0;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int n = t.ok + t.failed;
    std::printf("%-28s %7d req %7.2f s %9.0f req/s %8.1f us CPU/req  conns %4llu  failed %d %s\n",
                label.c_str(), n, secs, n / secs, cpu / n * 1e6,
                static_cast<unsigned long long>(c.value()->stats().connects), t.failed,
                t.first_error.c_str());
    return t.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    run_config cfg;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--url")
            cfg.url = next();
        else if (a == "--ca")
            cfg.ca = next();
        else if (a == "--target")
            cfg.target = next();
        else if (a == "--token")
            cfg.token = next();
        else if (a == "--requests")
            cfg.requests = std::atoi(next().c_str());
        else if (a == "--concurrency")
            cfg.concurrency = std::atoi(next().c_str());
        else if (a == "--keep-alive")
            cfg.keep_alive = next() != "off";
        else {
            std::fprintf(stderr,
                         "usage: http_bench [--url URL] [--ca FILE] [--target PATH] [--token T] "
                         "[--requests N] [--concurrency C] [--keep-alive on|off]\n");
            return 2;
        }
    }
    if (cfg.concurrency < 1) cfg.concurrency = 1;
    if (!cfg.url.empty())
        return run(cfg.url + (cfg.keep_alive ? " keep-alive" : " no keep-alive"), cfg);

    // Built-in matrix against an in-process server on its own thread.
    namespace fs = std::filesystem;
    auto dir = fs::temp_directory_path() / ("keyrot_http_bench_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string d = dir.string();
    std::string script = "cd '" + d +
                         "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                         "-nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost "
                         "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null";
    if (std::system(script.c_str()) != 0) {
        std::fprintf(stderr, "openssl failed\n");
        return 1;
    }
    std::string body(2048, 'x');  // about one app
    auto handler = [&](const testing::test_request&) {
        testing::test_reply r;
        r.body = "{\"name\":\"" + body + "\"}";
        return r;
    };
    testing::test_server plain(handler);
    testing::test_server tls(handler, d + "/cert.pem", d + "/key.pem");
    int rc = 0;
    for (bool ka : {true, false}) {
        run_config c = cfg;
        c.keep_alive = ka;
        c.url = plain.url();
        rc |= run(std::string("http  ") + (ka ? "keep-alive" : "new conn each"), c);
        c.url = tls.url("localhost");
        c.ca = d + "/cert.pem";
        if (!ka) c.requests = std::min(c.requests, 1000);
        rc |= run(std::string("https ") + (ka ? "keep-alive" : "new conn each"), c);
    }
    fs::remove_all(dir);
    return rc;
}
