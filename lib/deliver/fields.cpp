#include "deliver/fields.hpp"

#include <openssl/evp.h>

#include <array>

#include "common/duration.hpp"
#include "common/fingerprint.hpp"

namespace keyrot::deliver {

namespace {

std::string hex(const unsigned char* d, std::size_t n) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        out += k_digits[d[i] >> 4];
        out += k_digits[d[i] & 15];
    }
    return out;
}

constexpr std::string_view k_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string payload::fingerprint() const { return keyrot::fingerprint(current.consumer_key); }

std::string payload::previous_fingerprint() const {
    return previous ? keyrot::fingerprint(previous->consumer_key) : std::string{};
}

field_map payload_fields(const payload& p) {
    field_map f;
    f["consumerKey"] = p.current.consumer_key;
    f["consumerSecret"] = p.current.consumer_secret;
    f["expiresAt"] = secret(format_time(p.current.expires_at));
    if (p.previous) {
        f["previousConsumerKey"] = p.previous->consumer_key;
        f["previousConsumerSecret"] = p.previous->consumer_secret;
        f["previousExpiresAt"] = secret(format_time(p.previous->expires_at));
    }
    return f;
}

const std::vector<std::string>& field_names() {
    static const std::vector<std::string> names = {
        "consumerKey",         "consumerSecret",         "expiresAt",
        "previousConsumerKey", "previousConsumerSecret", "previousExpiresAt"};
    return names;
}

bool is_previous_field(std::string_view name) { return name.rfind("previous", 0) == 0; }

std::string fields_digest(const field_map& f) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    for (const auto& [name, value] : f) {
        EVP_DigestUpdate(ctx, name.data(), name.size());
        EVP_DigestUpdate(ctx, "=", 1);
        EVP_DigestUpdate(ctx, value.reveal().data(), value.reveal().size());
        EVP_DigestUpdate(ctx, "\n", 1);
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md.data(), &len);
    EVP_MD_CTX_free(ctx);
    return hex(md.data(), len);
}

std::string fields_json(const field_map& f) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, value] : f) j[name] = value.reveal();
    std::string out = j.dump();
    wipe(j);
    return out;
}

std::string current_key_fingerprint(const field_map& f) {
    const auto it = f.find("consumerKey");
    return it == f.end() ? std::string{} : fingerprint(it->second);
}

std::string previous_key_fingerprint(const field_map& f) {
    const auto it = f.find("previousConsumerKey");
    return it == f.end() || it->second.empty() ? std::string{} : fingerprint(it->second);
}

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                       (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += k_alphabet[(n >> 6) & 63];
        out += k_alphabet[n & 63];
    }
    if (i + 1 == in.size()) {
        const auto n = std::uint32_t(std::uint8_t(in[i])) << 16;
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        const auto n = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                       (std::uint32_t(std::uint8_t(in[i + 1])) << 8);
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += k_alphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        std::uint32_t n = 0;
        int pad = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = in[i + k];
            std::uint32_t v = 0;
            if (c == '=') {
                if (i + 4 != in.size() || k < 2) return std::nullopt;
                ++pad;
            } else {
                if (pad) return std::nullopt;  // data after padding
                const auto pos = k_alphabet.find(c);
                if (pos == std::string_view::npos) return std::nullopt;
                v = static_cast<std::uint32_t>(pos);
            }
            n = (n << 6) | v;
        }
        out += static_cast<char>((n >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(n & 0xFF);
    }
    return out;
}

void wipe(nlohmann::json& j) {
    if (j.is_string()) {
        cleanse(j.get_ref<std::string&>());
    } else if (j.is_structured()) {
        for (auto& v : j) wipe(v);
    }
}

error make_error(error::kind k, std::string message, int status) {
    error e;
    e.what = k;
    e.status = status;
    e.message = std::move(message);
    return e;
}

nlohmann::json parse_wiping(http::response& r) {
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    cleanse(r.body);
    return j;
}

}  // namespace keyrot::deliver
