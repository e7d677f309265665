#include "notify/webhook.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace keyrot::notify {
namespace {

error config_error(std::string message) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(message);
    return e;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Reads a whole file into a secret, trimming surrounding whitespace.
result<secret> read_secret_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return config_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    std::size_t b = 0, e = text.size();
    while (b < e && is_space(text[b])) ++b;
    while (e > b && is_space(text[e - 1])) --e;
    secret out(text.substr(b, e - b));
    cleanse(text);
    if (out.empty()) return config_error(p.string() + " is empty");
    return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

result<secret> decode_whsec(const secret& text) {
    std::string_view b64 = text.reveal();
    if (b64.starts_with("whsec_")) b64.remove_prefix(6);
    if (b64.empty() || b64.size() % 4 != 0)
        return config_error("not a whsec_<base64> secret (bad length)");
    for (char c : b64)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='))
            return config_error("not a whsec_<base64> secret (bad character)");
    std::string raw(b64.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    if (n < 0) {
        cleanse(raw);
        return config_error("not a whsec_<base64> secret (bad base64)");
    }
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t len = static_cast<std::size_t>(n);
    if (b64.ends_with("=="))
        len -= 2;
    else if (b64.ends_with("="))
        len -= 1;
    raw.resize(len);
    secret out(std::move(raw));
    if (len < 24 || len > 512) return config_error("a whsec_ secret must be 24 to 512 bytes");
    return out;
}

result<signer> signer::from_secrets(const std::vector<secret>& whsec,
                                    const std::vector<secret>& ed25519_pem) {
    signer s;
    for (std::size_t i = 0; i < whsec.size(); ++i) {
        auto k = decode_whsec(whsec[i]);
        if (!k) return k.err();
        s.hmac_keys_.push_back(std::move(k.value()));
    }
    for (std::size_t i = 0; i < ed25519_pem.size(); ++i) {
        const std::string& pem = ed25519_pem[i].reveal();
        BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        if (!bio) return config_error("out of memory reading an Ed25519 key");
        EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        if (!key) return config_error("not a PEM private key");
        std::shared_ptr<void> owned(key, [](void* k) { EVP_PKEY_free(static_cast<EVP_PKEY*>(k)); });
        if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
            return config_error("the private key is not an Ed25519 key");
        s.ed25519_keys_.push_back(std::move(owned));
    }
    return s;
}

result<signer> signer::load(const std::vector<std::filesystem::path>& whsec_files,
                            const std::vector<std::filesystem::path>& ed25519_pem_files) {
    signer s;
    for (const auto& p : whsec_files) {
        auto text = read_secret_file(p);
        if (!text) return text.err();
        auto one = from_secrets({text.value()}, {});
        if (!one) return config_error(p.string() + ": " + one.err().message);
        s.hmac_keys_.push_back(std::move(one.value().hmac_keys_.front()));
    }
    for (const auto& p : ed25519_pem_files) {
        auto text = read_secret_file(p);
        if (!text) return text.err();
        auto one = from_secrets({}, {text.value()});
        if (!one) return config_error(p.string() + ": " + one.err().message);
        s.ed25519_keys_.push_back(std::move(one.value().ed25519_keys_.front()));
    }
    return s;
}

std::string signer::signature_header(std::string_view id, std::int64_t timestamp_s,
                                     std::string_view body) const {
    std::string content;
    content.reserve(id.size() + body.size() + 24);
    content.append(id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
    const auto* data = reinterpret_cast<const unsigned char*>(content.data());

    std::string out;
    for (const auto& k : hmac_keys_) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        const std::string& key = k.reveal();
        if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, content.size(), mac,
                  &len))
            continue;  // only on allocation failure; the other signatures still go out
        if (!out.empty()) out += ' ';
        out += "v1," + base64_encode({reinterpret_cast<const char*>(mac), len});
    }
    for (const auto& k : ed25519_keys_) {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        if (!ctx) continue;
        unsigned char sig[64];
        std::size_t len = sizeof sig;
        const bool ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr,
                                           static_cast<EVP_PKEY*>(k.get())) == 1 &&
                        EVP_DigestSign(ctx, sig, &len, data, content.size()) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok) continue;
        if (!out.empty()) out += ' ';
        out += "v1a," + base64_encode({reinterpret_cast<const char*>(sig), len});
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> webhook_headers(const signer& s,
                                                                 std::string_view id,
                                                                 std::int64_t timestamp_s,
                                                                 std::string_view body) {
    return {{"webhook-id", std::string(id)},
            {"webhook-timestamp", std::to_string(timestamp_s)},
            {"webhook-signature", s.signature_header(id, timestamp_s, body)}};
}

}  // namespace keyrot::notify
