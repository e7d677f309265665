// Plain values the Apigee API takes and returns beyond common/model.hpp. No
// Asio here, so the JSON mapping (and its fuzzer, built with clang) can use them.
#pragma once

#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/model.hpp"
#include "common/secret.hpp"

namespace keyrot::apigee {

struct app_page {
    std::vector<app> apps;
    std::string next_page_token;  // "" at the end
};

struct new_key {
    secret consumer_key;
    secret consumer_secret;
    millis expires_in_seconds = k_never;  // -1: never
    std::vector<attribute> attributes;
    std::vector<std::string> scopes;
};

}  // namespace keyrot::apigee
