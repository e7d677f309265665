#include "auth/totp.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include "common/secret.hpp"

namespace keyrot::auth {

std::string totp(std::string_view key, std::chrono::sys_seconds at, int digits, int step) {
    const std::int64_t unix_seconds = at.time_since_epoch().count();
    const std::uint64_t counter = static_cast<std::uint64_t>(unix_seconds < 0 ? 0 : unix_seconds) /
                                  static_cast<std::uint64_t>(step);
    std::array<unsigned char, 8> msg{};
    for (int i = 7; i >= 0; --i)
        msg[static_cast<std::size_t>(i)] =
            static_cast<unsigned char>((counter >> (8 * (7 - i))) & 0xff);
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), msg.data(), msg.size(), mac.data(),
         &len);
    // RFC 4226 dynamic truncation.
    const unsigned offset = mac[len - 1] & 0x0f;
    const std::uint32_t bin = (static_cast<std::uint32_t>(mac[offset] & 0x7f) << 24) |
                              (static_cast<std::uint32_t>(mac[offset + 1]) << 16) |
                              (static_cast<std::uint32_t>(mac[offset + 2]) << 8) |
                              static_cast<std::uint32_t>(mac[offset + 3]);
    std::uint32_t mod = 1;
    for (int i = 0; i < digits; ++i) mod *= 10;
    std::string code = std::to_string(bin % mod);
    if (static_cast<int>(code.size()) < digits)
        code.insert(0, static_cast<std::size_t>(digits) - code.size(), '0');
    OPENSSL_cleanse(mac.data(), mac.size());
    return code;
}

}  // namespace keyrot::auth
