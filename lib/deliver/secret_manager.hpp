// Google Secret Manager as a delivery target (REST v1), with the Google
// credentials keyrotd uses for Apigee.
//
// Contract (besides target.hpp's):
// - The secret (projects/{project}/secrets/{id}) is created when absent, with
//   automatic replication and the label managed-by=keyrotd (plus configured
//   labels); an existing secret without that label is never written (error
//   kind config, code NOT_OWNED).
// - put: when the version the alias `current` names (or `latest`, after an
//   addVersion whose answer was lost) already holds exactly this payload,
//   nothing is added. Otherwise addVersion with the payload (the JSON object of
//   fields.hpp's fields) and its dataCrc32c. Then the aliases: `current` -> the
//   new version, `previous` -> the version `current` named before (kept only
//   while the payload has a previous key). The alias update carries the
//   secret's etag; a conflict (409/412/ABORTED) is re-read and retried.
// - verify: the version is ENABLED, its payload's CRC32C matches (as stored and
//   as recomputed), and `current` names it.
// - drop_previous (after the revocation): disables every ENABLED version older
//   than the one `previous` names (older than `current` without it); refused
//   when `current` no longer names the receipt's version.
#pragma once

#include <functional>
#include <string>

#include "deliver/fields.hpp"
#include "deliver/target.hpp"
#include "http/client.hpp"

namespace keyrot::deliver {

inline constexpr std::string_view k_secret_manager_url = "https://secretmanager.googleapis.com";

// The Authorization header ("Bearer …"), e.g. from auth::token_source::authorization_header;
// invalidate (optional) is called after a 401, before one more try.
struct google_auth {
    std::function<net::awaitable<result<secret>>()> header;
    std::function<void()> invalidate;
};

// What a versions/N:access answer holds, without key material.
struct sm_version_view {
    std::string version;       // number, from the answer's name
    std::uint32_t crc32c = 0;  // of the data as received
    bool checksum_ok = false;  // the stored dataCrc32c (when present) equals crc32c
    std::string digest;        // fields_digest of the JSON fields
    std::string key;           // fingerprint of its consumerKey
    std::string previous;      // fingerprint of its previousConsumerKey ("" none)
};

struct secret_manager_place {
    std::string project;
    std::string secret_id;
    std::map<std::string, std::string> labels;
};

class secret_manager_target final : public target {
  public:
    // `client` is bound to k_secret_manager_url (or a stand-in); client and the
    // functions in `auth` outlive the target.
    secret_manager_target(http::client& client, google_auth auth, secret_manager_place place);
    net::awaitable<result<receipt>> put(const payload& p) override;
    net::awaitable<result<void>> verify(const receipt& r) override;
    net::awaitable<result<void>> drop_previous(const receipt& r) override;
    std::string describe() const override;
    net::awaitable<result<holding>> inspect() override;

  private:
    net::awaitable<result<http::response>> call(std::string method, std::string path,
                                                std::string body);
    net::awaitable<result<nlohmann::json>> get_or_create_secret();
    // A version's payload (nullopt: not found, disabled or unreadable), data wiped.
    net::awaitable<result<std::optional<sm_version_view>>> access(std::string version);
    net::awaitable<result<void>> set_aliases(std::string version, bool keep_previous);
    std::string secret_path() const;
    http::client& client_;
    google_auth auth_;
    secret_manager_place place_;
};

// ---- pure parts (tests/unit/deliver_test.cpp) ----

std::optional<sm_version_view> sm_read_access(const nlohmann::json& access_answer);

std::string sm_create_body(const secret_manager_place& place);
// {"payload": {"data": base64(payload_json), "dataCrc32c": "<decimal>"}}. Wipe it.
std::string sm_add_version_body(const std::string& payload_json);
// {"versionAliases": {...}, "etag": etag} (etag left out when empty).
std::string sm_aliases_body(const std::map<std::string, std::string>& aliases,
                            const std::string& etag);
// "projects/1/secrets/s/versions/7" -> "7" ("" when not of that shape).
std::string sm_version_number(std::string_view version_name);
// What the aliases become when `version` is put (see the contract).
std::map<std::string, std::string> sm_next_aliases(std::map<std::string, std::string> aliases,
                                                   const std::string& version, bool keep_previous);
bool sm_owned(const nlohmann::json& secret_resource);

}  // namespace keyrot::deliver
