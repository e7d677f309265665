// keyrot::http request and response: what a transport sends and answers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.hpp"

namespace keyrot::http {

struct request {
    std::string method = "GET";
    std::string target;  // path + query, relative to the base URL's prefix
    std::string body;    // wiped after sending
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers;
    secret authorization;  // full Authorization header value; empty: none sent
    // The caller knows this request is safe to repeat although its method and
    // target do not say so (a POST whose body, not its query, says
    // approve/revoke): the client retries it as it retries a PUT.
    bool idempotent = false;
};

struct response {
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    int attempts = 1;  // how many attempts it took

    // First header of that name (case-insensitive), or nullopt.
    std::optional<std::string> header(std::string_view name) const;
};

}  // namespace keyrot::http
