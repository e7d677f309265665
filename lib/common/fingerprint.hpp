// Keys are identified by fingerprint: the first 16 hex digits of the SHA-256
// of the consumer key. Never store or print the key itself.
#pragma once

#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace keyrot {

std::string fingerprint(std::string_view consumer_key);
inline std::string fingerprint(const secret& consumer_key) {
    return fingerprint(std::string_view(consumer_key.reveal()));
}

}  // namespace keyrot
