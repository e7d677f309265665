// Internal: the emulator's data model and everything it remembers between
// requests (organizations, faults, readings, the counters and histories the
// hooks report). Handlers (api_*.cpp, hooks.cpp, faults.cpp, seed.cpp) work
// on one `state`; emulator.cpp owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emulator.hpp"
#include "oauth.hpp"

namespace keyrot::emulator {

struct attribute {
    std::string name;
    std::string value;
};

struct key_product {
    std::string name;
    std::string status;  // approved | revoked | pending
};

struct credential {
    std::string consumer_key;
    std::string consumer_secret;
    std::string status = "approved";
    millis issued_at = 0;
    std::optional<millis> expires_at;  // empty: never (expiresAt -1 on the wire)
    std::vector<attribute> attributes;
    std::vector<std::string> scopes;
    std::vector<key_product> products;
};

// keyExpiresIn as a body gives it: -1 is Apigee's "not set".
inline std::optional<millis> expires_in_field(millis v) {
    return v == -1 ? std::nullopt : std::optional<millis>(v);
}

struct developer_app {
    std::string app_group;  // a team (AppGroup) app: no developer
    std::string name;
    std::string app_id;
    std::string status = "approved";
    std::vector<attribute> attributes;
    std::string callback_url;
    std::vector<std::string> scopes;
    std::string app_family;
    // keyExpiresIn as the app was last given it (ms); empty: none given, or -1.
    std::optional<millis> key_expires_in;
    millis created_at = 0;
    millis last_modified_at = 0;
    std::vector<credential> credentials;
};

struct developer {
    std::string email;
    std::string developer_id;
    std::string first_name;
    std::string last_name;
    std::string user_name;
    std::string status = "active";
    std::vector<attribute> attributes;
    millis created_at = 0;
    millis last_modified_at = 0;
};

// A team (Apigee X AppGroup): owns team apps in place of a developer.
struct app_group {
    std::string name;
    std::string app_group_id;
    std::string display_name;
    std::string status = "active";  // active | inactive
    std::vector<attribute> attributes;
    millis created_at = 0;
    millis last_modified_at = 0;
};

struct api_product {
    std::string name;
    std::string display_name;
    std::string approval_type = "auto";
    std::vector<attribute> attributes;
    millis created_at = 0;
    millis last_modified_at = 0;
};

// Apps are kept in one ordered map keyed by (lower-case developer email, app
// name): the org-wide list pages through it and a developer's apps are a range.
// A team app's first part is k_team_prefix and the AppGroup's name (no e-mail
// address holds a control character).
using app_key = std::pair<std::string, std::string>;
inline const std::string k_team_prefix = "\x01";
inline app_key team_app_key(const std::string& group, const std::string& app) {
    return {k_team_prefix + group, app};
}

struct organization {
    std::string name;
    std::map<std::string, developer> developers;  // by lower-case email
    std::map<std::string, app_group> app_groups;  // by name
    std::map<std::string, api_product> products;
    std::map<app_key, developer_app> apps;
    std::unordered_map<std::string, app_key> key_index;  // consumer key -> app
    std::unordered_map<std::string, app_key> app_id_index;
};

struct faults {
    millis latency_ms = 0;
    millis write_latency_ms = 0;  // more, for writes only (slow writes, fast reads)
    double p503 = 0;
    double p429 = 0;
    int retry_after_seconds = 1;
    double p_drop_after_write = 0;
    std::uint64_t seed = 0;
    // Hostile mode (docs/emulator.md): corrupts the answers about one app.
    std::string hostile_mode;  // "" (off) | wrong-types | missing-fields | huge-array |
                               // duplicate-keys | page-loop | page-cap
    std::string hostile_app;   // the app name it corrupts (page-loop, page-cap: every list page)
    // "generate key pair" keeps none of the body's attributes and callback URL,
    // as if the client had left them out: keyrotd must restore the app.
    bool generate_wipes_app = false;
};

struct availability_record {
    millis ts;
    std::string org, developer, app;
    int usable_before;
    int usable_keys;
    std::string request;
    std::string key;   // fingerprint of the key the request names (path, or a created key's body)
    std::string team;  // a team app's AppGroup (developer is then "")
};

// One write to /v1, from its arrival to its answer (the latency included), and
// who sent it (User-Agent): the HA tests check that no two processes had
// writes in flight at once.
struct write_span {
    millis start, end;
    std::string user_agent, request;
};

// A write that removed keyrotd's lineage marker from a key (the invariant the
// chaos suite checks under both profiles).
struct marker_loss {
    millis ts;
    std::string org, app, key, request;
};

// How many availability records and write spans are kept.
constexpr std::size_t k_max_availability = 200000;

struct state {
    state();

    millis now() const;  // the emulator clock: real (or frozen) time + clock_offset_ms
    // Keys of the app usable right now: developer active, app approved, key
    // approved and unexpired, with at least one approved product.
    int usable_keys(const organization& org, const app_key& k) const;
    // Records the usable keys of an app after a write (`before`: before it).
    void record_availability(const std::string& org, const app_key& k, int before,
                             const std::string& route, const std::string& key = "");

    oauth auth;
    readings profile;
    bool edge = false;           // the Edge flavor (--flavor edge)
    bool private_cloud = false;  // Edge: org app list pages of up to 10,000 rows
    std::int64_t list_latency_per_app_us = 0;
    std::vector<marker_loss> markers_lost;
    std::deque<write_span> writes;
    millis clock_offset_ms = 0;
    std::optional<millis> frozen_at;  // in-process tests: the clock moves only by clock_offset_ms
    std::map<std::string, std::unique_ptr<organization>> orgs;
    faults fault;
    std::mt19937_64 fault_rng;
    std::mt19937_64 id_rng;
    std::map<std::string, std::uint64_t> counters;  // route template -> requests
    std::map<std::int64_t, std::uint64_t> rate;     // unix second -> requests
    std::deque<availability_record> availability;
    std::vector<availability_record> ever_lost_last;
    std::uint64_t availability_dropped = 0;
};

}  // namespace keyrot::emulator
