// What the executor tells the outside world: every action's outcome (for the
// audit log, logs and metrics) and, after each pass, the state of the keys.
// lib/obs implements it; tests use a recording fake.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "plan/planner.hpp"

namespace keyrot::exec {

// What an audit record says happened (the audit log's `action`).
enum class audit_action { created, completed, revoked, deleted, failed, skipped };

// As the audit log writes it: "created", "completed", "revoked", "deleted",
// "failed", "skipped".
inline constexpr std::string_view to_string(audit_action a) {
    switch (a) {
        case audit_action::created:
            return "created";
        case audit_action::completed:
            return "completed";
        case audit_action::revoked:
            return "revoked";
        case audit_action::deleted:
            return "deleted";
        case audit_action::failed:
            return "failed";
        case audit_action::skipped:
            return "skipped";
    }
    return "?";
}

// nullopt for a name that is not one of to_string's (a line of another version).
inline std::optional<audit_action> parse_audit_action(std::string_view name) {
    for (auto a : {audit_action::created, audit_action::completed, audit_action::revoked,
                   audit_action::deleted, audit_action::failed, audit_action::skipped})
        if (to_string(a) == name) return a;
    return std::nullopt;
}

// One line of the audit log (docs/rotation.md, "Audit log"), also logged.
struct action_record {
    sys_ms ts{};
    std::string organization;
    std::string developer;  // "" for a team app
    std::string team;       // a team app's AppGroup; "" for a developer app
    std::string app;
    std::string policy;
    audit_action action = audit_action::failed;
    // The planned action this record is about: a `failed` revoke counts as a
    // failed revocation in metrics, not a failed rotation.
    plan::action_kind kind = plan::action_kind::report;
    std::string key;       // fingerprint
    std::string replaces;  // fingerprint
    bool dry_run = false;
    bool late = false;  // created: a late rotation
    std::string detail;
    // For observers (notifications), not audited: the issue and expiry times of
    // `key` and the expiry of `replaces` as the pass knew them; empty (never
    // for an expiry) when unknown. An expiry of never also means "never expires".
    std::optional<sys_ms> key_issued_at;
    time_or_never key_expires_at;
    time_or_never replaces_expires_at;
    // The developer's status as the pass knew it (not_known: not in the
    // developer list and not read). For observers: a notification names the
    // developer active only when this says so.
    owner_status developer_status = owner_status::not_known;
};

struct key_record {
    std::string developer;  // "" for a team app
    std::string app;
    std::string policy;
    plan::key_view key;
    // As action_record::developer_status.
    owner_status developer_status = owner_status::not_known;
    std::string team;  // a team app's AppGroup
};

// A working key (approved, expiring, not yet expired) of an app no policy
// matches, or of a team (AppGroup) app: keyrotd never rotates it, but an
// operator wants to hear before it stops working (key.expiring). Only what the
// notifier needs, and only keys with an expiry, so a large organisation of
// keys that never expire costs nothing.
struct unmatched_key {
    std::string developer;  // the app's developer email; empty for a team app
    std::string team;       // the AppGroup of a team app; empty otherwise
    std::string app;
    std::string fingerprint;
    sys_ms issued_at{};
    time_or_never expires_at;
    // As action_record::developer_status (not_known for a team app).
    owner_status developer_status = owner_status::not_known;
};

// An app whose plan changes at `at` (an action falls due): the daemon re-reads
// just these apps between full passes (executor::run_apps).
struct app_wake {
    std::string developer;  // "" for a team app
    std::string app;
    time_or_never at;
    std::string team;  // a team app's AppGroup
};

struct pass_summary {
    std::string organization;
    bool ok = false;  // the pass read the whole inventory and no action failed
    sys_ms started{};
    std::chrono::duration<double> took{0};  // how long the pass ran
    time_or_never next_wake;                // earliest due moment over all apps
    int apps_seen = 0;
    int apps_matched = 0;
    int actions_done = 0;
    int actions_failed = 0;
    std::string error;  // why the pass failed, if it did
    // Apps of the organisation keyrotd leaves alone, by reason, whether or not a
    // policy matches them: "team-inactive", "team-unknown" (a team app's AppGroup),
    // "developer-inactive", "developer-unknown" (status could not be learnt:
    // never written to), "app-revoked". Keys of these apps are in state
    // `skipped`, never `due`.
    std::map<std::string, int> skipped_apps;
    // keys of matched apps; empty unless the observer asked for them (per-key metrics)
    std::vector<key_record> keys;
    // Apps of a policy that list no key at all, not counting those keyrotd
    // leaves alone (`key` is empty); also only when the observer asked for keys.
    std::vector<key_record> keyless_apps;
    // Working keys of apps no policy matches and of team apps, from a full
    // pass's approved listing; also only when the observer asked for keys.
    std::vector<unmatched_key> unmatched_keys;
    // counts by policy and state, and apps without a valid key by policy
    struct policy_counts {
        std::string policy;
        int valid = 0, due = 0, overlap = 0, expired = 0, revoked = 0, skipped = 0;
        int apps = 0;  // apps this policy governs (0: the policy matches nothing)
        int apps_without_valid_key = 0;
        // old keys left approved because their successor is not delivered to
        // every target (docs/delivery.md), and the earliest expiry among them:
        // when Apigee ends one, its callers that have not switched break
        int revocations_held = 0;
        time_or_never held_expiry;
    };
    std::vector<policy_counts> by_policy;
    // Apps whose next action falls due before run_options::wake_horizon (none
    // when it is empty): what a targeted pass re-reads.
    std::vector<app_wake> wakes;
    // run_apps: a pass over a few apps only. Its counts cover those apps alone,
    // so it is never given to observer::on_pass (gauges stay from the last
    // full pass); actions are reported as usual.
    bool partial = false;
};

// One delivery of a key to an app's targets (docs/delivery.md): after its
// completion (`overlap`), at the revocation gate (`gate`), or dropping the
// revoked key afterwards (`drop`). A failure is also a `failed` action record.
struct delivery_record {
    std::string organization;
    std::string developer;
    std::string app;
    std::string policy;
    std::string key;                // the fingerprint delivered (the successor)
    std::string replaces;           // the old key's fingerprint
    const char* stage = "overlap";  // overlap | gate | drop
    bool ok = false;
};

// What a pass decided for one app, for people debugging (log level debug).
struct app_decision {
    std::string organization;
    std::string developer;
    std::string app;
    std::string policy;
    std::string decision;  // "skipped: why", "nothing to do", or each action with its reason
    time_or_never next_wake;
};

class observer {
  public:
    virtual ~observer() = default;
    // Called once the action is durable (audit log fsynced) or has failed.
    // Returns false when the record could not be made durable: the executor then
    // counts the action as failed and stops writing to that app.
    virtual bool on_action(const action_record& r) = 0;
    virtual void on_pass(const pass_summary& s) = 0;
    virtual bool wants_keys() const { return false; }
    // Per app, after the pass handled it; only when wants_decisions().
    virtual void on_app(const app_decision&) {}
    virtual bool wants_decisions() const { return false; }
    // After each delivery to an app's targets, whatever its outcome.
    virtual void on_delivery(const delivery_record&) {}
};

}  // namespace keyrot::exec
