// The executor applies plans to Apigee: one pass over an organisation reads
// the inventory through the paged org app list (approved keys; revoked keys
// too when something needs them), plans each matched app, performs the
// writes, checks each against what its step must leave (lib/plan/steps.hpp:
// from the answer; product statuses, set by 204s, are read back before the
// successor counts as complete; a write whose answer was lost is read back),
// keeps the checked results and plans again until nothing is left to do
// (only "generate", which rewrites the app, makes it re-read the app). A
// create that failed is never retried blindly: the next step reads what
// exists. A developer whose status the developer list does not give is read
// once a pass, and only for apps that have work.
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apigee/types.hpp"
#include "common/asio.hpp"
#include "common/model.hpp"
#include "common/result.hpp"
#include "exec/delivery.hpp"
#include "exec/inventory.hpp"
#include "exec/journal.hpp"
#include "exec/observer.hpp"
#include "plan/planner.hpp"
#include "policy/config.hpp"

namespace keyrot::plan {
struct step;  // plan/steps.hpp
}

namespace keyrot::apigee {
class api;
}

namespace keyrot::exec {

struct run_options {
    bool dry_run = false;  // every write becomes a logged no-op (audit records say dryRun)
    plan::options plan;
    std::string only_app;  // "DEVELOPER/APP": act on that app alone; "" = all
    int page_size = 1000;
    int concurrency = 8;  // apps worked on at once (the HTTP client bounds requests too)
    int developer_page_size = 1000;
    // List revoked keys too (`inventory`); a pass lists them anyway when a
    // policy of the organisation deletes revoked keys (deleteRevokedAfter).
    bool list_revoked = false;
    // plan(): learn the status of every developer the list gave none for, not
    // only of those whose apps have work (`inventory`: every key's state true).
    bool learn_all_developers = false;
    // Record the apps whose next action falls due before this moment
    // (pass_summary::wakes); empty = record none.
    std::optional<sys_ms> wake_horizon;
    // Checked before every write: false (a leader that lost its lease) ends
    // the pass without writing; empty = always allowed.
    std::function<bool()> may_write;
};

struct planned_app {
    app snapshot;  // secrets included: never print it, only names and fingerprints
    const policy::policy* policy = nullptr;
    plan::app_plan plan;
    plan::action_kind current = plan::action_kind::report;  // the action being applied
    bool reread = false;  // a write changed the app itself ("generate"): read it again
    // When `snapshot` was read from Apigee (the listing, or a re-read): a
    // revocation trusts the snapshot's successor without reading it again
    // while this is at most k_fresh_snapshot old.
    sys_ms read_at{};
    // From the listing's revoked phase: only deletions are applied, and only
    // its revoked keys are counted (the rest was planned from the approved phase).
    bool deletions_only = false;
    // Revocations the delivery gate held this pass (their successor is not in
    // every target), and the earliest expiry among those old keys.
    int revocations_held = 0;
    time_or_never held_expiry;
};

struct inventory {
    std::vector<app> apps;
    int list_requests = 0;
};

class executor {
  public:
    // Crash-recovery state goes to `store` when given (it must outlive the
    // executor), else to a file_store in state_dir/journal.
    executor(apigee::api& api, observer& obs, const std::filesystem::path& state_dir,
             std::function<sys_ms()> clock, state_store* store = nullptr);

    // Delivery targets (exec/delivery.hpp): the revocation gate. nullptr (the
    // default): no policy delivers. Must outlive the executor.
    void set_delivery(delivery* d) { delivery_ = d; }

    // Plans every app matched by one of `policies` (of this organisation). No writes;
    // reads a developer's status where the plan needs it and the list did not say.
    net::awaitable<result<std::vector<planned_app>>> plan(
        const std::vector<policy::policy>& policies, const run_options& opt);
    // Apps of the organisation left alone by the last plan() or run_pass(), by
    // reason (pass_summary::skipped_apps): team apps are counted here although
    // no policy matches them.
    const std::map<std::string, int>& skipped_apps() const { return skipped_; }

