#include "server.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "common/asio.hpp"
#include "oauth.hpp"

namespace keyrot::emulator {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::uint64_t k_body_limit = 1024 * 1024;
constexpr auto k_idle_timeout = std::chrono::seconds(60);

void fail(error_code ec, const char* what) {
    // Peers that go away are normal for a test server; log the rest.
    if (ec == net::error::operation_aborted || ec == net::error::eof ||
        ec == beast::error::timeout || ec == http::error::end_of_stream ||
        ec == net::error::connection_reset || ec == net::ssl::error::stream_truncated)
        return;
    std::cerr << "apigee-emulator: " << what << ": " << ec.message() << "\n";
}

http::response<http::string_body> make_reply(unsigned version, const response& r, bool keep_alive) {
    http::response<http::string_body> out{static_cast<http::status>(r.status), version};
    out.set(http::field::server, "apigee-emulator");
    if (!r.content_type.empty() && !r.body.empty())
        out.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) out.set(k, v);
    out.body() = r.body;
    out.keep_alive(keep_alive);
    out.prepare_payload();
    return out;
}

response google_error(int code, const char* status, const char* message) {
    response r;
    r.status = code;
    r.body = std::string("{\"error\":{\"code\":") + std::to_string(code) + ",\"message\":\"" +
             message + "\",\"status\":\"" + status + "\"}}";
    return r;
}

// One connection: read a request, let the emulator answer it, write, repeat.
template <typename Stream>
net::awaitable<void> serve(Stream& stream, emulator& emu) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(k_body_limit);
        parser.header_limit(64 * 1024);
        beast::get_lowest_layer(stream).expires_after(k_idle_timeout);
        error_code ec;
        co_await http::async_read(stream, buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // Answer what we can name (too big, garbled), then close.
            std::optional<response> r;
            if (ec == http::error::body_limit)
                r = google_error(413, "INVALID_ARGUMENT", "request body larger than 1 MB");
            else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                     ec != http::error::end_of_stream && ec != http::error::partial_message)
                r = google_error(400, "INVALID_ARGUMENT", "malformed HTTP request");
            if (r) {
                auto out = make_reply(11, *r, false);
                error_code wec;
                co_await http::async_write(stream, out,
                                           net::redirect_error(net::use_awaitable, wec));
                // Lingering close: a client still sending the rest of a big
                // body must finish before it reads our answer, so swallow
                // what it sends (bounded) instead of resetting the connection.
                beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
                std::vector<char> sink(64 * 1024);
                std::size_t drained = 0;
                while (!wec && drained < 64 * k_body_limit) {
                    drained += co_await stream.async_read_some(
                        net::buffer(sink), net::redirect_error(net::use_awaitable, wec));
                }
            } else {
                fail(ec, "read");
            }
            co_return;
        }
        auto& req = parser.get();
        request in;
        in.method = std::string(req.method_string());
        in.target = std::string(req.target());
        in.authorization = std::string(req[http::field::authorization]);
        in.content_type = std::string(req[http::field::content_type]);
        in.metadata_flavor = std::string(req["Metadata-Flavor"]);
        in.user_agent = std::string(req[http::field::user_agent]);
        in.body = std::move(req.body());
        response r = emu.handle(in);

        if (r.delay_ms > 0) {
            net::steady_timer timer(co_await net::this_coro::executor);
            timer.expires_after(std::chrono::milliseconds(r.delay_ms));
            error_code tec;
            co_await timer.async_wait(net::redirect_error(net::use_awaitable, tec));
        }
        if (r.drop) {
            // The write took effect; the client never hears about it.
            beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
            beast::get_lowest_layer(stream).close();
            co_return;
        }
        auto out = make_reply(req.version(), r, req.keep_alive());
        beast::get_lowest_layer(stream).expires_after(k_idle_timeout);
        co_await http::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            fail(ec, "write");
            co_return;
        }
        if (!out.keep_alive()) break;
    }
    error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
}

net::awaitable<void> plain_session(tcp::socket socket, emulator& emu) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream, emu);
}

net::awaitable<void> tls_session(tcp::socket socket, emulator& emu, ssl::context& ctx) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), ctx);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server,
                                    net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        fail(ec, "tls handshake");
        co_return;
    }
    co_await serve(stream, emu);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
}

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        std::cerr << "apigee-emulator: session failed: " << x.what() << "\n";
    }
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, emulator& emu, ssl::context* ctx) {
    for (;;) {
        error_code ec;
        tcp::socket socket =
            co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            if (!acceptor.is_open() || ec == net::error::operation_aborted) co_return;
            fail(ec, "accept");
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        auto ex = acceptor.get_executor();
        if (ctx)
            net::co_spawn(ex, tls_session(std::move(socket), emu, *ctx), log_exception);
        else
            net::co_spawn(ex, plain_session(std::move(socket), emu), log_exception);
    }
}

}  // namespace

void run_server(emulator& emu, const server_options& opts) {
    net::io_context ioc(1);
    std::unique_ptr<ssl::context> ctx;
    if (!opts.cert_file.empty()) {
        ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
        ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1);
        ctx->use_certificate_chain_file(opts.cert_file);
        ctx->use_private_key_file(opts.key_file, ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address(opts.bind), opts.port);
    tcp::acceptor acceptor(ioc);
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(net::socket_base::max_listen_connections);
    const auto port = acceptor.local_endpoint().port();

    if (!opts.port_file.empty()) {
        // Write then rename, so a reader never sees a half-written port.
        std::string tmp = opts.port_file + ".tmp";
        {
            std::ofstream f(tmp, std::ios::trunc);
            f << port << "\n";
            if (!f) throw std::runtime_error("cannot write port file " + opts.port_file);
        }
        std::filesystem::rename(tmp, opts.port_file);
    }
    emu.auth().set_self_url((ctx ? "https://" : "http://") +
                            (ep.address().is_v6() ? "[" + opts.bind + "]" : opts.bind) + ":" +
                            std::to_string(port));
    std::cout << "listening on " << opts.bind << ":" << port << (ctx ? " (https)" : "")
              << std::endl;

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](error_code, int) {
        error_code ec;
        acceptor.close(ec);
        ioc.stop();
    });
    net::co_spawn(ioc, accept_loop(acceptor, emu, ctx.get()), log_exception);
    ioc.run();
}

}  // namespace keyrot::emulator
