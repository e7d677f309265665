// All Beast coroutine code of the client lives in this one file (compile cost:
// a Beast coroutine TU takes ~25 s and 1.3 GB to build with g++ 12 here).
#include "http/client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <random>

#include "common/host_port.hpp"
#include "http/rules.hpp"

namespace keyrot::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;
using boost::system::error_code;

std::optional<std::string> response::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (beast::iequals(beast::string_view(k.data(), k.size()),
                           beast::string_view(name.data(), name.size())))
            return v;
    return std::nullopt;
}

namespace {

error make_error(error::kind k, std::string msg, bool timed_out = false) {
    error e;
    e.what = k;
    e.message = std::move(msg);
    e.timed_out = timed_out;
    return e;
}

std::string fmt_ms(milliseconds span) {
    const auto ms = span.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::string env_or(const char* a, const char* b) {
    if (const char* v = std::getenv(a); v && *v) return v;
    if (const char* v = std::getenv(b); v && *v) return v;
    return {};
}

// Waiters queue on a never-expiring timer; release() hands the slot over by
// cancelling the first waiter's timer. Single-threaded: no lock.
class semaphore {
  public:
    explicit semaphore(int n) : available_(n < 1 ? 1 : n) {}

    net::awaitable<void> acquire(net::any_io_executor ex) {
        if (available_ > 0 && waiters_.empty()) {
            --available_;
            co_return;
        }
        net::steady_timer t(ex, steady::time_point::max());
        waiters_.push_back(&t);
        error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        // Woken by release(): the slot is ours now.
    }

    void release() {
        if (!waiters_.empty()) {
            auto* t = waiters_.front();
            waiters_.pop_front();
            t->cancel();
        } else {
            ++available_;
        }
    }

  private:
    int available_;
    std::deque<net::steady_timer*> waiters_;
};

class slot_guard {
  public:
    explicit slot_guard(semaphore& s) : s_(&s) {}
    // semaphore::release() cancels a waiter's timer, and Asio's cancel() may
    // throw (in theory: the reactor's cancel reports no error).
    ~slot_guard() {
        try {
            release();
        } catch (...) {
        }
    }
    slot_guard(const slot_guard&) = delete;
    slot_guard& operator=(const slot_guard&) = delete;
    void release() {
        if (s_) s_->release();
        s_ = nullptr;
    }

  private:
    semaphore* s_;
};

struct connection {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    steady::time_point idle_since;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    // A kept-alive connection that the peer closed (or that has unexpected bytes
    // waiting) must not carry a request: a non-blocking peek tells.
    bool alive() {
        auto& sock = lowest().socket();
        error_code ec;
        sock.non_blocking(true, ec);
        if (ec) return false;
        char c;
        sock.receive(net::buffer(&c, 1), tcp::socket::message_peek, ec);
        error_code ignored;
        sock.non_blocking(false, ignored);
        return ec == net::error::would_block || ec == net::error::try_again;
    }
};

struct attempt_result {
    std::optional<response> res;
    error err;
    bool retryable = false;  // for errors: a reset or timeout, worth another try
};

struct proxy_info {
    std::string host;
    std::uint16_t port = 0;
};

}  // namespace

struct client::impl {
    net::any_io_executor ex;
    options opts;
    url base;
    std::optional<proxy_info> proxy;
    std::optional<ssl::context> tls_ctx;
    semaphore sem;
    token_bucket bucket;
    steady::time_point origin = steady::now();
    std::vector<std::unique_ptr<connection>> idle;
    client_stats stats;
    std::mt19937_64 rng{std::random_device{}()};

    impl(net::any_io_executor e, options o, url u)
        : ex(std::move(e)),
          opts(std::move(o)),
          base(std::move(u)),
          sem(opts.max_concurrency),
          bucket(opts.requests_per_second, opts.burst) {}

    double random01() {
        if (opts.random01) return opts.random01();
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    }

    std::unique_ptr<connection> take_idle() {
        auto now = steady::now();
        while (!idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            if (now - c->idle_since > opts.idle_timeout) continue;
            if (!c->alive()) {
                ++stats.stale_dropped;
                continue;
            }
            return c;
        }
        return nullptr;
    }

