// google: OAuth 2.0 access tokens for a service account (JWT bearer grant,
// RFC 7523, signed RS256 with OpenSSL), cached until shortly before expiry.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "auth/token_source.hpp"
#include "http/client.hpp"
#include "http/rules.hpp"

namespace keyrot::auth {

namespace {

using json = nlohmann::json;

error make_error(error::kind k, std::string msg) {
    error e;
    e.what = k;
    e.message = std::move(msg);
    return e;
}

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

std::string clip(std::string s) {
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (s.size() > 200) s.resize(200);
    return s;
}

class google_source final : public token_source {
  public:
    google_source(std::string email, std::string key_id, pkey_ptr key, std::string token_target,
                  std::unique_ptr<http::client> client, std::string scope, std::string file)
        : email_(std::move(email)),
          key_id_(std::move(key_id)),
          key_(std::move(key)),
          token_target_(std::move(token_target)),
          client_(std::move(client)),
          scope_(std::move(scope)),
          file_(std::move(file)) {}

    net::awaitable<result<secret>> authorization_header() override {
        // Concurrent callers wait for the one request in flight instead of each
        // minting a token of their own.
        while (minting_) {
            net::steady_timer t(client_->executor(), std::chrono::steady_clock::time_point::max());
            waiters_.push_back(&t);
            boost::system::error_code ec;
            co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
        if (!header_.empty() && now_seconds() < refresh_at_) co_return header_;
        minting_ = true;
        auto r = co_await mint();
        minting_ = false;
        for (auto* w : waiters_) w->cancel();
        waiters_.clear();
        co_return r;
    }

    void invalidate() override {
        header_.clear();
        refresh_at_ = 0;
    }
    std::string describe() const override {
        return "google service account " + email_ + " (" + file_ + ")";
    }

  private:
    net::awaitable<result<secret>> mint() {
        auto now = now_seconds();
        auto jwt = sign_assertion(now);
        if (!jwt) co_return jwt.err();
        http::request req;
        req.method = "POST";
        req.target = token_target_;
        req.content_type = "application/x-www-form-urlencoded";
        req.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" +
                   jwt.value().reveal();
        auto r = co_await client_->send(std::move(req));
        if (!r) co_return make_error(error::kind::auth, "token endpoint: " + r.err().describe());
        json doc = json::parse(r->body, nullptr, false);
        if (r->status != 200) {
            std::string why;
            if (doc.is_object()) {
                if (auto e = doc.find("error"); e != doc.end() && e->is_string())
                    why = e->get<std::string>();
                if (auto d = doc.find("error_description"); d != doc.end() && d->is_string())
                    why += (why.empty() ? "" : ": ") + d->get<std::string>();
            }
            co_return make_error(error::kind::auth,
                                 "token endpoint answered HTTP " + std::to_string(r->status) +
                                     (why.empty() ? "" : " " + clip(why)) + " for " + email_);
        }
        if (!doc.is_object() || !doc.contains("access_token") || !doc["access_token"].is_string())
            co_return make_error(error::kind::auth, "token endpoint: answer has no access_token");
        std::int64_t expires_in = 3600;
        if (auto e = doc.find("expires_in"); e != doc.end() && e->is_number_integer())
            expires_in = e->get<std::int64_t>();
        auto& tok = doc["access_token"].get_ref<std::string&>();
        header_ = secret("Bearer " + tok);
        cleanse(tok);
        cleanse(r->body);
        // Renew ahead of expiry: 5 minutes, or a tenth of a short lifetime.
        refresh_at_ = now + expires_in - std::min<std::int64_t>(300, expires_in / 10);
        co_return header_;
    }

    static std::int64_t now_seconds() {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    static std::string b64url(std::string_view in) {
        std::string s = base64(in);
        while (!s.empty() && s.back() == '=') s.pop_back();
        for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
        return s;
    }

    result<secret> sign_assertion(std::int64_t now) const {
        json header = {{"alg", "RS256"}, {"typ", "JWT"}};
        if (!key_id_.empty()) header["kid"] = key_id_;
        json claims = {{"iss", email_},
                       {"scope", scope_},
                       {"aud", audience()},
                       {"iat", now},
                       {"exp", now + 3600}};
        std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                    EVP_MD_CTX_free);
        std::size_t len = 0;
        if (!ctx ||
            EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
            EVP_DigestSign(ctx.get(), nullptr, &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
            return make_error(error::kind::auth, "cannot sign the token request for " + email_);
        std::string sig(len, '\0');
        if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
            return make_error(error::kind::auth, "cannot sign the token request for " + email_);
        sig.resize(len);
        return secret(input + "." + b64url(sig));
    }

    std::string audience() const { return audience_.empty() ? token_target_ : audience_; }

  public:
    std::string audience_;  // the token_uri as written in the key file

  private:
    std::string email_;
    std::string key_id_;
    pkey_ptr key_;
    std::string token_target_;
    std::unique_ptr<http::client> client_;
    std::string scope_;
    std::string file_;
    secret header_;
    std::int64_t refresh_at_ = 0;
    bool minting_ = false;
    std::vector<net::steady_timer*> waiters_;
};

}  // namespace

result<std::unique_ptr<token_source>> make_google(const std::string& key_file,
                                                  http::client* for_google) {
    auto cfg_error = [&](std::string m) { return make_error(error::kind::config, std::move(m)); };
    if (!for_google) return cfg_error("auth method google needs an HTTP client");
    std::ifstream in(key_file, std::ios::binary);
    if (!in) return cfg_error("cannot read service-account key file " + key_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    json doc = json::parse(text, nullptr, false);
    cleanse(text);
    auto str = [&](const char* k) -> std::string {
        if (!doc.is_object()) return {};
        auto it = doc.find(k);
        return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    if (!doc.is_object()) return cfg_error(key_file + " is not JSON");
    if (str("type") != "service_account")
        return cfg_error(key_file +
                         ": only \"type\": \"service_account\" keys are supported, not \"" +
                         str("type") + "\"");
    std::string email = str("client_email");
    std::string pem = str("private_key");
    std::string token_uri = str("token_uri");
    if (token_uri.empty()) token_uri = "https://oauth2.googleapis.com/token";
    if (email.empty() || pem.empty())
        return cfg_error(key_file + ": client_email and private_key are required");
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    cleanse(pem);
    if (doc.contains("private_key")) cleanse(doc["private_key"].get_ref<std::string&>());
    if (!key || EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA)
        return cfg_error(key_file + ": private_key is not an RSA PEM key");

    // token_uri = scheme://authority/path: a client of its own for that origin.
    auto scheme_end = token_uri.find("://");
    auto path_start =
        scheme_end == std::string::npos ? std::string::npos : token_uri.find('/', scheme_end + 3);
    std::string origin = token_uri.substr(0, path_start);
    std::string target = path_start == std::string::npos ? "/" : token_uri.substr(path_start);
    http::options o = for_google->opts();
    o.base_url = origin;
    o.requests_per_second = 0;
    o.observer = {};
    o.max_concurrency = 2;
    auto client = http::client::create(for_google->executor(), std::move(o));
    if (!client) return cfg_error(key_file + ": token_uri: " + client.err().message);
    auto src = std::make_unique<google_source>(
        email, str("private_key_id"), std::move(key), target, std::move(client.value()),
        "https://www.googleapis.com/auth/cloud-platform", key_file);
    src->audience_ = token_uri;
    return std::unique_ptr<token_source>(std::move(src));
}

}  // namespace keyrot::auth
