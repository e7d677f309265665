// The planner: (app snapshot, policy, now) -> actions. Pure: no I/O, no clock,
// no logging; every action carries the reason it exists. The rules are those
// of the rotation model (docs/rotation.md); tests/unit/planner_test.cpp has a row for each.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/model.hpp"
#include "policy/config.hpp"

namespace keyrot::plan {

// skipped: a key of an app keyrotd leaves alone (team app, inactive or unknown
// developer, revoked app): never counted as due.
enum class key_state { valid, due, overlap, expired, revoked, skipped };
const char* to_string(key_state s);

enum class action_kind {
    create_successor,    // make a successor for `key`, expiring at `expires_at`
    complete_successor,  // successor `key` is pending: copy from `replaces`, then mark complete
    revoke_key,          // revoke `key` (an old key after its overlap, or a duplicate successor)
    delete_key,          // delete `key` (replaced, stopped working long enough ago)
    report,              // nothing to write; a person must look (drift, no room for the marker)
};
const char* to_string(action_kind k);

// What a complete successor must hold, computed from the old key.
struct successor_spec {
    std::vector<attribute>
        attributes;  // old key's attributes (its own marker dropped) + final marker
    std::vector<std::string> scopes;
    std::vector<product_grant> products;  // status to mirror: approved | revoked | pending
};

struct action {
    action_kind kind = action_kind::report;
    std::string key;           // fingerprint acted on; for create_successor: the old key
    std::string replaces;      // complete_successor / revoke of a duplicate: the old key
    time_or_never expires_at;  // create_successor: the successor's expiry
    bool late = false;         // create_successor for a key that already expired
    bool failed = false;       // report: counts as a failed rotation (audit `failed`)
    successor_spec spec;       // create_successor / complete_successor
    std::string reason;        // for people: logs, audit `detail`, `plan`
};

// A key that still works: valid, due or in its overlap (not expired,
// revoked or left alone).
constexpr bool key_works(key_state s) {
    return s == key_state::valid || s == key_state::due || s == key_state::overlap;
}

struct key_view {
    std::string fingerprint;
    key_state state = key_state::valid;
    sys_ms issued_at{};
    time_or_never expires_at;
    std::string replaces;   // fingerprint this key replaces, "" if none
    bool pending = false;   // marker still "pending:"
    std::string successor;  // fingerprint of its (first) successor, "" if none
};

struct app_plan {
    // An app keyrotd leaves alone: no actions at all, its keys in state `skipped`.
    bool skipped = false;
    std::string skip_reason;  // for people
    // For counting: app-revoked | developer-inactive | developer-unknown |
    // team-inactive | team-unknown.
    // developer-unknown: the app has work but its developer's status is not
    // known (app.developer_status ""): learn it, then plan again.
    std::string skip_code;
    std::vector<action> actions;
    std::vector<key_view> keys;
    bool has_valid_key = false;
    time_or_never next_wake;  // earliest future moment the plan for this app changes
};

struct options {
    bool force_rotate = false;  // `rotate --app`: every valid key without a successor is due
    bool revoke_now =
        false;  // `--revoke-now`: revoke the old key as soon as its successor is complete
};

app_plan plan_app(const app& a, const policy::policy& p, sys_ms now, const options& opt = {});

// The policy that governs an app: first match by priority (desc), then name.
// nullptr when none matches.
const policy::policy* match_policy(const app& a, const std::vector<policy::policy>& policies);

// Whether `now` is inside the window, and when it next opens (never if it never does).
bool in_window(const policy::time_window& w, sys_ms now);
time_or_never next_window_open(const policy::time_window& w, sys_ms now);

// What a `report` action's reason says, for observers that only see the
// audit record's detail (app.stranded notifications): a revocation held by
// drift, a key with no room for the lineage marker, or something else.
enum class report_code { other, drift, no_room_for_marker };
report_code classify_report(std::string_view reason);

// True when a key lets calls through for this product set: approved and unexpired.
bool key_valid(const credential& c, sys_ms now);

// A successor still holds every product the old key has approved, approved.
bool covers_approved(const credential& successor, const credential& old);

}  // namespace keyrot::plan
