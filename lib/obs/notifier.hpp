// The bridge from the executor's observer to keyrot::notify (docs/notifications.md):
// which action or key state becomes which event, and a durable memory of the
// events already handed to the outbox, so an occurrence is published once.
//
// Contract:
// - on_action() maps a durable, non-dry-run audit record to an event:
//   completed -> key.rotated, revoked -> key.revoked, deleted -> key.deleted,
//   failed -> rotation.failed (reason = the record's detail). created and
//   skipped make none. Fields the record does not carry are left out (see
//   docs/notifications.md: key.rotated's expiresAt and replacesRevokedAt are
//   known only when an earlier pass of this process saw both keys).
// - on_pass() (a full pass with its keys) publishes key.expiring for each key
//   whose end (expiry, or scheduled revocation when that comes first) is within
//   a lead time: one event per (key, lead), for the shortest lead not yet
//   passed; also for the working keys of apps no policy matches and of team
//   apps (their expiry, the config's lead times, no policy). It then forgets
//   what it remembered about keys of that organisation the pass no longer
//   saw, once published longer ago than max_age + the longest overlap (so
//   re-derivation does not send them again).
// - app.stranded: on_action() publishes one for a report whose reason is a
//   revocation held by drift, or a key with no room for the lineage marker
//   (plan::classify_report; the latter also makes its rotation.failed);
//   on_pass() one for each app of a policy (not one keyrotd leaves alone)
//   whose listed keys are all expired or revoked after the pass. `key` is the
//   key concerned (for "no valid key": the app's latest key), so the id is
//   once per occurrence: a new stranding, with a newer key, is a new event.
//   A team (AppGroup) app's names its team, with no developer and no
//   developerStatus (as its key.rotated), so it never goes to a developer.
// - Failover (docs/notifications.md, "After a failover"): the first full
//   pass of each organisation after start-up, and after rederive() (this
//   process became leader), re-derives from the keys Apigee lists the events
//   that another process's lost outbox may have held: key.rotated for each
//   complete successor issued within `max_age`, key.revoked for each old key
//   whose revocation time (successor issued + overlap, or its expiry) has
//   passed, the successor issued within max_age + overlap, and that is
//   revoked or no longer listed among approved keys. Same ids as the
//   originals; ids already remembered are skipped (at-least-once: receivers
//   deduplicate).
// - replay_audit() (start-up, through recorder::set_notifier) maps the audit
//   records of the last max_age at the tail of the audit log as on_action()
//   would and publishes those whose ids are not remembered: the events a crash
//   between an audit record and its outbox write lost. An audit record exists
//   only for an action that happened, so nothing is sent for one that did not.
// - developerStatus is "active" only when the pass (or the action's record)
//   knew the developer active; an unknown or inactive developer's is absent.
// - An id published (stored or already queued) is remembered in `sent_file`
//   (rewritten atomically, fsynced) and never published again while
//   remembered. The memory is bounded (sent_max, oldest dropped first).
// - publish only writes the outbox (through `publish`): never the network.
//   A refused event (outbox full, I/O) is logged as an error and counted; it
//   never fails the action.
// - Never throws out of on_action/on_pass; never logs a key or secret
//   (events carry fingerprints only).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "exec/observer.hpp"
#include "notify/config.hpp"
#include "notify/dispatcher.hpp"
#include "notify/event.hpp"
#include "policy/config.hpp"

namespace keyrot::obs {

class metrics;

// What key.expiring needs to know about a policy.
struct notify_policy {
    std::vector<milliseconds> expiring_at;  // lead times, longest first
    milliseconds overlap{0};
    bool revoke = true;
};

// The entry of notify_policies() for keys no policy rotates (apps no policy
// matches, team apps): the config's notify.expiringAt. Policy names are never empty.
inline constexpr const char* k_unmatched_policy = "";

// Per policy name: its lead times (notify.expiringAt of the policy, else the
// config's), overlap and revoke; and k_unmatched_policy with the config's lead times.
std::map<std::string, notify_policy> notify_policies(const policy::config& cfg,
                                                     const notify::config& ncfg);

// The key.expiring events a full pass calls for at `now` (pure: no I/O).
// Keys of matched apps by their policy's lead times (keys of matched apps
// without a developer are left out: an event needs its owner); keys no policy
// rotates (pass_summary::unmatched_keys) by k_unmatched_policy's, their expiry
// alone, with no policy and, for a team app, the team as owner.
std::vector<notify::event_fields> expiring_events(
    const exec::pass_summary& s, const std::map<std::string, notify_policy>& policies, sys_ms now);

// The app.stranded events "no valid key" of a full pass (pure: no I/O): apps
// with at least one listed key, none of them valid (valid, due or overlap),
// none skipped (an app keyrotd leaves alone), with exactly one owner (a
// developer, or a team app's team: then no developerStatus); and apps that
// list no key at all (pass_summary::keyless_apps), with an empty `key`.
std::vector<notify::event_fields> stranded_events(const exec::pass_summary& s, sys_ms now);

// The events a failover may have lost, re-derived from a full pass's keys
// (pure: no I/O); see the contract above.
std::vector<notify::event_fields> rederived_events(
    const exec::pass_summary& s, const std::map<std::string, notify_policy>& policies,
    milliseconds max_age, sys_ms now);

class notifier {
  public:
    using publish_fn = std::function<notify::add_result(const notify::event&)>;

    // Loads `sent_file` when it exists (an unreadable one is logged and
    // replaced: at worst an event is sent twice).
    notifier(publish_fn publish, std::map<std::string, notify_policy> policies,
             std::filesystem::path sent_file, metrics* m, std::function<sys_ms()> clock,
             std::size_t sent_max = 100000);

    void on_action(const exec::action_record& r);
    // The events a crash between an audit record and its outbox write lost
    // (see the contract); returns how many were published again.
    std::size_t replay_audit(const std::filesystem::path& audit_file);
    void on_pass(const exec::pass_summary& s);
    // notify.maxAge: how far back rederive looks, and how long a published id
    // of a key no longer listed is remembered (plus the longest overlap).
    void set_max_age(milliseconds max_age) { max_age_ = max_age; }
    // This process became leader: re-derive on the next full pass of each
    // organisation (the old leader's outbox may be lost).
    void rederive() { rederived_.clear(); }
    // After a reload: new lead times, overlaps and policies.
    void set_policies(std::map<std::string, notify_policy> p) { policies_ = std::move(p); }

    // A dispatcher report as a log line and metrics.
    void on_report(const notify::report& r);

    std::size_t remembered() const { return sent_.size(); }

  private:
    struct sent_entry {
        std::string organization;
        std::string key;
        sys_ms at{};
    };
    // Builds, checks the memory, publishes, remembers. False when not stored.
    bool publish(notify::event_fields f);
    void load();
    void save();
    void prune_to_max();

    publish_fn publish_;
    std::map<std::string, notify_policy> policies_;
    std::filesystem::path sent_file_;
    metrics* metrics_;
    std::function<sys_ms()> clock_;
    std::size_t sent_max_;
    std::map<std::string, sent_entry> sent_;  // id -> what it was about
    // From earlier full passes: org/developer/app -> keys, for key.rotated.
    std::map<std::string, std::vector<exec::key_record>> last_keys_;
    milliseconds max_age_ = 3 * k_day;
    std::set<std::string> rederived_;  // organisations re-derived since start / leadership
    std::size_t published_ = 0;        // new ids stored in the outbox, for replay_audit's count
};

}  // namespace keyrot::obs
