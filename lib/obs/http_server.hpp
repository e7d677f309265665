// The daemon's small HTTP/1.1 endpoint: GET /metrics (Prometheus text format
// 0.0.4), GET /healthz (200 "ok": the event loop answered, so it is responsive),
// GET /readyz (200 or 503 with the reason the daemon's callback gives), 404
// for any other path, 405 for any other method.
//
// It runs on the caller's io_context (one thread: its handlers never lock) and
// is bounded: a request-size limit, a deadline for each read and write, and at most
// `max_connections` connections at once (more are closed on accept).
//
// start() and stop() are called on the io_context's thread, or while it is not
// running. stop() closes the acceptor and every open connection; run() then
// returns once nothing else is pending. Bind errors throw from start() (start-up).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace boost::asio {
class io_context;
}
namespace prometheus {
class Collectable;
}

namespace keyrot::obs {

struct http_server_options {
    std::string listen = "127.0.0.1:9464";  // host:port, [v6]:port; port 0 = ephemeral
    std::size_t max_connections = 32;
    std::size_t max_request_bytes = 8192;           // header + body
    std::chrono::milliseconds read_timeout{10000};  // one request, from its first byte or idle
    std::chrono::milliseconds write_timeout{10000};
};

// "127.0.0.1:9464" -> {"127.0.0.1", 9464}; "[::1]:0" -> {"::1", 0}. Throws
// std::invalid_argument when garbled.
std::pair<std::string, unsigned short> parse_listen(std::string_view listen);

class http_server {
  public:
    using ready_fn = std::function<std::pair<bool, std::string>()>;

    http_server(boost::asio::io_context& io, std::shared_ptr<prometheus::Collectable> registry,
                ready_fn ready, http_server_options opt = {});
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Binds and starts accepting. Throws std::runtime_error / std::invalid_argument.
    void start();
    // The bound port (the ephemeral one when listen asked for 0); 0 before start().
    unsigned short port() const;
    // Connections being served now (any thread).
    std::size_t connections() const;
    void stop();

    struct impl;  // http_server.cpp's; public only so its free functions can name it

  private:
    std::shared_ptr<impl> impl_;
};

}  // namespace keyrot::obs
