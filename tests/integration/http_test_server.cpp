// Server-side Beast code, in its own TU (Beast coroutine code is costly to
// compile: keep it in few TUs).
#include "http_test_server.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/text.hpp"

namespace keyrot::testing {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

struct test_server::impl {
    test_server& owner;
    test_handler handler;
    bool proxy;
    net::io_context io;
    tcp::acceptor acceptor{io};
    std::unique_ptr<ssl::context> tls;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    mutable std::mutex mu;
    std::vector<test_request> log;
    std::thread thread;

    impl(test_server& o, test_handler h, bool p) : owner(o), handler(std::move(h)), proxy(p) {}

    static void check(std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "test_server: coroutine failed: %s\n", ex.what());
        }
    }

    net::awaitable<void> accept_loop() {
        for (;;) {
            error_code ec;
            tcp::socket s =
                co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            int n = ++owner.connections_;
            net::co_spawn(io, session(std::move(s), n), check);
        }
    }

    net::awaitable<void> session(tcp::socket s, int n) {
        error_code ec;
        if (tls) {
            beast::ssl_stream<beast::tcp_stream> st(beast::tcp_stream(std::move(s)), *tls);
            co_await st.async_handshake(ssl::stream_base::server,
                                        net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            co_await serve(st, n);
        } else {
            beast::tcp_stream st(std::move(s));
            co_await serve(st, n);
        }
    }

    static net::awaitable<void> pump(tcp::socket& from, tcp::socket& to) {
        char buf[16384];
        for (;;) {
            error_code ec;
            std::size_t n = co_await from.async_read_some(
                net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            co_await net::async_write(to, net::buffer(buf, n),
                                      net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
        }
        error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);
    }

    // CONNECT host:port → tunnel bytes both ways.
    net::awaitable<void> tunnel(beast::tcp_stream& st, const std::string& target) {
        ++owner.tunnels_;
        auto colon = target.rfind(':');
        tcp::resolver r(io);
        error_code ec;
        auto eps = co_await r.async_resolve(target.substr(0, colon), target.substr(colon + 1),
                                            net::redirect_error(net::use_awaitable, ec));
        tcp::socket up(io);
        if (!ec) co_await net::async_connect(up, eps, net::redirect_error(net::use_awaitable, ec));
        std::string answer = ec ? "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
                                : "HTTP/1.1 200 Connection established\r\n\r\n";
        co_await net::async_write(st.socket(), net::buffer(answer),
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec || !up.is_open()) co_return;
        net::co_spawn(io, pump(up, st.socket()), check);
        co_await pump(st.socket(), up);
        // Keep `up` alive until the other pump is done with it.
        net::steady_timer t(io, std::chrono::seconds(1));
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }

    template <typename Stream>
    net::awaitable<void> serve(Stream& st, int conn) {
        beast::flat_buffer buf;
        for (;;) {
            error_code ec;
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(1 << 26);
            co_await bhttp::async_read(st, buf, parser,
                                       net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            auto msg = parser.release();
            test_request req;
            req.method = std::string(msg.method_string());
            req.target = std::string(msg.target());
            req.body = msg.body();
            for (const auto& f : msg) {
                const auto n = f.name_string();
                req.headers[ascii_lower(std::string_view(n.data(), n.size()))] =
                    std::string(f.value());
            }
            req.arrived =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            req.connection = conn;
            if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
                if (proxy && msg.method() == bhttp::verb::connect) {
                    co_await tunnel(st, req.target);
                    co_return;
                }
            }
            {
                std::lock_guard lock(mu);
                log.push_back(req);
            }
            int now = ++owner.in_flight_;
            int prev = owner.max_in_flight_.load();
            while (now > prev && !owner.max_in_flight_.compare_exchange_weak(prev, now)) {
            }
            test_reply rep = handler(req);
            if (rep.delay > std::chrono::milliseconds(0)) {
                net::steady_timer t(io, rep.delay);
                co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
            --owner.in_flight_;
            if (!rep.raw.empty()) {
                co_await net::async_write(st, net::buffer(rep.raw),
                                          net::redirect_error(net::use_awaitable, ec));
                break;
            }
            bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(rep.status), 11};
            res.set(bhttp::field::server, "keyrot-test");
            for (const auto& [k, v] : rep.headers) res.set(k, v);
            if (!res.count(bhttp::field::content_type))
                res.set(bhttp::field::content_type, "application/json");
            res.body() = rep.body;
            res.keep_alive(msg.keep_alive() && !rep.close);
            res.prepare_payload();
            co_await bhttp::async_write(st, res, net::redirect_error(net::use_awaitable, ec));
            if (ec || !res.keep_alive() || rep.drop_after) break;
        }
        error_code ignored;
        beast::get_lowest_layer(st).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(st).socket().close(ignored);
    }
};

test_server::test_server(test_handler handler, std::string cert_file, std::string key_file,
                         bool connect_proxy)
    : impl_(std::make_unique<impl>(*this, std::move(handler), connect_proxy)) {
    if (!cert_file.empty()) {
        impl_->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
        impl_->tls->use_certificate_chain_file(cert_file);
        impl_->tls->use_private_key_file(key_file, ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
    port_ = impl_->acceptor.local_endpoint().port();
    net::co_spawn(impl_->io, impl_->accept_loop(), impl::check);
    impl_->thread = std::thread([this] { impl_->io.run(); });
}

test_server::~test_server() {
    impl_->io.stop();
    impl_->thread.join();
}

std::string test_server::url(const std::string& host) const {
    return std::string(impl_->tls ? "https://" : "http://") + host + ":" + std::to_string(port_);
}

std::vector<test_request> test_server::requests() const {
    std::lock_guard lock(impl_->mu);
    return impl_->log;
}

void test_server::clear() {
    std::lock_guard lock(impl_->mu);
    impl_->log.clear();
}

}  // namespace keyrot::testing