    void give_back(std::unique_ptr<connection> c) {
        if (idle.size() >= opts.max_idle_connections) return;
        c->idle_since = steady::now();
        idle.push_back(std::move(c));
    }

    net::awaitable<void> sleep_until(steady::time_point tp) {
        net::steady_timer t(ex, tp);
        error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }

    net::awaitable<void> pace() {
        if (bucket.rate() <= 0) co_return;
        const auto now =
            std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - origin);
        const auto at = bucket.acquire(now);
        if (at > now) co_await sleep_until(origin + at);
    }

    net::awaitable<result<std::unique_ptr<connection>>> connect();
    bool plain_address_ok(const net::ip::address& a) const;
    net::awaitable<attempt_result> attempt(bhttp::request<bhttp::string_body>& req,
                                           const std::string& what, milliseconds timeout);
    net::awaitable<result<response>> send(request req);
};

bool client::impl::plain_address_ok(const net::ip::address& a) const {
    if (a.is_loopback()) return true;
    if (opts.plain_http_host.empty() || base.host != opts.plain_http_host) return false;
    if (base.host_is_ip) return true;  // named explicitly (GCE_METADATA_HOST)
    if (a.is_v4()) return (a.to_v4().to_uint() >> 16) == ((169u << 8) | 254u);
    return a.is_v6() && a.to_v6().is_link_local();
}

net::awaitable<result<std::unique_ptr<connection>>> client::impl::connect() {
    const std::string& host = proxy ? proxy->host : base.host;
    std::uint16_t port = proxy ? proxy->port : base.port;
    std::string peer = proxy ? "proxy " + host + ":" + std::to_string(port) : base.authority();
    error_code ec;
    tcp::resolver resolver(ex);
    auto resolved = co_await resolver.async_resolve(host, std::to_string(port),
                                                    net::redirect_error(net::use_awaitable, ec));
    if (ec)
        co_return make_error(error::kind::network, "cannot resolve " + peer + ": " + ec.message());
    std::vector<tcp::endpoint> endpoints;
    for (const auto& r : resolved) {
        // Plain HTTP only ever goes to loopback, even when a name resolves
        // elsewhere; the metadata-server exception also to link-local addresses.
        if (!base.tls && !plain_address_ok(r.endpoint().address())) continue;
        endpoints.push_back(r.endpoint());
    }
    if (endpoints.empty())
        co_return make_error(error::kind::config,
                             base.host + (base.host_is_loopback || opts.plain_http_host.empty()
                                              ? " does not resolve to loopback"
                                              : " does not resolve to a loopback or link-local "
                                                "address"));

    auto stream = std::make_unique<beast::tcp_stream>(ex);
    stream->expires_after(opts.connect_timeout);
    co_await stream->async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        bool to = ec == beast::error::timeout;
        co_return make_error(
            error::kind::network,
            "cannot connect to " + peer + ": " +
                (to ? "timed out after " + fmt_ms(opts.connect_timeout) : ec.message()),
            to);
    }
    ++stats.connects;
    error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);

    if (proxy) {
        bhttp::request<bhttp::empty_body> creq{bhttp::verb::connect, base.authority(), 11};
        creq.set(bhttp::field::host, base.authority());
        creq.set(bhttp::field::user_agent, opts.user_agent);
        co_await bhttp::async_write(*stream, creq, net::redirect_error(net::use_awaitable, ec));
        beast::flat_buffer buf;
        bhttp::response_parser<bhttp::empty_body> p;
        p.skip(true);  // a CONNECT answer has no body
        if (!ec)
            co_await bhttp::async_read(*stream, buf, p,
                                       net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            bool to = ec == beast::error::timeout;
            co_return make_error(error::kind::network, "proxy CONNECT failed: " + ec.message(), to);
        }
        if (p.get().result_int() != 200)
            co_return make_error(error::kind::network, "proxy refused CONNECT to " +
                                                           base.authority() + ": HTTP " +
                                                           std::to_string(p.get().result_int()));
        if (buf.size() != 0)
            co_return make_error(error::kind::protocol, "proxy sent bytes after CONNECT");
    }

    auto c = std::make_unique<connection>();
    if (!base.tls) {
        c->plain = std::move(stream);
        co_return c;
    }
    c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*stream), *tls_ctx);
    SSL* s = c->tls->native_handle();
    if (base.host_is_ip) {
        // No SNI for IP literals (RFC 6066); check the certificate's IP SANs.
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), base.host.c_str());
    } else {
        SSL_set_tlsext_host_name(s, base.host.c_str());
        SSL_set1_host(s, base.host.c_str());
    }
    c->lowest().expires_after(opts.connect_timeout);
    co_await c->tls->async_handshake(ssl::stream_base::client,
                                     net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        long v = SSL_get_verify_result(s);
        if (v != X509_V_OK) {
            error e = make_error(error::kind::network, "TLS certificate verification failed for " +
                                                           base.host + ": " +
                                                           X509_verify_cert_error_string(v));
            e.code = "TLS_VERIFY";
            co_return e;
        }
        bool to = ec == beast::error::timeout;
        co_return make_error(error::kind::network,
                             "TLS handshake with " + base.authority() +
                                 " failed: " + (to ? "timed out" : ec.message()),
                             to);
    }
    co_return c;
}

