// Plain values the Apigee API takes and returns beyond common/model.hpp. No
// Asio here, so the JSON mapping (and its fuzzer, built with clang) can use them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/model.hpp"
#include "common/secret.hpp"

namespace keyrot::apigee {

struct app_page {
    std::vector<app> apps;
    std::string next_page_token;   // "" at the end
    std::int64_t total_size = -1;  // `totalSize` when the page says it, else -1
};

struct new_key {
    secret consumer_key;
    secret consumer_secret;
    millis expires_in_seconds = k_never;  // -1: never
    std::vector<attribute> attributes;
    // No scopes: Apigee may refuse scopes on a key that has no product yet
    // (docs/apigee-fidelity.md); they are set after the products.
};

}  // namespace keyrot::apigee
