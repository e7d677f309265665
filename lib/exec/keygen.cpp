#include "exec/keygen.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>
#include <string>

namespace keyrot::exec {

secret random_token(std::size_t length) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static constexpr unsigned n = sizeof alphabet - 1;  // 62
    static constexpr unsigned limit = 256 - (256 % n);  // 248: no modulo bias
    std::string out;
    out.reserve(length);
    std::array<unsigned char, 64> buf{};
    while (out.size() < length) {
        if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
            throw std::runtime_error("OpenSSL RAND_bytes failed");
        for (unsigned char b : buf) {
            if (b < limit && out.size() < length) out.push_back(alphabet[b % n]);
        }
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    return secret(std::move(out));
}

}  // namespace keyrot::exec