    // One pass: inventory, plan, apply, verify. Never throws for API failures.
    // Every app of the organisation (team apps included) with all of its keys
    // (revoked ones when opt.list_revoked) from the paged list; no per-app reads.
    net::awaitable<result<inventory>> read_inventory(const run_options& opt);

    net::awaitable<pass_summary> run_pass(const std::vector<policy::policy>& policies,
                                          const run_options& opt);

    // A pass over the given apps only: one GET each (and one for the status of
    // each developer with work), then plan and apply as run_pass does. For the
    // daemon's wake-ups between full passes, when an action falls due on a few
    // apps: it need not list the whole organisation. Apps gone or no longer
    // matched are left alone. The summary is `partial`: not given to on_pass.
    net::awaitable<pass_summary> run_apps(const std::vector<policy::policy>& policies,
                                          const std::vector<app_wake>& apps,
                                          const run_options& opt);

  private:
    // The apps a policy matches, planned. With `unmatched`, also the working
    // keys of the apps left out (no policy, or a team app), for key.expiring.
    std::vector<planned_app> match(std::vector<app>& apps,
                                   const std::vector<policy::policy>& policies,
                                   const run_options& opt,
                                   std::vector<unmatched_key>* unmatched = nullptr);
    // For an app whose plan needs its developer's status: read it (once a pass
    // per developer) and plan again. False when it could not be read.
    net::awaitable<bool> learn_developer(planned_app& pa, const run_options& opt,
                                         bool always = false);
    bool lists_revoked(const std::vector<policy::policy>& policies, const run_options& opt) const;
    // The pass's queue of apps with something to do (run_pass).
    struct pipeline {
        explicit pipeline(const net::any_io_executor& ex)
            : wake(ex, net::steady_timer::time_point::max()),
              space(ex, net::steady_timer::time_point::max()) {}
        std::deque<planned_app> queue;
        bool reading = true;      // the reader has more pages
        bool aborted = false;     // a bug killed a coroutine: everyone stops
        net::steady_timer wake;   // cancelled: apps queued, or reading ended
        net::steady_timer space;  // cancelled: an app was taken from the queue
    };
    net::awaitable<void> feed(inventory_stream& stream, pipeline& pl,
                              const std::vector<policy::policy>& policies, const run_options& opt,
                              pass_summary& sum,
                              std::map<std::string, pass_summary::policy_counts>& counts);
    net::awaitable<void> drain(pipeline& pl, const run_options& opt, pass_summary& sum,
                               std::map<std::string, pass_summary::policy_counts>& counts);
    static void restrict_to_deletions(planned_app& pa);
    static void strip_deletions(planned_app& pa);
    net::awaitable<void> apply_deletions(planned_app& pa, const run_options& opt,
                                         pass_summary& sum);
    void tally(const planned_app& pa, std::map<std::string, pass_summary::policy_counts>& counts,
               pass_summary& sum);
    // What every pass starts with: per-pass caches cleared, crash leftovers
    // loaded. An error when the state store cannot be read: the pass must not write.
    net::awaitable<result<void>> begin_pass(const run_options& opt);
    net::awaitable<void> apply_app(planned_app& pa, const run_options& opt, pass_summary& sum);
    net::awaitable<bool> apply(planned_app& pa, const plan::action& act, const run_options& opt);
    // Makes act's successor (plan::making_steps, one write each), then completes it.
    net::awaitable<bool> make_successor(planned_app& pa, const plan::action& act);
    // The key a making write made (read back when the answer was lost), or
    // why not; `absent`: known not to exist, so its guards (intent, journal)
    // can go; `reported`: another failure was reported on the way (generate
    // rewrote the app's attributes: trap 1).
    struct create_outcome {
        std::optional<credential> key;
        bool absent = false;
        bool reported = false;
        // Generate replaced the app's attributes or callback URL and putting
        // them back failed: the journal entry stays, so that the next pass's
        // recovery puts them back (it holds them).
        bool keep_journal = false;
        std::string error;
    };
    net::awaitable<create_outcome> create_or_read_back(apigee::app_owner owner, std::string name,
                                                       const apigee::new_key& nk);
    net::awaitable<create_outcome> generate_key(planned_app& pa, const plan::action& act,
                                                const plan::step& st, const app& before);
    net::awaitable<bool> complete(planned_app& pa, credential successor,
                                  const plan::successor_spec& spec, const std::string& replaces);
    net::awaitable<bool> revoke(planned_app& pa, const plan::action& act);
    net::awaitable<bool> remove(planned_app& pa, const plan::action& act);
    // Reads `fp` (unless `fresh` is its answer to a GET key of this moment)
    // and the key it replaces from Apigee, and delivers them.
    net::awaitable<result<void>> deliver(planned_app& pa, const std::string& fp,
                                         const std::string& replaces,
                                         const credential* fresh = nullptr);
    net::awaitable<bool> recover_journal(planned_app& pa);
    net::awaitable<void> recover_intents(planned_app& pa);
    void keep(planned_app& pa, credential c, const secret& key) const;
    intent make_intent(const planned_app& pa, audit_action action, const std::string& key,
                       const std::string& replaces, std::string detail, bool late) const;
    // The intent of the audit record step `st`'s write makes true
    // (plan::step::records); nullopt when it makes none.
    std::optional<intent> step_intent(const planned_app& pa, const plan::step& st,
                                      const std::string& key, const std::string& replaces,
                                      std::string detail, bool late) const;
    net::awaitable<bool> begin(const planned_app& pa, const intent& i);
    net::awaitable<bool> finish(const planned_app& pa, const intent& i);

