// Plain values for the Apigee resources keyrotd reads: developers, apps and
// their credentials. No JSON and no I/O here (apigee/json.hpp maps JSON to
// these); the planner reasons on them alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/secret.hpp"

namespace keyrot {

struct attribute {
    std::string name;
    std::string value;
    friend bool operator==(const attribute&, const attribute&) = default;
};

// The status Apigee gives a key, a product on a key, or an app. Whatever else
// an answer might carry reads as `unknown`: never taken for approved, never
// written back. Parsed once, where JSON becomes these values (apigee/json.cpp).
enum class approval { approved, revoked, pending, unknown };

inline const char* to_string(approval a) {
    switch (a) {
        case approval::approved:
            return "approved";
        case approval::revoked:
            return "revoked";
        case approval::pending:
            return "pending";
        case approval::unknown:
            break;
    }
    return "unknown";
}

inline approval parse_approval(std::string_view s) {
    if (s == "approved") return approval::approved;
    if (s == "revoked") return approval::revoked;
    if (s == "pending") return approval::pending;
    return approval::unknown;
}

// The status of an app's owner: its developer, or its team (AppGroup).
// `not_known`: not learnt yet (the org app list does not say, and the
// developer list may not either); `other`: a status that is neither active
// nor inactive. Only an active owner's app is ever written to.
enum class owner_status { not_known, active, inactive, other };

// Apigee's status text: "" (not stated) is not_known.
inline owner_status parse_owner_status(std::string_view s) {
    if (s.empty()) return owner_status::not_known;
    if (s == "active") return owner_status::active;
    if (s == "inactive") return owner_status::inactive;
    return owner_status::other;
}

// A product as it appears on a key: name and per-key status.
struct product_grant {
    std::string name;
    approval status = approval::unknown;
    friend bool operator==(const product_grant&, const product_grant&) = default;
};

struct credential {
    secret consumer_key;
    secret consumer_secret;
    std::string fingerprint;              // of consumer_key; filled by whoever builds the value
    approval status = approval::unknown;  // approved | revoked
    sys_ms issued_at{};
    time_or_never expires_at;  // never by default (Apigee's -1)
    std::vector<attribute> attributes;
    std::vector<std::string> scopes;
    std::vector<product_grant> products;
};

struct app {
    std::string organization;
    std::string developer_email;
    std::string developer_id;
    // For a team app: its AppGroup's status.
    owner_status developer_status = owner_status::active;
    std::string app_group;  // a team (AppGroup) app: no developer_email
    std::string name;
    std::string app_id;
    approval status = approval::approved;  // approved | revoked
    std::string callback_url;
    std::string app_family;
    std::vector<attribute> attributes;
    std::vector<std::string> scopes;
    std::vector<std::string> api_products;       // as sent in requests (names)
    std::optional<milliseconds> key_expires_in;  // empty: keys never expire (Apigee's -1)
    sys_ms created_at{};
    sys_ms last_modified_at{};
    std::vector<credential> credentials;
};

// Who owns an app, as one string that tells developers and teams apart (no
// e-mail address starts with a control character): keys of in-memory maps.
inline std::string owner_id(const app& a) {
    return a.app_group.empty() ? a.developer_email : "\x01" + a.app_group;
}

// Finds an attribute's value; nullptr when absent.
inline const std::string* find_attribute(const std::vector<attribute>& attrs,
                                         const std::string& name) {
    for (const auto& a : attrs)
        if (a.name == name) return &a.value;
    return nullptr;
}

inline constexpr const char* k_marker_attribute = "keyrotd_replaces";
inline constexpr const char* k_pending_prefix = "pending:";
inline constexpr std::size_t k_max_attributes = 18;

}  // namespace keyrot
