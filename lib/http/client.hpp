// keyrot::http::client: an async HTTP/1.1 client bound to one base URL.
//
// Contract:
// - https:// always verifies the peer (system store + options.ca_file) and the
//   host name (SSL_set1_host; IP literals via X509_VERIFY_PARAM_set1_ip_asc and
//   no SNI); TLS 1.2 or newer. http:// only to loopback hosts (config error otherwise).
// - Keep-alive: idle connections are reused (a connection the peer closed is
//   noticed before reuse and dropped).
// - At most max_concurrency requests in flight; every attempt (retries too)
//   takes a token from one bucket of requests_per_second, so no 1-second window
//   holds more than requests_per_second + burst - 1 attempts.
// - Retries only what is safe to repeat (rules.hpp: safe_to_retry) on 429
//   (Retry-After honoured, capped), 500/502/503/504, resets and timeouts, with
//   exponential backoff + full jitter, bounded by max_attempts and max_retry_time.
//   A POST without ?action= is sent exactly once, unless the caller marks the
//   request idempotent (a team key's approve/revoke, whose action is in the body).
// - send() returns the response for any HTTP status (the caller maps statuses);
//   an error only when no usable response came: network (timed_out set for
//   timeouts), protocol (oversized / unparsable), config. Error messages name
//   the method and the target with consumer keys replaced by fingerprints; they
//   never hold headers or bodies.
// - Fencing (high availability): with options.write_budget set, a request that
//   writes (any method but GET and HEAD) starts an attempt only while the
//   budget is above zero, and each attempt's timeout is cut to the budget, so
//   no write of this process is in flight after the moment another replica
//   may take the lease. A retry is decided against the budget too (it is read
//   again before each attempt: leadership is checked before every retry). A
//   write refused before its first attempt is an error of kind config, code
//   "FENCED" (nothing was sent).
// - HTTPS_PROXY / https_proxy (http://host:port) is used through a CONNECT
//   tunnel unless NO_PROXY / no_proxy matches the host.
// - One thread runs the io_context (no locks inside). The client must outlive
//   every send() it started.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "http/message.hpp"
#include "http/transport.hpp"

namespace keyrot::http {

// Called once per attempt: method, HTTP status (0 when no response), seconds taken.
using observer_fn = std::function<void(std::string_view method, int status_or_0, double seconds)>;
// Called once per attempt with "METHOD /redacted/target" (consumer keys as
// fingerprints, no query values that could hold secrets), for trace logs.
using tracer_fn = std::function<void(std::string_view request, int status_or_0, double seconds)>;

struct options {
    std::string base_url;                  // https://host[:port][/prefix] or http://loopback[:port]
    std::string ca_file;                   // extra PEM bundle, added to the system store
    milliseconds timeout = 30 * k_second;  // one attempt: write request + read response
    milliseconds connect_timeout = 10 * k_second;  // resolve + TCP + proxy CONNECT + TLS handshake
    int max_concurrency = 8;
    double requests_per_second = 20;  // <= 0: unlimited
    int burst = 1;
    std::size_t max_response_bytes = 64u << 20;
    int max_attempts = 5;                        // 1 = no retries
    milliseconds max_retry_time = 2 * k_minute;  // no retry starts after this much time in send()
    milliseconds backoff_base{250};
    milliseconds backoff_cap = 20 * k_second;
    milliseconds max_retry_after = 60 * k_second;  // a longer Retry-After is cut to this
    bool keep_alive = true;
    std::size_t max_idle_connections = 16;
    milliseconds idle_timeout = 50 * k_second;  // idle connections older than this are closed
    std::string user_agent = "keyrotd/0.1";
    observer_fn observer;
    tracer_fn tracer;
    // nullopt: read HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy from the environment.
    std::optional<std::string> https_proxy;
    std::optional<std::string> no_proxy;
    // The one exception to "http:// only to loopback" (docs/http.md): the GCE
    // metadata server, plain HTTP by design and reachable only from the node.
    // When not empty, base_url may be http:// to exactly this host, which must be
    // an IP literal or resolve to a loopback or link-local (169.254.0.0/16,
    // fe80::/10) address. Only auth's metadata token source sets it, on a client
    // of its own that never carries a secret.
    std::string plain_http_host;
    // Tests: a fixed random source in [0,1) for jitter; default is a PRNG.
    std::function<double()> random01;
    // How much longer this process may write: nullopt = no limit, <= 0 = it
    // may not write now. Read before every attempt of a writing request.
    std::function<std::optional<milliseconds>()> write_budget;
};

struct client_stats {
    std::uint64_t attempts = 0;
    std::uint64_t connects = 0;  // new connections opened
    std::uint64_t reused = 0;    // attempts on an idle connection
    std::uint64_t retries = 0;
    std::uint64_t stale_dropped = 0;  // idle connections found closed by the peer
};

class client final : public transport {
  public:
    // Config problems (bad URL, http:// to a non-loopback host, unreadable ca_file,
    // bad proxy) come back as errors of kind config.
    static result<std::unique_ptr<client>> create(net::any_io_executor ex, options opts);

    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    net::awaitable<result<response>> send(request req) override;

    // Closes idle connections (in-flight ones finish or time out).
    void close_idle();
    // Sets options().write_budget after creation: the daemon fences its Apigee
    // client once leader election is set up (clients copied from this one's
    // options before, such as a token source's, stay unfenced).
    void set_write_budget(std::function<std::optional<milliseconds>()> budget);

    const options& opts() const;
    const client_stats& stats() const;
    bool via_proxy() const;
    net::any_io_executor executor() const;

    struct impl;

  private:
    explicit client(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace keyrot::http
