#include "common/secret.hpp"

#include <openssl/crypto.h>

#include <fstream>
#include <iterator>

#include "common/text.hpp"

namespace keyrot {

void cleanse(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

void trim_secret(std::string& s) {
    const std::string_view t = trim_space(s);
    if (t.size() == s.size()) return;
    std::string out(t);
    cleanse(s);
    s = std::move(out);
}

std::string read_secret_file(const std::string& path) {
    std::string raw;
    if (std::ifstream in(path, std::ios::binary); in)
        raw.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    trim_secret(raw);
    return raw;
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
