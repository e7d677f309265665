#include "common/fingerprint.hpp"

#include <openssl/sha.h>

#include <array>

namespace keyrot {

std::string fingerprint(std::string_view consumer_key) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(consumer_key.data()), consumer_key.size(),
           digest.data());
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(16);
    for (int i = 0; i < 8; ++i) {
        out.push_back(hex[digest[i] >> 4]);
        out.push_back(hex[digest[i] & 0xf]);
    }
    return out;
}

}  // namespace keyrot