namespace {

template <typename Stream>
net::awaitable<void> exchange(Stream& s, beast::flat_buffer& buf,
                              bhttp::request<bhttp::string_body>& req,
                              bhttp::response_parser<bhttp::string_body>& parser, error_code& ec,
                              bool& wrote) {
    co_await bhttp::async_write(s, req, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    wrote = true;
    // Header first: Boost 1.74 skips body_limit when header and body arrive in one
    // eager read, so the limit is checked on the header alone, then on the body.
    co_await bhttp::async_read_header(s, buf, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec || parser.is_done()) co_return;
    co_await bhttp::async_read(s, buf, parser, net::redirect_error(net::use_awaitable, ec));
}

}  // namespace

net::awaitable<attempt_result> client::impl::attempt(bhttp::request<bhttp::string_body>& req,
                                                     const std::string& what,
                                                     milliseconds timeout) {
    attempt_result out;
    auto conn = take_idle();
    if (conn) {
        ++stats.reused;
    } else {
        auto c = co_await connect();
        if (!c) {
            out.err = c.err();
            out.err.message = what + ": " + out.err.message;
            out.retryable = out.err.what == error::kind::network && out.err.code != "TLS_VERIFY";
            co_return out;
        }
        conn = std::move(c.value());
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(opts.max_response_bytes);
    parser.header_limit(64 * 1024);
    if (req.method() == bhttp::verb::head) parser.skip(true);
    conn->lowest().expires_after(timeout);
    error_code ec;
    bool wrote = false;
    if (conn->tls)
        co_await exchange(*conn->tls, conn->buffer, req, parser, ec, wrote);
    else
        co_await exchange(*conn->plain, conn->buffer, req, parser, ec, wrote);
    if (ec) {
        if (ec == bhttp::error::body_limit) {
            out.err = make_error(error::kind::protocol,
                                 what + ": response larger than " +
                                     std::to_string(opts.max_response_bytes) + " bytes");
        } else if (ec == beast::error::timeout) {
            out.err = make_error(error::kind::network,
                                 what + ": no complete response within " + fmt_ms(timeout) +
                                     (timeout < opts.timeout ? " (cut at the write fence)" : ""),
                                 true);
            out.retryable = true;
        } else if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
                   ec == net::error::eof || ec == net::error::connection_reset ||
                   ec == net::error::broken_pipe || ec == ssl::error::stream_truncated) {
            out.err = make_error(
                error::kind::network,
                what +
                    (parser.is_header_done() ? ": connection closed in the middle of the response"
                                             : ": connection closed before a response") +
                    " (" + ec.message() + ")");
            out.retryable = true;
        } else if (ec.category() ==
                       bhttp::make_error_code(bhttp::error::end_of_stream).category() ||
                   (ec == bhttp::error::bad_version)) {
            out.err = make_error(error::kind::protocol,
                                 what + ": malformed HTTP response: " + ec.message());
        } else {
            out.err = make_error(error::kind::network, what + ": " + ec.message());
            out.retryable = true;
        }
        if (!wrote) out.err.message += " (request not sent)";
        co_return out;
    }
    if (parser.get().body().size() > opts.max_response_bytes) {
        out.err = make_error(
            error::kind::protocol,
            what + ": response larger than " + std::to_string(opts.max_response_bytes) + " bytes");
        co_return out;
    }
    auto msg = parser.release();
    response r;
    r.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
        auto n = f.name_string();
        auto v = f.value();
        r.headers.emplace_back(std::string(n.data(), n.size()), std::string(v.data(), v.size()));
    }
    bool keep = opts.keep_alive && msg.keep_alive() && conn->buffer.size() == 0;
    // An idle connection has no deadline; the next attempt sets its own.
    conn->lowest().expires_never();
    r.body = std::move(msg.body());
    out.res = std::move(r);
    if (keep) give_back(std::move(conn));
    co_return out;
}

