// keyrot::http::transport: "send one request, get its answer", the seam under
// lib/apigee. http::client implements it over the network; tests implement it
// in-process (tests/unit/crash_window_test.cpp runs the executor against the
// emulator's request handler and fails chosen calls).
//
// Contract (as http::client::send): the response for any HTTP status; an error
// only when no usable response came (network: the request may or may not have
// taken effect; timed_out for timeouts).
#pragma once

#include <utility>  // before Asio: see common/asio.hpp

#include "common/asio.hpp"
#include "common/result.hpp"
#include "http/message.hpp"

namespace keyrot::http {

class transport {
  public:
    virtual ~transport() = default;
    virtual net::awaitable<result<response>> send(request req) = 0;
};

}  // namespace keyrot::http