    bool record(const planned_app& pa, audit_action action, const std::string& key,
                const std::string& replaces, std::string detail, bool dry_run = false,
                bool late = false);
    bool fail(const planned_app& pa, const std::string& key, const std::string& replaces,
              std::string detail);
    // After a pass left an app with nothing to do: when its newest key's
    // predecessor is revoked or gone but the targets were never told (a crash
    // after the revocation, a target down then), tell them now; once per
    // successor per process.
    net::awaitable<void> settle_delivery(planned_app& pa, const run_options& opt);
    // The keys settle_delivery would look at (none: the app needs no worker for it).
    std::vector<const plan::key_view*> unsettled(const planned_app& pa,
                                                 const run_options& opt) const;
    // Tells the observer how a delivery to the app's targets went.
    void delivered(const planned_app& pa, const std::string& key, const std::string& replaces,
                   const char* stage, bool ok);

    apigee::api& api_;
    observer& obs_;
    std::set<std::pair<audit_action, std::string>> recently_audited() const;

    std::filesystem::path state_dir_;
    std::unique_ptr<state_store> own_store_;  // when none was given
    state_store& store_;
    journal journal_;
    intent_log intents_;
    std::set<std::pair<audit_action, std::string>> audited_;  // (action, key), while recovering
    bool journal_checked_audit_ = false;                      // audited_ holds the audit log's tail
    std::map<std::string, std::vector<intent>> pending_intents_;  // developer\napp -> intents
    std::function<sys_ms()> clock_;
    std::map<std::string, int> skipped_;
    std::map<std::string, owner_status> developer_status_;  // lower-case email → status, this pass
    std::optional<sys_ms> wake_horizon_;                    // run_options::wake_horizon, this pass
    delivery* delivery_ = nullptr;
    // Successors whose targets were told the key they replaced is gone
    // (delivery::revoked succeeded) in this process: settle_delivery skips them.
    std::set<std::string> dropped_;
};

}  // namespace keyrot::exec
