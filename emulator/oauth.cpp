#include "oauth.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "common/codec.hpp"

namespace keyrot::emulator {

using json = nlohmann::json;

namespace {

constexpr std::size_t k_history = 10000;
constexpr std::int64_t k_max_lifetime_s = 3600;  // Google: "short-lived token (60 minutes)"
constexpr std::int64_t k_skew_s = 60;
constexpr std::string_view k_scope = "https://www.googleapis.com/auth/cloud-platform";
constexpr std::string_view k_jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// Google's OAuth error JSON: 400 {"error": ..., "error_description": ...}.
response oauth_error(const std::string& error, const std::string& description, int status = 400) {
    response r;
    r.status = status;
    r.body = json{{"error", error}, {"error_description", description}}.dump();
    return r;
}

response text(int status, std::string body) {
    response r;
    r.status = status;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(body);
    return r;
}

std::map<std::string, std::string> parse_form(std::string_view body) {
    std::map<std::string, std::string> out;
    std::size_t p = 0;
    while (p <= body.size()) {
        auto amp = body.find('&', p);
        if (amp == std::string_view::npos) amp = body.size();
        auto kv = body.substr(p, amp - p);
        auto eq = kv.find('=');
        auto k = keyrot::percent_decode(kv.substr(0, eq), true);
        auto v = eq == std::string_view::npos ? std::optional<std::string>("")
                                              : keyrot::percent_decode(kv.substr(eq + 1), true);
        if (k && v && !k->empty()) out.emplace(std::move(*k), std::move(*v));
        p = amp + 1;
    }
    return out;
}

std::optional<std::string> b64url_decode(std::string_view in) {
    std::string s(in);
    for (auto& c : s) {
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '+' || c == '/' || c == '=')
            return std::nullopt;  // base64url without padding only
    }
    while (s.size() % 4) s += '=';
    std::string out(s.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    for (auto it = s.rbegin(); it != s.rend() && *it == '='; ++it) ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::int64_t> int_claim(const json& claims, const char* name) {
    auto it = claims.find(name);
    if (it == claims.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
}

}  // namespace

oauth::oauth() : rng_(std::random_device{}()) {}

void oauth::add_service_account(const std::string& key_file) {
    std::ifstream in(key_file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read service-account key file " + key_file);
    json doc = json::parse(in, nullptr, false);
    if (!doc.is_object() || doc.value("type", "") != "service_account" ||
        !doc.value("client_email", json()).is_string() ||
        !doc.value("private_key", json()).is_string())
        throw std::runtime_error(key_file +
                                 ": not a service-account key (type, client_email, private_key)");
    std::string pem = doc["private_key"].get<std::string>();
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> priv(
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr,
        EVP_PKEY_free);
    if (!priv || EVP_PKEY_base_id(priv.get()) != EVP_PKEY_RSA)
        throw std::runtime_error(key_file + ": private_key is not an RSA PEM key");
    // Keep only the public half: write it out and read it back.
    std::unique_ptr<BIO, decltype(&BIO_free)> pub_bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!pub_bio || PEM_write_bio_PUBKEY(pub_bio.get(), priv.get()) != 1)
        throw std::runtime_error(key_file + ": cannot extract the public key");
    EVP_PKEY* pub = PEM_read_bio_PUBKEY(pub_bio.get(), nullptr, nullptr, nullptr);
    if (!pub) throw std::runtime_error(key_file + ": cannot extract the public key");
    service_account sa;
    sa.email = doc["client_email"].get<std::string>();
    sa.token_uri = doc.value("token_uri", "");
    sa.public_key =
        std::shared_ptr<void>(pub, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
    accounts_.push_back(std::move(sa));
}

void oauth::set_basic(std::string user_colon_password) {
    basic_ = user_colon_password.empty() ? "" : "Basic " + base64(user_colon_password);
}

bool oauth::required() const {
    return !static_token_.empty() || !basic_.empty() || !accounts_.empty() ||
           (edge_ && (!edge_user_.empty() || !passcodes_.empty()));
}

bool oauth::accepts(const std::string& authorization, std::int64_t now_ms) {
    bool ok = false;
    if (!basic_.empty() && authorization == basic_) ok = true;
    // Edge: the user's Basic pair, unless the account has MFA (Apigee refuses
    // Basic authorization on an account with MFA since October 2020).
    if (!ok && edge_ && !edge_user_.empty() && mfa_key_.empty() &&
        authorization == "Basic " + base64(edge_user_ + ":" + edge_password_))
        ok = true;
    if (!ok && authorization.rfind("Bearer ", 0) == 0) {
        std::string tok = authorization.substr(7);
        if (!static_token_.empty() && tok == static_token_) {
            ok = true;
        } else if (auto it = live_.find(tok); it != live_.end() && it->second > now_ms) {
            ok = true;
            ++accepted_issued_;
        }
    }
    if (!ok) ++rejected_;
    return ok;
}

std::string oauth::issue(const std::string& source, std::int64_t now_ms) {
    static const char* hex = "0123456789abcdef";
    std::string tok = edge_ ? "edge-emu-" : "ya29.emu-";
    for (int i = 0; i < 40; ++i) tok += hex[rng_() & 15];
    std::int64_t exp = now_ms + ttl_s_ * 1000;
    // Drop expired tokens so the table stays small.
    for (auto it = live_.begin(); it != live_.end();)
        it = it->second <= now_ms ? live_.erase(it) : std::next(it);
    live_[tok] = exp;
    history_.push_back({tok, source, exp});
    if (history_.size() > k_history) history_.erase(history_.begin());
    return tok;
}

response oauth::token_endpoint(const request& req, std::int64_t now_ms) {
    if (req.method != "POST") {
        auto r = oauth_error("invalid_request", "the token endpoint takes POST", 405);
        r.headers.emplace_back("Allow", "POST");
        return r;
    }
    ++token_requests_;
    auto fail = [&](const std::string& error, const std::string& description) {
        ++token_errors_;
        return oauth_error(error, description);
    };
    auto form = parse_form(req.body);
    const std::string grant = form.count("grant_type") ? form["grant_type"] : "";
    if (grant != k_jwt_bearer)
        return fail("unsupported_grant_type", "Invalid grant_type: " + grant);
    const std::string& jwt = form["assertion"];
    auto d1 = jwt.find('.');
    auto d2 = d1 == std::string::npos ? std::string::npos : jwt.find('.', d1 + 1);
    if (d2 == std::string::npos || jwt.find('.', d2 + 1) != std::string::npos)
        return fail("invalid_grant", "Invalid JWT: not three base64url parts");
    auto head = b64url_decode(std::string_view(jwt).substr(0, d1));
    auto body = b64url_decode(std::string_view(jwt).substr(d1 + 1, d2 - d1 - 1));
    auto sig = b64url_decode(std::string_view(jwt).substr(d2 + 1));
    if (!head || !body || !sig) return fail("invalid_grant", "Invalid JWT: bad base64url");
    json h = json::parse(*head, nullptr, false), claims = json::parse(*body, nullptr, false);
    if (!h.is_object() || !claims.is_object())
        return fail("invalid_grant", "Invalid JWT: header or claims are not JSON objects");
    if (h.value("alg", json()) != "RS256")
        return fail("invalid_grant", "Invalid JWT: alg must be RS256");

    const std::string iss =
        claims.value("iss", json()).is_string() ? claims["iss"].get<std::string>() : std::string();
    auto sa = std::find_if(accounts_.begin(), accounts_.end(),
                           [&](const service_account& a) { return a.email == iss; });
    if (sa == accounts_.end()) return fail("invalid_grant", "Invalid grant: account not found");

    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const std::string signed_part = jwt.substr(0, d2);
    bool good =
        ctx &&
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                             static_cast<EVP_PKEY*>(sa->public_key.get())) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                         sig->size(), reinterpret_cast<const unsigned char*>(signed_part.data()),
                         signed_part.size()) == 1;
    if (!good) return fail("invalid_grant", "Invalid JWT Signature.");

    const std::string aud =
        claims.value("aud", json()).is_string() ? claims["aud"].get<std::string>() : std::string();
    bool aud_ok = (!sa->token_uri.empty() && aud == sa->token_uri) ||
                  (!self_url_.empty() && aud == self_url_ + "/token");
    if (!aud_ok)
        return fail("invalid_grant",
                    "Invalid JWT: Failed audience check. The right audience is " +
                        (sa->token_uri.empty() ? self_url_ + "/token" : sa->token_uri));

    bool scope_ok = false;
    if (claims.value("scope", json()).is_string()) {
        std::istringstream scopes(claims["scope"].get<std::string>());
        for (std::string s; scopes >> s;) scope_ok = scope_ok || s == k_scope;
    }
    if (!scope_ok)
        return fail("invalid_scope", "Invalid OAuth scope or ID token audience provided.");

    auto iat = int_claim(claims, "iat"), exp = int_claim(claims, "exp");
    const std::int64_t now_s = now_ms / 1000;
    if (!iat || !exp || *exp <= now_s || *exp <= *iat || *exp - *iat > k_max_lifetime_s ||
        *iat > now_s + k_skew_s)
        return fail("invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                    "reasonable timeframe. Check your iat and exp values in the JWT claim.");

    return [&] {
        response r;
        r.body = json{{"access_token", issue("jwt:" + iss, now_ms)},
                      {"expires_in", ttl_s_},
                      {"token_type", "Bearer"}}
                     .dump();
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
    }();
}

response oauth::metadata_token(const request& req, std::int64_t now_ms) {
    ++metadata_requests_;
    if (metadata_down) {
        ++metadata_errors_;
        return text(503, "metadata server unavailable (emulated)\n");
    }
    if (req.metadata_flavor != "Google") {
        ++metadata_errors_;
        return text(403, "Missing Metadata-Flavor:Google header.\n");
    }
    if (req.method != "GET") {
        ++metadata_errors_;
        auto r = text(405, "method not allowed\n");
        r.headers.emplace_back("Allow", "GET");
        return r;
    }
    response r;
    r.body = json{{"access_token", issue("metadata", now_ms)},
                  {"expires_in", ttl_s_},
                  {"token_type", "Bearer"}}
                 .dump();
    r.headers.emplace_back("Metadata-Flavor", "Google");
    return r;
}

json oauth::dump() const {
    json tokens = json::array();
    for (const auto& i : history_)
        tokens.push_back(
            {{"token", i.token}, {"source", i.source}, {"expiresAt", i.expires_at_ms}});
    return json{{"issued", std::move(tokens)},
                {"tokenRequests", token_requests_},
                {"tokenErrors", token_errors_},
                {"metadataRequests", metadata_requests_},
                {"metadataErrors", metadata_errors_},
                {"acceptedIssued", accepted_issued_},
                {"rejected", rejected_},
                {"tokenTtlSeconds", ttl_s_},
                {"metadataDown", metadata_down},
                {"edgeTokenRequests", edge_requests_},
                {"edgeTokenErrors", edge_errors_},
                {"refreshTokensLive", refresh_live_.size()},
                {"passcodesLeft", passcodes_.size()}};
}

// ---------------------------------------------------------------- Edge login

void oauth::set_edge_user(std::string user, std::string password) {
    edge_user_ = std::move(user);
    edge_password_ = std::move(password);
}

void oauth::set_mfa_seed(const std::string& base32) {
    if (base32.empty()) {
        mfa_key_.clear();
        return;
    }
    auto key = keyrot::base32_decode(base32);
    if (!key) throw std::invalid_argument("the MFA seed is not base32 (A-Z, 2-7), or too short");
    mfa_key_ = std::move(*key);
}

void oauth::add_passcode(std::string passcode) { passcodes_.push_back(std::move(passcode)); }

std::string oauth::totp(std::int64_t step) const {
    unsigned char msg[8];
    for (int i = 7; i >= 0; --i) {
        msg[i] = static_cast<unsigned char>(step & 0xff);
        step >>= 8;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha1(), mfa_key_.data(), static_cast<int>(mfa_key_.size()), msg, sizeof msg, mac,
         &len);
    const int off = mac[len - 1] & 0x0f;
    const std::uint32_t bin = (static_cast<std::uint32_t>(mac[off] & 0x7f) << 24) |
                              (static_cast<std::uint32_t>(mac[off + 1]) << 16) |
                              (static_cast<std::uint32_t>(mac[off + 2]) << 8) |
                              static_cast<std::uint32_t>(mac[off + 3]);
    std::string code = std::to_string(bin % 1000000);
    return std::string(6 - code.size(), '0') + code;
}

std::string oauth::new_refresh(const std::string& source, std::int64_t now_ms) {
    static const char* hex = "0123456789abcdef";
    std::string tok = "edge-refresh-";
    for (int i = 0; i < 40; ++i) tok += hex[rng_() & 15];
    for (auto it = refresh_live_.begin(); it != refresh_live_.end();)
        it = it->second <= now_ms ? refresh_live_.erase(it) : std::next(it);
    refresh_live_[tok] = now_ms + refresh_ttl_s_ * 1000;
    (void)source;
    return tok;
}

response oauth::edge_grant(const std::string& source, std::int64_t now_ms,
                           const std::string& refresh) {
    response r;
    json j = json::object();
    j["access_token"] = issue(source, now_ms);
    j["token_type"] = "bearer";
    j["refresh_token"] = refresh;
    j["expires_in"] = ttl_s_;
    j["scope"] = "scim.emails.read scim.me openid password.write approvals.me scim.ids.read";
    static const char* hex = "0123456789abcdef";
    std::string jti;
    for (int i = 0; i < 32; ++i) jti += hex[rng_() & 15];
    j["jti"] = jti;
    r.body = j.dump();
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

response oauth::edge_token_endpoint(const request& req, const std::string& mfa_token,
                                    std::int64_t now_ms, bool refresh_single_use) {
    if (req.method != "POST") {
        auto r = oauth_error("method_not_allowed", "the token endpoint takes POST", 405);
        r.headers.emplace_back("Allow", "POST");
        return r;
    }
    ++edge_requests_;
    auto refuse = [&](int status, const std::string& error, const std::string& description) {
        ++edge_errors_;
        return oauth_error(error, description, status);
    };
    // The client is the Edge CLI client edgecli:edgeclisecret.
    if (req.authorization != "Basic " + base64("edgecli:edgeclisecret"))
        return refuse(401, "unauthorized", "Bad client credentials");
    if (req.content_type.rfind("application/x-www-form-urlencoded", 0) != 0)
        return refuse(400, "invalid_request",
                      "Content-Type must be application/x-www-form-urlencoded");
    auto form = parse_form(req.body);
    const std::string grant = form.count("grant_type") ? form["grant_type"] : "";
    if (grant == "refresh_token") {
        auto it = refresh_live_.find(form["refresh_token"]);
        if (it == refresh_live_.end() || it->second <= now_ms)
            return refuse(401, "invalid_token", "Invalid refresh token (expired or unknown)");
        std::string refresh = it->first;
        if (refresh_single_use) {
            refresh_live_.erase(it);
            refresh = new_refresh("refresh", now_ms);
        }
        return edge_grant("edge:refresh", now_ms, refresh);
    }
    if (grant != "password")
        return refuse(400, "unsupported_grant_type", "Unsupported grant type: " + grant);
    // Password and passcode grants: at most login_limit_ an hour (Apigee: 30).
    while (!logins_.empty() && logins_.front() <= now_ms - 3600 * 1000)
        logins_.erase(logins_.begin());
    if (login_limit_ > 0 && static_cast<int>(logins_.size()) >= login_limit_) {
        auto r = refuse(429, "too_many_requests", "Too many token requests; use refresh tokens");
        r.headers.emplace_back("Retry-After", "60");
        return r;
    }
    std::string source;
    if (form.count("passcode")) {
        auto it = std::find(passcodes_.begin(), passcodes_.end(), form["passcode"]);
        if (form["passcode"].empty() || it == passcodes_.end())
            return refuse(401, "unauthorized", "Invalid passcode");
        passcodes_.erase(it);  // single use
        source = "edge:passcode";
    } else {
        if (edge_user_.empty() || form["username"] != edge_user_ ||
            form["password"] != edge_password_)
            return refuse(401, "unauthorized", "Bad credentials");
        if (!mfa_key_.empty()) {
            if (mfa_token.empty())
                return refuse(401, "unauthorized",
                              "Error requesting access token: an MFA code is required");
            const std::int64_t step = now_ms / 1000 / 30;
            if (mfa_token != totp(step) && mfa_token != totp(step - 1))
                return refuse(401, "unauthorized", "Invalid MFA code");
        }
        source = "edge:password";
    }
    logins_.push_back(now_ms);
    return edge_grant(source, now_ms, new_refresh(source, now_ms));
}

}  // namespace keyrot::emulator
