// Shared pieces of the targets (pure; tests/unit/deliver_test.cpp): the data
// fields a payload becomes, their digest, base64, and wiping JSON that held
// key material.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/secret.hpp"
#include "deliver/target.hpp"
#include "http/message.hpp"

namespace keyrot::deliver {

inline constexpr std::string_view k_managed_by_label = "app.kubernetes.io/managed-by";
inline constexpr std::string_view k_owner = "keyrotd";
// How often a write that lost a race (409, check-and-set) is re-read and redone.
inline constexpr int k_max_conflicts = 5;

// consumerKey, consumerSecret, expiresAt and, with p.previous,
// previousConsumerKey, previousConsumerSecret, previousExpiresAt. expiresAt is
// RFC 3339 UTC ("2026-11-25T12:00:00Z") or "never".
using field_map = std::map<std::string, secret>;
field_map payload_fields(const payload& p);
// The names payload_fields can produce (what a target owns in a Secret's data).
const std::vector<std::string>& field_names();
bool is_previous_field(std::string_view name);

// Hex SHA-256 over "name=value\n" of every field, in name order.
std::string fields_digest(const field_map& f);

// The JSON object of `f` (Secret Manager's payload), keys sorted, compact.
// The caller wipes the returned string.
std::string fields_json(const field_map& f);

// Fingerprint of f["consumerKey"] ("" when absent).
std::string current_key_fingerprint(const field_map& f);
// Fingerprint of previousConsumerKey, or "" without one.
std::string previous_key_fingerprint(const field_map& f);

// RFC 4648 with padding. decode: nullopt when not canonical base64.
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

// Overwrites every string inside `j` (keys stay) before it is destroyed.
void wipe(nlohmann::json& j);
// A reply's body as JSON (discarded when it is not), the body wiped: a
// target's answer may echo the key material it holds.
nlohmann::json parse_wiping(http::response& r);

error make_error(error::kind k, std::string message, int status = 0);

}  // namespace keyrot::deliver
