#include "common/secret.hpp"

#include <openssl/crypto.h>

namespace keyrot {

void cleanse(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

secret::secret(secret&& other) noexcept : value_(std::move(other.value_)) { other.clear(); }

secret& secret::operator=(const secret& other) {
    if (this != &other) {
        clear();
        value_ = other.value_;
    }
    return *this;
}

secret& secret::operator=(secret&& other) noexcept {
    if (this != &other) {
        clear();
        value_ = std::move(other.value_);
        other.clear();
    }
    return *this;
}

secret::~secret() { clear(); }

void secret::clear() { cleanse(value_); }

}  // namespace keyrot