net::awaitable<result<response>> client::impl::send(request in) {
    bhttp::verb verb = bhttp::string_to_verb(in.method);
    if (verb == bhttp::verb::unknown)
        co_return make_error(error::kind::internal, "unknown HTTP method " + in.method);
    if (!in.target.starts_with("/"))
        co_return make_error(error::kind::internal, "request target must start with '/'");
    for (unsigned char c : in.target)
        if (c <= 0x20 || c == 0x7f)
            co_return make_error(error::kind::internal,
                                 "request target has a space or control character");
    const std::string what = in.method + " " + redact_target(in.target);

    bhttp::request<bhttp::string_body> req{verb, base.prefix + in.target, 11};
    req.set(bhttp::field::host, base.authority());
    req.set(bhttp::field::user_agent, opts.user_agent);
    req.set(bhttp::field::accept, "application/json");
    if (!in.authorization.empty()) req.set(bhttp::field::authorization, in.authorization.reveal());
    if (!in.content_type.empty()) req.set(bhttp::field::content_type, in.content_type);
    for (const auto& [k, v] : in.headers) req.set(k, v);
    req.body() = in.body;
    cleanse(in.body);
    req.keep_alive(opts.keep_alive);
    req.prepare_payload();
    struct wipe {
        bhttp::request<bhttp::string_body>& r;
        ~wipe() {
            cleanse(r.body());
            // The Authorization value is not in a std::string we own; overwrite the field.
            if (r.count(bhttp::field::authorization)) r.set(bhttp::field::authorization, "***");
        }
    } wipe_guard{req};

    const bool may_retry = in.idempotent || safe_to_retry(in.method, in.target);
    const bool writes = verb != bhttp::verb::get && verb != bhttp::verb::head;
    auto budget = [&]() -> std::optional<milliseconds> {
        if (!writes || !opts.write_budget) return std::nullopt;
        return opts.write_budget();
    };
    const auto start = steady::now();
    for (int attempt_no = 1;; ++attempt_no) {
        co_await sem.acquire(ex);
        slot_guard slot(sem);
        co_await pace();
        milliseconds timeout = opts.timeout;
        if (const auto b = budget()) {
            // Checked after waiting for a slot and the rate limit: those take time too.
            if (*b <= milliseconds(0)) {
                error e = make_error(error::kind::config,
                                     what +
                                         ": not sent: this process may not write now "
                                         "(leadership lost or its renewal overdue)");
                e.code = "FENCED";
                co_return e;
            }
            timeout = std::min(timeout, *b);
        }
        const auto t0 = steady::now();
        attempt_result ar = co_await attempt(req, what, timeout);
        slot.release();
        ++stats.attempts;
        if (opts.observer || opts.tracer) {
            const double took = std::chrono::duration<double>(steady::now() - t0).count();
            const int status = ar.res ? ar.res->status : 0;
            if (opts.observer) opts.observer(in.method, status, took);
            if (opts.tracer) opts.tracer(what, status, took);
        }
        milliseconds delay{0};
        if (ar.res) {
            ar.res->attempts = attempt_no;
            if (!retryable_status(ar.res->status)) co_return std::move(*ar.res);
            delay = backoff_delay(attempt_no - 1, opts.backoff_base, opts.backoff_cap, random01());
            if (ar.res->status == 429 || ar.res->status == 503) {
                if (auto ra = ar.res->header("Retry-After")) {
                    if (auto d = parse_retry_after(*ra, opts.max_retry_after)) delay = *d;
                }
            }
        } else {
            if (!ar.retryable) co_return ar.err;
            delay = backoff_delay(attempt_no - 1, opts.backoff_base, opts.backoff_cap, random01());
        }
        const auto elapsed = std::chrono::duration_cast<milliseconds>(steady::now() - start);
        // A retry of a write must be able to finish inside the fence.
        const auto b = budget();
        const bool fenced = b && *b - delay <= milliseconds(0);
        if (!may_retry || attempt_no >= opts.max_attempts ||
            elapsed + delay > opts.max_retry_time || fenced) {
            if (ar.res) co_return std::move(*ar.res);
            if (fenced && may_retry)
                ar.err.message += " (not retried: the write fence)";
            else if (attempt_no > 1)
                ar.err.message += " (after " + std::to_string(attempt_no) + " attempts)";
            else if (!may_retry)
                ar.err.message += " (not retried: the request may have taken effect)";
            co_return ar.err;
        }
        ++stats.retries;
        co_await sleep_until(steady::now() + delay);
    }
}

