// run_sync(awaitable): runs one coroutine to completion on a local io_context,
// rethrowing whatever escaped it. For unit and integration tests.
#pragma once

#include <exception>
#include <optional>
#include <utility>

#include "common/asio.hpp"

namespace keyrot::testing {

namespace detail {
// Asio 1.18's co_spawn wants a default-constructible T (result<T> is not): the
// value travels through an optional instead.
template <typename T>
net::awaitable<void> store(net::awaitable<T> aw, std::optional<T>& out) {
    out.emplace(co_await std::move(aw));
}
}  // namespace detail

template <typename T>
T run_sync(net::io_context& io, net::awaitable<T> aw) {
    std::optional<T> out;
    std::exception_ptr failure;
    net::co_spawn(io, detail::store(std::move(aw), out), [&](std::exception_ptr e) {
        if (e) failure = e;
    });
    io.restart();
    io.run();
    if (failure) std::rethrow_exception(failure);
    return std::move(*out);
}

template <typename T>
T run_sync(net::awaitable<T> aw) {
    net::io_context io;
    return run_sync(io, std::move(aw));
}

}  // namespace keyrot::testing
