#include "obs/http_server.hpp"

// Asio only through the project header (common/asio.hpp: a Boost 1.74 bug), before Beast.
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>

#include "common/asio.hpp"
#include "common/host_port.hpp"
#include "obs/log.hpp"

namespace keyrot::obs {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

std::pair<std::string, unsigned short> parse_listen(std::string_view listen) {
    auto bad = [&](const char* why) {
        return std::invalid_argument("listen \"" + std::string(listen) + "\": " + why);
    };
    const auto hp = split_host_port(listen);
    if (!hp) {
        if (!listen.starts_with('[') && listen.find(':') != listen.rfind(':'))
            throw bad("an IPv6 address must be in brackets, as [::1]:9464");
        throw bad("expected host:port");
    }
    if (hp->port.empty()) throw bad("expected host:port");
    const auto value = parse_port(hp->port, true);
    if (!value) throw bad("bad port (0 to 65535)");
    std::string h = hp->host;
    if (h.empty()) h = "0.0.0.0";
    if (h == "localhost") h = "127.0.0.1";
    error_code ec;
    net::ip::make_address(h, ec);
    if (ec) throw bad("host must be an IP address");
    return {h, *value};
}

struct http_server::impl {
    impl(net::io_context& io, std::shared_ptr<prometheus::Collectable> r, ready_fn rd,
         http_server_options o)
        : registry(std::move(r)), ready(std::move(rd)), opt(std::move(o)), acceptor(io) {}

    std::shared_ptr<prometheus::Collectable> registry;
    ready_fn ready;
    http_server_options opt;
    tcp::acceptor acceptor;
    unsigned short port = 0;
    bool stopping = false;
    std::set<beast::tcp_stream*> sessions;  // open connections, closed by stop()
    std::atomic<std::size_t> open{0};       // sessions.size(), readable from any thread
};

namespace {

using response = http::response<http::string_body>;

void log_exception(const std::exception_ptr& e, const char* what) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log_event(spdlog::level::err, what, {{"error", ex.what()}});
    } catch (...) {
        log_event(spdlog::level::err, what, {{"error", "unknown exception"}});
    }
}

response text_response(http::status status, std::string body, unsigned version, bool keep_alive) {
    response res{status, version};
    res.set(http::field::server, "keyrotd");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

// Builds the reply; no I/O.
response handle_request(http_server::impl& self, const http::request<http::string_body>& req) {
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);

    const bool known = target == "/metrics" || target == "/healthz" || target == "/readyz";
    if (!known) return text_response(http::status::not_found, "not found\n", version, keep_alive);
    if (req.method() != http::verb::get) {
        auto res = text_response(http::status::method_not_allowed, "method not allowed\n", version,
                                 keep_alive);
        res.set(http::field::allow, "GET");
        return res;
    }
    if (target == "/healthz") return text_response(http::status::ok, "ok\n", version, keep_alive);
    if (target == "/readyz") {
        std::pair<bool, std::string> r{false, "no readiness check"};
        try {
            if (self.ready) r = self.ready();
        } catch (const std::exception& e) {
            r = {false, std::string("readiness check failed: ") + e.what()};
        }
        std::string body = r.second.empty() ? (r.first ? "ok" : "not ready") : r.second;
        return text_response(r.first ? http::status::ok : http::status::service_unavailable,
                             body + "\n", version, keep_alive);
    }
    // /metrics
    std::string body;
    try {
        prometheus::TextSerializer serializer;
        body = serializer.Serialize(self.registry->Collect());
    } catch (const std::exception& e) {
        log_event(spdlog::level::err, "metrics exposition failed", {{"error", e.what()}});
        return text_response(http::status::internal_server_error, "internal error\n", version,
                             false);
    }
    auto res = text_response(http::status::ok, std::move(body), version, keep_alive);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    return res;
}

// A status for a request that could not be read, or none (just close).
std::optional<http::status> read_error_status(const error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return http::status::request_header_fields_too_large;
    if (ec == http::error::body_limit) return http::status::payload_too_large;
    return std::nullopt;
}

