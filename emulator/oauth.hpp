// The emulator's Google OAuth side: a token endpoint (JWT bearer grant, RFC 7523,
// RS256 checked with OpenSSL against the service account's public key), a GCE
// metadata server token endpoint, and the check of the Authorization header of
// /v1 calls (a static bearer token, issued tokens until they expire, Basic).
// No I/O: emulator::handle() routes /token and /computeMetadata/ here. Issued
// tokens expire on the real clock (keyrotd signs its JWTs with the real clock),
// not on the emulator clock that tests advance. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <random>
#include <string>
#include <vector>

#include "emulator.hpp"

namespace keyrot::emulator {

struct service_account {
    std::string email;
    std::string token_uri;             // from the key file; "" = only our own /token URL
    std::shared_ptr<void> public_key;  // EVP_PKEY*
};

class oauth {
  public:
    oauth();

    // Reads a service-account key JSON (client_email, private_key, token_uri)
    // and keeps the public half of its key. Throws std::runtime_error.
    void add_service_account(const std::string& key_file);
    void set_static_token(std::string t) { static_token_ = std::move(t); }
    void set_basic(std::string user_colon_password);  // "" = Basic not accepted
    void set_token_ttl(std::int64_t seconds) { ttl_s_ = seconds; }
    // This server's base URL ("http://127.0.0.1:PORT"): "<base>/token" is an
    // accepted JWT audience.
    void set_self_url(std::string base) { self_url_ = std::move(base); }

    // True when /v1 calls need credentials (any of token, service account, basic).
    bool required() const;
    // Whether an Authorization header value lets a /v1 call through.
    bool accepts(const std::string& authorization, std::int64_t now_ms);

    response token_endpoint(const request& req, std::int64_t now_ms);

    // --- Edge flavor: the Edge login server's POST /oauth/token
    // (docs/emulator.md, "Edge login"). Tokens are opaque; they expire after
    // the token TTL (access) and the refresh TTL, on the real clock.
    void set_edge(bool on) { edge_ = on; }
    // The Edge user: password grant, and Basic USER:PASSWORD unless MFA is on.
    void set_edge_user(std::string user, std::string password);
    // The base32 TOTP seed the user enrolled with ("" = no MFA). Throws
    // std::invalid_argument on bad base32.
    void set_mfa_seed(const std::string& base32);
    void add_passcode(std::string passcode);  // one-time SAML passcodes
    void set_refresh_ttl(std::int64_t seconds) { refresh_ttl_s_ = seconds; }
    // Password and passcode grants allowed per hour (Apigee: 30); 0 = no limit.
    void set_login_limit(int per_hour) { login_limit_ = per_hour; }
    // `mfa_token`: the query parameter; `refresh_single_use`: the reading.
    response edge_token_endpoint(const request& req, const std::string& mfa_token,
                                 std::int64_t now_ms, bool refresh_single_use);
    // The TOTP code (6 digits) of the seed for a 30 s step (tests and logs never see it).
    std::string totp(std::int64_t step) const;
    response metadata_token(const request& req, std::int64_t now_ms);

    // GET /__emulator/tokens
    nlohmann::json dump() const;
    bool metadata_down = false;  // fault: the metadata endpoint answers 503

  private:
    std::string issue(const std::string& source, std::int64_t now_ms);
    std::string new_refresh(const std::string& source, std::int64_t now_ms);
    response edge_grant(const std::string& source, std::int64_t now_ms, const std::string& refresh);

    bool edge_ = false;
    std::string edge_user_, edge_password_;
    std::string mfa_key_;  // the decoded seed; "" = no MFA
    std::vector<std::string> passcodes_;
    std::int64_t refresh_ttl_s_ = 86400;
    int login_limit_ = 30;
    std::vector<std::int64_t> logins_;                  // times (ms) of password/passcode grants
    std::map<std::string, std::int64_t> refresh_live_;  // refresh token -> expiry (ms)
    std::uint64_t edge_requests_ = 0, edge_errors_ = 0;

    struct issued {
        std::string token;
        std::string source;  // "jwt:<email>" | "metadata"
        std::int64_t expires_at_ms;
    };
    std::string static_token_;
    std::string basic_;  // "Basic base64(user:password)"
    std::int64_t ttl_s_ = 3600;
    std::string self_url_;
    std::vector<service_account> accounts_;
    std::map<std::string, std::int64_t> live_;  // token -> expiry (ms)
    std::vector<issued> history_;               // last k_history issued tokens
    std::uint64_t token_requests_ = 0, token_errors_ = 0, metadata_requests_ = 0,
                  metadata_errors_ = 0, rejected_ = 0, accepted_issued_ = 0;
    std::mt19937_64 rng_;
};

}  // namespace keyrot::emulator
