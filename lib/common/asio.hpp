// The one way to include Boost.Asio in this project.
//
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>
// (a Boost 1.74 bug), so every Asio include goes through here.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on

namespace keyrot {
namespace net = boost::asio;
}
