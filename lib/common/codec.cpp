#include "common/codec.hpp"

#include <openssl/crypto.h>

#include <cstdint>

#include "common/secret.hpp"

namespace keyrot {
namespace {

int hex_value(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::optional<std::string> base32_decode(std::string_view text) {
    std::string out;
    std::uint32_t buffer = 0;
    // The secret's bits pass through `buffer`: wiped on every way out (a plain
    // `buffer = 0` is a dead store, which the compiler removes).
    struct wipe {
        std::uint32_t& b;
        ~wipe() { OPENSSL_cleanse(&b, sizeof b); }
    } const wiped{buffer};
    int bits = 0;
    for (char ch : text) {
        if (ch == ' ' || ch == '-' || ch == '=' || ch == '\n' || ch == '\r' || ch == '\t') continue;
        int v = -1;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        if (ch >= 'a' && ch <= 'z') v = ch - 'a';
        if (ch >= '2' && ch <= '7') v = ch - '2' + 26;
        if (v < 0) {
            cleanse(out);
            return std::nullopt;
        }
        buffer = (buffer << 5) | static_cast<std::uint32_t>(v);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buffer >> bits) & 0xff));
        }
    }
    if (out.empty()) return std::nullopt;
    return out;
}

}  // namespace keyrot