result<std::unique_ptr<client>> client::create(net::any_io_executor ex, options opts) {
    auto u = parse_url(opts.base_url, opts.plain_http_host);
    if (!u) return u.err();
    if (opts.max_attempts < 1) opts.max_attempts = 1;
    auto p = std::make_unique<impl>(std::move(ex), std::move(opts), std::move(u.value()));
    auto& o = p->opts;

    if (p->base.tls) {
        std::string proxy_env =
            o.https_proxy ? *o.https_proxy : env_or("HTTPS_PROXY", "https_proxy");
        std::string no_proxy = o.no_proxy ? *o.no_proxy : env_or("NO_PROXY", "no_proxy");
        if (!proxy_env.empty() && !no_proxy_matches(no_proxy, p->base.host, p->base.port)) {
            std::string_view pv = proxy_env;
            if (pv.starts_with("http://"))
                pv.remove_prefix(7);
            else if (pv.find("://") != std::string_view::npos)
                return make_error(error::kind::config,
                                  "HTTPS_PROXY: only http:// proxies (CONNECT) are supported");
            while (pv.ends_with("/")) pv.remove_suffix(1);
            if (pv.find('@') != std::string_view::npos)
                return make_error(error::kind::config,
                                  "HTTPS_PROXY: proxy credentials are not supported");
            // host[:port], as every authority is read (the URL parser checks
            // the host and the port); 1080 by default, as curl.
            const auto hp = split_host_port(pv);
            auto pu = parse_url("https://" + std::string(pv));
            if (!hp || !pu || !pu->prefix.empty())
                return make_error(error::kind::config, "HTTPS_PROXY is not host[:port]");
            p->proxy = proxy_info{pu->host, hp->port.empty() ? std::uint16_t{1080} : pu->port};
        }

        ssl::context ctx(ssl::context::tls_client);
        SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
        error_code ec;
        ctx.set_default_verify_paths(ec);
        if (!o.ca_file.empty()) {
            ctx.load_verify_file(o.ca_file, ec);
            if (ec)
                return make_error(error::kind::config,
                                  "cannot load caFile " + o.ca_file + ": " + ec.message());
        }
        ctx.set_verify_mode(ssl::verify_peer);
        p->tls_ctx.emplace(std::move(ctx));
    }
    return std::unique_ptr<client>(new client(std::move(p)));
}

client::client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
client::~client() = default;

net::awaitable<result<response>> client::send(request req) { return impl_->send(std::move(req)); }

void client::set_write_budget(std::function<std::optional<milliseconds>()> budget) {
    impl_->opts.write_budget = std::move(budget);
}

void client::close_idle() { impl_->idle.clear(); }
const options& client::opts() const { return impl_->opts; }
const client_stats& client::stats() const { return impl_->stats; }
bool client::via_proxy() const { return impl_->proxy.has_value(); }
net::any_io_executor client::executor() const { return impl_->ex; }

}  // namespace keyrot::http
