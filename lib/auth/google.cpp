// google: OAuth 2.0 access tokens for a service account (JWT bearer grant,
// RFC 7523, signed RS256 with OpenSSL), cached until shortly before expiry.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "auth/bearer.hpp"
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

// A bearer token minted from somewhere and cached until shortly before it
// expires. Concurrent callers wait for the one request in flight instead of
// each minting a token of their own.
class minting_source : public token_source {
  public:
    explicit minting_source(std::unique_ptr<http::client> client) : client_(std::move(client)) {}

    net::awaitable<result<secret>> authorization_header() override {
        // (Named arguments: GCC 12 mishandles temporaries passed to a coroutine.)
        net::any_io_executor ex = client_->executor();
        std::function<sys_ms()> clock = system_now;
        detail::token_cache::renewal renew = [this] { return mint_and_cache(); };
        auto r = co_await cache_.get(ex, clock, renew);
        co_return r;
    }

    void invalidate() override { cache_.invalidate(); }

  protected:
    struct minted {
        std::chrono::seconds expires_in{3600};
    };
    // Sends the token request; on success stores "Bearer <token>" in `out`.
    virtual net::awaitable<result<minted>> mint(sys_ms now, secret& out) = 0;

    http::client& client() { return *client_; }

    // {"access_token", "expires_in", "token_type"}: Google's token answer, from
    // the OAuth endpoint and the metadata server alike. Wipes the body.
    static result<minted> read_token_answer(std::string& body, secret& out, const char* who) {
        json doc = json::parse(body, nullptr, false);
        cleanse(body);
        auto b = detail::read_bearer(doc, std::chrono::seconds(3600), who);
        if (!b) return b.err();
        out = std::move(b->header);
        return minted{b->expires_in};
    }

  private:
    net::awaitable<result<secret>> mint_and_cache() {
        const sys_ms now = system_now();
        secret fresh;
        auto m = co_await mint(now, fresh);
        if (!m) co_return m.err();
        co_return cache_.store(std::move(fresh), now, m.value().expires_in);
    }

    std::unique_ptr<http::client> client_;
    detail::token_cache cache_;
};

class google_source final : public minting_source {
  public:
    google_source(std::string email, std::string key_id, pkey_ptr key, std::string token_target,
                  std::unique_ptr<http::client> client, std::string scope, std::string file,
                  std::string origin)
        : minting_source(std::move(client)),
          email_(std::move(email)),
          key_id_(std::move(key_id)),
          key_(std::move(key)),
          token_target_(std::move(token_target)),
          scope_(std::move(scope)),
          file_(std::move(file)),
          origin_(std::move(origin)) {}

    std::string describe() const override {
        return "google service account " + email_ + " (" + file_ + ", " + origin_ + ")";
    }

    std::string audience_;  // the token_uri as written in the key file

  private:
    net::awaitable<result<minted>> mint(sys_ms now, secret& out) override {
        auto jwt = sign_assertion(now);
        if (!jwt) co_return jwt.err();
        http::request req;
        req.method = "POST";
        req.target = token_target_;
        req.content_type = "application/x-www-form-urlencoded";
        req.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" +
                   jwt.value().reveal();
        auto r = co_await client().send(std::move(req));
        if (!r)
            co_return make_error(error::kind::auth,
                                 "token endpoint for " + email_ + ": " + r.err().describe());
        if (r->status != 200) {
            json doc = json::parse(r->body, nullptr, false);
            std::string why;
            if (doc.is_object()) {
                if (auto e = doc.find("error"); e != doc.end() && e->is_string())
                    why = e->get<std::string>();
                if (auto d = doc.find("error_description"); d != doc.end() && d->is_string())
                    why += (why.empty() ? "" : ": ") + d->get<std::string>();
            }
            co_return make_error(error::kind::auth,
                                 "token endpoint answered HTTP " + std::to_string(r->status) +
                                     (why.empty() ? "" : " " + detail::clip(why)) + " for " +
                                     email_);
        }
        co_return read_token_answer(r->body, out, "token endpoint");
    }