std::string reason_text(http::status s) {
    auto r = http::obsolete_reason(s);
    return std::string(r.data(), r.size()) + "\n";
}

bool is_parse_error(const error_code& ec) {
    return ec.category() == make_error_code(http::error::bad_target).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message &&
           ec != http::error::need_more;
}

net::awaitable<void> session(std::shared_ptr<http_server::impl> self, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    self->sessions.insert(&stream);
    self->open = self->sessions.size();
    struct forget {
        http_server::impl& s;
        beast::tcp_stream* p;
        ~forget() {
            s.sessions.erase(p);
            s.open = s.sessions.size();
        }
    } forget_on_exit{*self, &stream};

    const auto limit = static_cast<std::uint32_t>(self->opt.max_request_bytes);
    beast::flat_buffer buffer(2 * self->opt.max_request_bytes);
    error_code ec;
    while (!self->stopping) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(limit);
        parser.body_limit(limit);
        stream.expires_after(self->opt.read_timeout);
        co_await http::async_read(stream, buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            std::optional<http::status> status = read_error_status(ec);
            if (!status && is_parse_error(ec)) status = http::status::bad_request;
            if (status && !self->stopping) {
                auto res = text_response(*status, reason_text(*status), 11, false);
                stream.expires_after(self->opt.write_timeout);
                co_await http::async_write(stream, res,
                                           net::redirect_error(net::use_awaitable, ec));
            }
            break;
        }
        response res = handle_request(*self, parser.get());
        const bool keep_alive = res.keep_alive();
        stream.expires_after(self->opt.write_timeout);
        co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
        if (ec || !keep_alive) break;
    }
    if (stream.socket().is_open()) {
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream.socket().close(ec);
    }
}

net::awaitable<void> accept_loop(std::shared_ptr<http_server::impl> self) {
    while (!self->stopping) {
        error_code ec;
        tcp::socket socket =
            co_await self->acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (self->stopping || ec == net::error::operation_aborted) break;
        if (ec) {
            // EMFILE and friends: wait a little rather than spin.
            log_event(spdlog::level::warn, "http accept failed", {{"error", ec.message()}});
            net::steady_timer pause(self->acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        if (self->sessions.size() >= self->opt.max_connections) {
            log_event(spdlog::level::debug, "http connection refused: too many connections",
                      {{"limit", self->opt.max_connections}});
            socket.close(ec);
            continue;
        }
        net::co_spawn(self->acceptor.get_executor(), session(self, std::move(socket)),
                      [](const std::exception_ptr& e) { log_exception(e, "http session failed"); });
    }
}

}  // namespace

http_server::http_server(net::io_context& io, std::shared_ptr<prometheus::Collectable> registry,
                         ready_fn ready, http_server_options opt)
    : impl_(std::make_shared<impl>(io, std::move(registry), std::move(ready), std::move(opt))) {}

http_server::~http_server() { stop(); }

void http_server::start() {
    auto [host, port] = parse_listen(impl_->opt.listen);
    tcp::endpoint endpoint{net::ip::make_address(host), port};
    auto fail = [&](const char* step, const error_code& ec) {
        return std::runtime_error("cannot listen on " + impl_->opt.listen + ": " + step + ": " +
                                  ec.message());
    };
    error_code ec;
    auto& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (ec) throw fail("open", ec);
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) throw fail("set_option", ec);
    acceptor.bind(endpoint, ec);
    if (ec) throw fail("bind", ec);
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw fail("listen", ec);
    impl_->port = acceptor.local_endpoint(ec).port();
    impl_->stopping = false;
    net::co_spawn(acceptor.get_executor(), accept_loop(impl_),
                  [](const std::exception_ptr& e) { log_exception(e, "http accept loop failed"); });
}

unsigned short http_server::port() const { return impl_->port; }

std::size_t http_server::connections() const { return impl_->open; }

void http_server::stop() {
    if (!impl_) return;
    impl_->stopping = true;
    error_code ec;
    impl_->acceptor.close(ec);
    for (beast::tcp_stream* s : impl_->sessions) s->socket().close(ec);
}

}  // namespace keyrot::obs
