// A scripted HTTP/1.1 (+TLS) server on 127.0.0.1:0 for client tests and the
// HTTP benchmark. It runs its own io_context on a background thread; the
// handler is called on that thread. It can also act as an HTTP CONNECT proxy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/asio.hpp"
#include "common/duration.hpp"

namespace keyrot::testing {

struct test_request {
    std::string method;
    std::string target;
    std::string body;
    std::map<std::string, std::string> headers;  // names lower-cased
    double arrived = 0;                          // seconds since the server started
    int connection = 0;                          // connection number, from 1
};

struct test_reply {
    int status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::milliseconds delay{0};  // wait before answering
    bool close = false;                  // "Connection: close" and close
    bool drop_after = false;             // answer as keep-alive, then close the socket anyway
    std::string raw;                     // when set: write these bytes verbatim, then close
};

using test_handler = std::function<test_reply(const test_request&)>;

class test_server {
  public:
    // TLS when cert_file/key_file are given. connect_proxy: answer CONNECT by tunnelling.
    explicit test_server(test_handler handler, std::string cert_file = {},
                         std::string key_file = {}, bool connect_proxy = false);
    ~test_server();
    test_server(const test_server&) = delete;
    test_server& operator=(const test_server&) = delete;

    std::uint16_t port() const { return port_; }
    // "http://127.0.0.1:PORT" or "https://<host>:PORT"
    std::string url(const std::string& host = "127.0.0.1") const;

    int connections() const { return connections_.load(); }
    int max_in_flight() const { return max_in_flight_.load(); }
    int tunnels() const { return tunnels_.load(); }
    std::vector<test_request> requests() const;
    void clear();

    struct impl;

  private:
    std::unique_ptr<impl> impl_;
    std::uint16_t port_ = 0;
    std::atomic<int> connections_{0};
    std::atomic<int> in_flight_{0};
    std::atomic<int> max_in_flight_{0};
    std::atomic<int> tunnels_{0};
    friend struct impl;
};

}  // namespace keyrot::testing