    static std::string b64url(std::string_view in) {
        std::string s = base64(in);
        while (!s.empty() && s.back() == '=') s.pop_back();
        for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
        return s;
    }

    result<secret> sign_assertion(sys_ms at) const {
        // JWT's iat and exp: seconds since the epoch.
        const std::int64_t now =
            std::chrono::floor<std::chrono::seconds>(at).time_since_epoch().count();
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

    std::string email_;
    std::string key_id_;
    pkey_ptr key_;
    std::string token_target_;
    std::string scope_;
    std::string file_;
    std::string origin_;
};

// The GCE/GKE metadata server (GKE Workload Identity): plain HTTP to a
// link-local address, the one exception to "no plain HTTP off loopback". The
// request carries no secret of ours: no Authorization, no body, only the
// Metadata-Flavor header the server demands.
class metadata_source final : public minting_source {
  public:
    metadata_source(std::unique_ptr<http::client> client, std::string host)
        : minting_source(std::move(client)), host_(std::move(host)) {}

    std::string describe() const override {
        return "google metadata server " + host_ + " (default service account)";
    }

  private:
    net::awaitable<result<minted>> mint(sys_ms, secret& out) override {
        http::request req;
        req.method = "GET";
        req.target = std::string(k_metadata_token_path);
        req.headers.emplace_back("Metadata-Flavor", "Google");
        auto r = co_await client().send(std::move(req));
        if (!r)
            co_return make_error(error::kind::auth,
                                 "GCE metadata server " + host_ + ": " + r.err().describe() +
                                     " (no key file found either: "
                                     "auth.path, GOOGLE_APPLICATION_CREDENTIALS, "
                                     "$CREDENTIALS_DIRECTORY/sa-key.json)");
        if (r->status != 200) {
            cleanse(r->body);
            co_return make_error(error::kind::auth, "GCE metadata server " + host_ +
                                                        " answered HTTP " +
                                                        std::to_string(r->status) +
                                                        " for the default service "
                                                        "account's token");
        }
        co_return read_token_answer(r->body, out, "GCE metadata server");
    }

    std::string host_;
};

}  // namespace

result<std::unique_ptr<token_source>> make_google(const std::string& key_file,
                                                  http::client* for_google,
                                                  const std::string& origin_note) {
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
        "https://www.googleapis.com/auth/cloud-platform", key_file, origin_note);
    src->audience_ = token_uri;
    return std::unique_ptr<token_source>(std::move(src));
}

result<std::unique_ptr<token_source>> make_google_metadata(const std::string& host_port,
                                                           http::client* for_google) {
    auto cfg_error = [&](std::string m) { return make_error(error::kind::config, std::move(m)); };
    if (!for_google) return cfg_error("auth method google needs an HTTP client");
    // host[:port] only: parse it as an https URL to get the host without the
    // plain-HTTP rule, then allow plain HTTP to exactly that host.
    auto hp = http::parse_url("https://" + host_port);
    if (host_port.empty() || host_port.find('/') != std::string::npos || !hp)
        return cfg_error("GCE_METADATA_HOST must be host[:port], not '" + detail::clip(host_port) +
                         "'");
    http::options o;
    o.base_url = "http://" + host_port;
    o.plain_http_host = hp->host;
    o.https_proxy = std::string{};  // never through a proxy (plain HTTP is never proxied anyway)
    o.no_proxy = std::string{};
    o.timeout = 10 * k_second;
    o.connect_timeout = 3 * k_second;  // off GCE, 169.254.169.254 just does not answer
    o.max_concurrency = 2;
    o.requests_per_second = 0;
    o.max_attempts = 3;
    o.max_retry_time = 15 * k_second;
    o.user_agent = for_google->opts().user_agent;
    auto client = http::client::create(for_google->executor(), std::move(o));
    if (!client) return cfg_error("GCE metadata server " + host_port + ": " + client.err().message);
    return std::unique_ptr<token_source>(
        std::make_unique<metadata_source>(std::move(client.value()), host_port));
}

}  // namespace keyrot::auth
