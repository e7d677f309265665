// Vault KV version 2 as a delivery target.
//
// Contract (besides target.hpp's):
// - Ownership lives in the entry's metadata: custom_metadata managed-by=keyrotd
//   (POST /v1/{mount}/metadata/{path}, written BEFORE the first data, so a crash
//   in between never leaves an entry keyrotd would then refuse). An entry whose
//   metadata exists without it is never written (error kind config, code NOT_OWNED).
// - Writes: POST /v1/{mount}/data/{path} with options.cas = the version just
//   read (0: only if absent). Vault's check-and-set mismatch (400) is re-read
//   and retried, at most k_max_conflicts times. Data keys other than keyrotd's
//   fields are kept.
// - verify: GET the latest version (what readers get) and compare the SHA-256
//   of keyrotd's fields with the receipt's.
// - drop_previous: a new version without the previous* fields (cas again).
//   Older versions stay in Vault's history (they hold keys already revoked).
// - Auth: a token file re-read before every request, or the Kubernetes auth
//   method: POST /v1/auth/{mount}/login with the service-account JWT and the
//   role; the client token is kept in memory until 80% of its lease_duration
//   or a 403, then logged in again. Sent as "Authorization: Bearer" (Vault
//   accepts it like X-Vault-Token), so the http client wipes it.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "deliver/fields.hpp"
#include "deliver/target.hpp"
#include "http/client.hpp"

namespace keyrot::deliver {

inline constexpr std::string_view k_cas_mismatch = "check-and-set parameter did not match";

// One per Vault address and credentials; shared by that address's targets.
class vault_auth {
  public:
    static std::unique_ptr<vault_auth> from_token_file(std::string path);
    // `jwt_file`: the service-account token (kube_endpoint::token_file).
    static std::unique_ptr<vault_auth> from_kubernetes(http::client& client, std::string mount,
                                                       std::string role, std::string jwt_file);

    // The Authorization header value ("Bearer …"); error kind auth names the file or role.
    net::awaitable<result<secret>> header();
    void invalidate();  // after a 403
    bool can_refresh() const { return !role_.empty(); }

  private:
    vault_auth() = default;
    http::client* client_ = nullptr;
    std::string token_file_;
    std::string mount_;
    std::string role_;
    secret cached_;
    std::chrono::steady_clock::time_point valid_until_{};
};

struct vault_place {
    std::string mount;
    std::string path;
};

class vault_target final : public target {
  public:
    // `client` is bound to the Vault address; client and auth outlive the target.
    vault_target(http::client& client, vault_auth& auth, vault_place place);
    net::awaitable<result<receipt>> put(const payload& p) override;
    net::awaitable<result<void>> verify(const receipt& r) override;
    net::awaitable<result<void>> drop_previous(const receipt& r) override;
    std::string describe() const override;
    net::awaitable<result<holding>> inspect() override;

  private:
    net::awaitable<result<http::response>> call(std::string method, std::string path,
                                                std::string body);
    net::awaitable<result<void>> ensure_owned(bool& exists);
    http::client& client_;
    vault_auth& auth_;
    vault_place place_;
};

// ---- pure parts (tests/unit/deliver_test.cpp) ----

// {"options": {"cas": cas}, "data": other keys of `existing_data` + fields}. Wipe it.
std::string vault_write_body(const nlohmann::json& existing_data, const field_map& fields,
                             long long cas);
// {"custom_metadata": {"managed-by": "keyrotd"}}
std::string vault_metadata_body();
// {"role": role, "jwt": jwt}. Wipe it.
std::string vault_login_body(const std::string& role, const std::string& jwt);
// Whether a metadata answer (the JSON body of GET .../metadata/...) marks keyrotd as owner.
bool vault_owned(const nlohmann::json& metadata_answer);
// The first entry of Vault's {"errors": [...]}, cut to 200 characters.
std::string vault_error_text(const std::string& body);

}  // namespace keyrot::deliver
