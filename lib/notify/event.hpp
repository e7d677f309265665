// keyrot::notify events: what keyrotd tells the people who hold the keys
// (docs/notifications.md).
//
// Contract:
// - An event names keys by fingerprint only: make_event() refuses one whose
//   `key` or `replaces` is neither empty nor 16 lowercase hex digits, so a
//   consumer key can never land in an event, an outbox file or a webhook body.
// - The id is stable: "evt_" + the first 32 hex digits of SHA-256 over
//   (organization, developer or "team:"+team, app, key, type, lead time). The same
//   occurrence always gets the same id (across passes, restarts and replicas),
//   so receivers can deduplicate on it (Standard Webhooks `webhook-id`). The
//   owner (developer or team) is part of it because app names are unique per
//   developer, not per organisation.
// - body() is the Standard Webhooks payload, minified JSON:
//   {"type":…, "timestamp": RFC 3339 of occurred_at, "data": {…}}; empty
//   fields are left out. The exact bytes are what gets signed and stored.
// - Pure: no I/O, no clock (occurred_at is a field).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/result.hpp"

namespace keyrot::notify {

enum class event_type {
    key_expiring,     // "key.expiring": `key` stops working within `lead_time`
    key_rotated,      // "key.rotated": successor `key` complete, `replaces` revoked at `revokes_at`
    key_revoked,      // "key.revoked": `key` revoked
    key_deleted,      // "key.deleted": `key` deleted
    rotation_failed,  // "rotation.failed": `key` could not be rotated; `reason`
    app_stranded,     // "app.stranded": no valid key / drift held a revocation / …; `reason`
};

// "key.expiring", …
std::string_view to_string(event_type t);
// nullopt for an unknown name.
std::optional<event_type> parse_event_type(std::string_view name);
// Every type's name, in declaration order.
const std::vector<std::string_view>& event_type_names();

struct event_fields {
    event_type type = event_type::key_rotated;
    std::string organization;
    std::string developer;  // the app's developer (email); empty for a team app
    std::string team;       // the AppGroup for a team app; empty otherwise
    // "active" when keyrotd knows the developer is active (the developer list
    // or a read of the developer said so; keyrotd writes only then); "" when
    // inactive or not known. Email goes to a developer only when "active". Not
    // in the id.
    std::string developer_status;
    std::string app;
    std::string policy;    // may be empty (key.expiring for a key no policy rotates)
    std::string key;       // fingerprint of the key the event is about, or empty
    std::string replaces;  // fingerprint of the key `key` replaces, or empty
    // When `key` stops working: for key.rotated the new key's expiry, for
    // key.expiring the expiring key's expiry or scheduled revocation (may be never).
    std::optional<time_or_never> expires_at;
    std::optional<sys_ms> revokes_at;       // when `replaces` will be revoked (key.rotated)
    std::optional<milliseconds> lead_time;  // key.expiring: the configured lead time (e.g. 7d)
    std::string reason;                     // rotation.failed, app.stranded; never a secret
    sys_ms occurred_at{};
};

struct event {
    event_fields f;
    std::string id;    // "evt_" + 32 hex digits
    std::string body;  // Standard Webhooks payload, minified JSON
};

// Validates and builds an event: error (kind config) when key/replaces is not a
// fingerprint or empty, when organization or app is empty, when key.expiring has
// no lead time, or when both developer and team (or neither) are set. The error
// message never repeats the offending value.
result<event> make_event(event_fields f);

// The stable id; exposed so a new leader can re-derive ids (and tests pin them).
std::string event_id(std::string_view organization, std::string_view owner, std::string_view app,
                     std::string_view key, event_type type, std::optional<milliseconds> lead_time);

// True for "" or 16 lowercase hex digits.
bool is_fingerprint_or_empty(std::string_view s);

}  // namespace keyrot::notify
