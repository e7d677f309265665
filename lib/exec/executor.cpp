#include "exec/executor.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apigee/api.hpp"
#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "exec/executor_detail.hpp"
#include "exec/inventory.hpp"
#include "exec/keygen.hpp"

namespace keyrot::exec {

using namespace detail;

executor::executor(apigee::api& api, observer& obs, const std::filesystem::path& state_dir,
                   std::function<sys_ms()> clock, state_store* store)
    : api_(api),
      obs_(obs),
      state_dir_(state_dir),
      own_store_(store ? nullptr : std::make_unique<file_store>(state_dir / "journal")),
      store_(store ? *store : *own_store_),
      journal_(store_),
      intents_(store_),
      clock_(std::move(clock)) {}

bool executor::lists_revoked(const std::vector<policy::policy>& policies,
                             const run_options& opt) const {
    if (opt.list_revoked) return true;
    return std::any_of(policies.begin(), policies.end(),
                       [](const policy::policy& p) { return p.rotation.deletes_revoked(); });
}

namespace {

// Some policy matches team (AppGroup) apps: the pass learns the AppGroups' status.
bool wants_teams(const std::vector<policy::policy>& policies) {
    return std::any_of(policies.begin(), policies.end(),
                       [](const policy::policy& p) { return !p.match.app_groups.empty(); });
}

}  // namespace

net::awaitable<result<inventory>> executor::read_inventory(const run_options& opt) {
    inventory inv;
    inventory_stream stream(api_, opt.page_size, opt.list_revoked);
    auto opened = co_await stream.open();
    if (!opened) co_return opened.err();
    for (;;) {
        auto page = co_await stream.next();
        if (!page) co_return page.err();
        if (!page.value()) break;
        for (auto& a : *page.value()) inv.apps.push_back(std::move(a));
    }
    inv.list_requests = stream.list_requests();
    co_return inv;
}

std::vector<planned_app> executor::match(std::vector<app>& apps,
                                         const std::vector<policy::policy>& policies,
                                         const run_options& opt,
                                         std::vector<unmatched_key>* unmatched) {
    std::vector<planned_app> out;
    const sys_ms now = clock_();
    for (auto& a : apps) {
        // Developer e-mails compare without case, as Apigee's do, and so do
        // AppGroup names here (a team app: TEAM/APP; `rotate` lower-cases the
        // owner it is given); app names exactly.
        if (!opt.only_app.empty()) {
            const auto slash = opt.only_app.find('/');  // neither part holds one
            const std::string owner =
                slash == std::string::npos ? "" : opt.only_app.substr(0, slash);
            const bool same_owner =
                ascii_lower(owner) ==
                ascii_lower(a.app_group.empty() ? a.developer_email : a.app_group);
            if (slash == std::string::npos || !same_owner ||
                opt.only_app.substr(slash + 1) != a.name)
                continue;
        }
        const policy::policy* p = plan::match_policy(a, policies);
        if (p == nullptr) {
            if (unmatched) add_unmatched(a, now, *unmatched);
            continue;
        }
        planned_app pa;
        pa.plan = plan::plan_app(a, *p, now, opt.plan);
        pa.snapshot = std::move(a);
        pa.read_at = now;
        pa.policy = p;
        out.push_back(std::move(pa));
    }
    return out;
}

net::awaitable<result<std::vector<planned_app>>> executor::plan(
    const std::vector<policy::policy>& policies, const run_options& opt) {
    skipped_.clear();
    developer_status_.clear();
    run_options o = opt;
    o.list_revoked = lists_revoked(policies, opt);
    inventory_stream stream(api_, o.page_size, o.list_revoked, wants_teams(policies));
    auto opened = co_await stream.open();
    if (!opened) co_return opened.err();
    developer_status_ = stream.developer_statuses();
    std::vector<planned_app> out;
    for (;;) {
        const bool deletions = stream.revoked_phase();
        auto page = co_await stream.next();
        if (!page) co_return page.err();
        if (!page.value()) break;
        for (auto& pa : match(*page.value(), policies, o)) {
            if (deletions)
                restrict_to_deletions(pa);
            else
                strip_deletions(pa);
            out.push_back(std::move(pa));
        }
    }
    for (auto& pa : out) {
        co_await learn_developer(pa, o, o.learn_all_developers);
        if (pa.deletions_only) {
            restrict_to_deletions(pa);
        } else if (pa.plan.skipped) {
            ++skipped_[pa.plan.skip_code];
        }
    }
    // One entry per app: the revoked phase's keys and deletions join the
    // app's entry from the approved phase (when it had one).
    std::map<std::string, std::size_t> first;
    std::vector<planned_app> merged;
    for (auto& pa : out) {
        const std::string id = owner_id(pa.snapshot) + "\n" + pa.snapshot.name;
        auto it = first.find(id);
        if (!pa.deletions_only || it == first.end()) {
            first.emplace(id, merged.size());
            merged.push_back(std::move(pa));
            continue;
        }
        planned_app& into = merged[it->second];
        for (auto& k : pa.plan.keys) into.plan.keys.push_back(std::move(k));
        for (auto& a : pa.plan.actions) into.plan.actions.push_back(std::move(a));
    }
    co_return merged;
}

net::awaitable<bool> executor::learn_developer(planned_app& pa, const run_options& opt,
                                               bool always) {
    if (pa.snapshot.developer_status != owner_status::not_known) co_return true;
    if (!always && pa.plan.skip_code != "developer-unknown" && pa.plan.skip_code != "team-unknown")
        co_return true;
    const bool team = !pa.snapshot.app_group.empty();
    const std::string who = team ? owner_id(pa.snapshot) : ascii_lower(pa.snapshot.developer_email);
    auto known = developer_status_.find(who);
    if (known == developer_status_.end()) {
        const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
        auto st = co_await api_.get_owner_status(owner);
        if (!st) {
            pa.current = plan::action_kind::report;
            fail(pa, "", "",
                 std::string(team ? "cannot read the team's (AppGroup's) status: "
                                  : "cannot read the developer's status: ") +
                     st.err().describe());
            co_return false;
        }
        known = developer_status_.emplace(who, st.value()).first;
    }
    pa.snapshot.developer_status = known->second;
    pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), opt.plan);
    co_return true;
}

net::awaitable<pass_summary> executor::run_pass(const std::vector<policy::policy>& policies,
                                                const run_options& opt) {
    pass_summary sum;
    sum.organization = api_.organization();
    sum.started = clock_();
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&t0] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0);
    };
    std::map<std::string, pass_summary::policy_counts> counts;
    for (const auto& p : policies) counts[p.name].policy = p.name;
    auto began = co_await begin_pass(opt);
    if (!began) {
        sum.error = began.err().describe();
        sum.took = elapsed();
        obs_.on_pass(sum);
        co_return sum;
    }

    // A reader streams pages of apps into a bounded queue; workers take the
    // apps that have something to do. Reading the next page overlaps with the
    // writes of the last, and no page boundary makes the workers wait.
    inventory_stream stream(api_, opt.page_size, lists_revoked(policies, opt),
                            wants_teams(policies));
    auto opened = co_await stream.open();
    if (!opened) {
        sum.error = "inventory: " + opened.err().describe();
        sum.took = elapsed();
        obs_.on_pass(sum);
        co_return sum;
    }
    developer_status_ = stream.developer_statuses();
    auto ex = co_await net::this_coro::executor;
    pipeline pl(ex);
    const int workers = std::max(1, opt.concurrency);
    int running = workers + 1;
    net::steady_timer done(ex, net::steady_timer::time_point::max());
    std::exception_ptr first_error;
    auto finished = [&running, &done, &first_error, &pl](const std::exception_ptr& e) {
        if (e) {
            if (!first_error) first_error = e;
            pl.aborted = true;  // nobody waits forever for a worker that died
            pl.wake.cancel();
            pl.space.cancel();
        }
        if (--running == 0) done.cancel();
    };
    net::co_spawn(ex, feed(stream, pl, policies, opt, sum, counts), finished);
    for (int i = 0; i < workers; ++i) net::co_spawn(ex, drain(pl, opt, sum, counts), finished);
    if (running > 0) {
        boost::system::error_code ec;
        co_await done.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (first_error) std::rethrow_exception(first_error);  // a bug: let it be seen
    for (auto& [name, c] : counts) sum.by_policy.push_back(c);
    sum.skipped_apps = skipped_;
    sum.ok = sum.error.empty() && sum.actions_failed == 0;
    sum.took = elapsed();
    obs_.on_pass(sum);
    co_return sum;
}

net::awaitable<void> executor::feed(inventory_stream& stream, pipeline& pl,
                                    const std::vector<policy::policy>& policies,
                                    const run_options& opt, pass_summary& sum,
                                    std::map<std::string, pass_summary::policy_counts>& counts) {
    const std::size_t limit = 2 * static_cast<std::size_t>(std::max(opt.page_size, 1));
    while (!pl.aborted) {
        if (pl.queue.size() >= limit) {  // the workers are behind: wait for room
            boost::system::error_code ec;
            co_await pl.space.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        const bool deletions = stream.revoked_phase();
        auto page = co_await stream.next();
        if (!page) {
            // Apps already done stay done; the rest waits for the next pass.
            sum.error = "inventory: " + page.err().describe();
            break;
        }
        if (!page.value()) break;
        if (!deletions) sum.apps_seen += static_cast<int>(page.value()->size());
        // Keys of apps no policy matches, from the approved listing of a pass
        // over the whole organisation (the revoked phase's keys are slim).
        std::vector<unmatched_key>* unmatched =
            !deletions && opt.only_app.empty() && obs_.wants_keys() ? &sum.unmatched_keys : nullptr;
        std::vector<planned_app> apps = match(*page.value(), policies, opt, unmatched);
        if (deletions) {
            // The revoked phase: apps seen already (or having revoked keys only).
            for (auto& pa : apps) restrict_to_deletions(pa);
        } else {
            for (auto& pa : apps) strip_deletions(pa);
            sum.apps_matched += static_cast<int>(apps.size());
        }
        for (auto& pa : apps) {
            // An app with nothing planned still needs a worker when a crash left
            // an intent or a generate journal entry for it.
            const auto& a = pa.snapshot;
            const bool recover =
                !opt.dry_run && (pending_intents_.count(owner_id(a) + "\n" + a.name) ||
                                 journal_.exists(a.organization, owner_id(a), a.name));
            // An app with work whose developer's status is not known yet: a
            // worker reads the status and plans again.
            const bool learn =
                (pa.plan.skip_code == "developer-unknown" || pa.plan.skip_code == "team-unknown") &&
                pa.snapshot.developer_status == owner_status::not_known;
            // And one whose targets may still hold a revoked key (settle_delivery).
            const bool settle = !unsettled(pa, opt).empty();
            if (pa.plan.actions.empty() && !recover && !learn && !settle) {
                tally(pa, counts, sum);
            } else {
                pl.queue.push_back(std::move(pa));
            }
        }
        pl.wake.cancel();
    }
    pl.reading = false;
    pl.wake.cancel();
}

net::awaitable<void> executor::drain(pipeline& pl, const run_options& opt, pass_summary& sum,
                                     std::map<std::string, pass_summary::policy_counts>& counts) {
    // One thread runs every worker: between two co_awaits nothing else runs,
    // so the queue needs no lock.
    while (!pl.aborted) {
        if (!pl.queue.empty()) {
            planned_app pa = std::move(pl.queue.front());
            pl.queue.pop_front();
            pl.space.cancel();
            co_await apply_app(pa, opt, sum);
            tally(pa, counts, sum);
            continue;
        }
        if (!pl.reading) break;
        boost::system::error_code ec;
        co_await pl.wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
}

// An app from the listing's revoked phase: its approved keys are slim copies
// (lineage only), so nothing but deletions may be planned from it, and only
// its revoked keys are new to the counts.
// Deletions come from the revoked phase alone, even when the approved listing
// shows revoked keys too (one reading of keyStatus): never twice in a pass.
void executor::strip_deletions(planned_app& pa) {
    std::erase_if(pa.plan.actions,
                  [](const plan::action& a) { return a.kind == plan::action_kind::delete_key; });
}

void executor::restrict_to_deletions(planned_app& pa) {
    pa.deletions_only = true;
    std::erase_if(pa.plan.actions,
                  [](const plan::action& a) { return a.kind != plan::action_kind::delete_key; });
    std::erase_if(pa.plan.keys,
                  [](const plan::key_view& k) { return k.state != plan::key_state::revoked; });
}

net::awaitable<void> executor::apply_deletions(planned_app& pa, const run_options& opt,
                                               pass_summary& sum) {
    const bool dry = opt.dry_run || pa.policy->dry_run;
    if (!dry) co_await recover_intents(pa);
    for (const auto& act : pa.plan.actions) {
        pa.current = act.kind;
        if (dry) {
            record(pa, audit_action::deleted, act.key, "", act.reason, true);  // dryRun says it
            ++sum.actions_done;
            continue;
        }
        if (opt.may_write && !opt.may_write()) co_return;  // not the leader any more
        if (!co_await remove(pa, act)) {
            ++sum.actions_failed;
            co_return;
        }
        ++sum.actions_done;
    }
}

net::awaitable<result<void>> executor::begin_pass(const run_options& opt) {
    skipped_.clear();
    developer_status_.clear();
    wake_horizon_ = opt.wake_horizon;
    pending_intents_.clear();
    audited_.clear();
    journal_checked_audit_ = false;
    if (!opt.dry_run) {
        if (auto loaded = co_await store_.load(); !loaded) {
            error e = loaded.err();
            e.message = "cannot read the recovery state (" + store_.describe() +
                        "), so no writes this pass: " + e.message;
            co_return e;
        }
        for (auto& i : intents_.load(api_.organization()))
            pending_intents_[(i.team.empty() ? i.developer : "\x01" + i.team) + "\n" + i.app]
                .push_back(std::move(i));
        if (!pending_intents_.empty()) audited_ = recently_audited();
    }
    co_return result<void>{};
}

net::awaitable<pass_summary> executor::run_apps(const std::vector<policy::policy>& policies,
                                                const std::vector<app_wake>& apps,
                                                const run_options& opt) {
    pass_summary sum;
    sum.partial = true;
    sum.organization = api_.organization();
    sum.started = clock_();
    const auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, pass_summary::policy_counts> counts;
    auto began = co_await begin_pass(opt);
    if (!began) {
        sum.error = began.err().describe();
        sum.took = std::chrono::steady_clock::now() - t0;
        co_return sum;
    }
    for (const auto& w : apps) {
        if (opt.may_write && !opt.may_write()) break;  // not the leader any more
        const apigee::app_owner owner = w.team.empty()
                                            ? apigee::app_owner::developer_app(w.developer)
                                            : apigee::app_owner::of_team(w.team);
        auto got = co_await api_.get_app(owner, w.app);
        if (!got) {
            if (got.err().is_status(404)) continue;  // gone: nothing to do
            sum.error = "read app " + (w.team.empty() ? w.developer : w.team) + "/" + w.app + ": " +
                        got.err().describe();
            break;  // the next full pass reads everything again
        }
        app a = std::move(got.value());
        a.organization = api_.organization();
        // The app's own answer may not carry its owner.
        a.developer_email = w.developer;
        a.app_group = w.team;
        a.developer_status = owner_status::not_known;  // learnt when the plan has work
        ++sum.apps_seen;
        std::vector<app> one;
        one.push_back(std::move(a));
        for (auto& pa : match(one, policies, opt)) {
            ++sum.apps_matched;
            co_await apply_app(pa, opt, sum);
            tally(pa, counts, sum);
        }
    }
    for (auto& [name, c] : counts) sum.by_policy.push_back(c);
    sum.skipped_apps = skipped_;
    sum.ok = sum.error.empty() && sum.actions_failed == 0;
    sum.took = std::chrono::steady_clock::now() - t0;
    co_return sum;
}

void executor::tally(const planned_app& pa,
                     std::map<std::string, pass_summary::policy_counts>& counts,
                     pass_summary& sum) {
    auto& c = counts[pa.policy->name];
    c.policy = pa.policy->name;
    if (pa.deletions_only) {  // the rest of this app was counted in the approved phase
        for (const auto& k : pa.plan.keys) {
            ++c.revoked;
            if (obs_.wants_keys())
                sum.keys.push_back({pa.snapshot.developer_email, pa.snapshot.name, pa.policy->name,
                                    k, pa.snapshot.developer_status, pa.snapshot.app_group});
        }
        return;
    }
    ++c.apps;
    if (pa.plan.skipped) ++skipped_[pa.plan.skip_code];
    if (obs_.wants_decisions()) {
        app_decision d{pa.snapshot.organization,
                       pa.snapshot.developer_email,
                       pa.snapshot.name,
                       pa.policy->name,
                       "",
                       pa.plan.next_wake};
        if (pa.plan.skipped) {
            d.decision = "skipped: " + pa.plan.skip_reason;
        } else if (pa.plan.actions.empty()) {
            d.decision = "nothing to do";
        } else {
            // What is left after the pass: reports, and what failed or waits.
            for (const auto& a : pa.plan.actions)
                d.decision += (d.decision.empty() ? "" : "; ") +
                              std::string(plan::to_string(a.kind)) + " " + a.key + ": " + a.reason;
        }
        obs_.on_app(d);
    }
    if (!pa.plan.skipped && !pa.plan.has_valid_key) ++c.apps_without_valid_key;
    c.revocations_held += pa.revocations_held;
    c.held_expiry = earliest(c.held_expiry, pa.held_expiry);
    sum.next_wake = earliest(sum.next_wake, pa.plan.next_wake);
    if (wake_horizon_ && pa.plan.next_wake < *wake_horizon_)  // never is not
        sum.wakes.push_back({pa.snapshot.developer_email, pa.snapshot.name, pa.plan.next_wake,
                             pa.snapshot.app_group});
    for (const auto& k : pa.plan.keys) {
        switch (k.state) {
            case plan::key_state::valid:
                ++c.valid;
                break;
            case plan::key_state::due:
                ++c.due;
                break;
            case plan::key_state::overlap:
                ++c.overlap;
                break;
            case plan::key_state::expired:
                ++c.expired;
                break;
            case plan::key_state::revoked:
                ++c.revoked;
                break;
            case plan::key_state::skipped:
                ++c.skipped;
                break;
        }
        if (obs_.wants_keys())
            sum.keys.push_back({pa.snapshot.developer_email, pa.snapshot.name, pa.policy->name, k,
                                pa.snapshot.developer_status, pa.snapshot.app_group});
    }
    if (pa.plan.keys.empty() && !pa.plan.skipped && obs_.wants_keys())
        sum.keyless_apps.push_back({pa.snapshot.developer_email,
                                    pa.snapshot.name,
                                    pa.policy->name,
                                    {},
                                    pa.snapshot.developer_status,
                                    pa.snapshot.app_group});
}

net::awaitable<void> executor::apply_app(planned_app& pa, const run_options& opt,
                                         pass_summary& sum) {
    const bool dry = opt.dry_run || pa.policy->dry_run;
    if (!co_await learn_developer(pa, opt)) {
        ++sum.actions_failed;
        co_return;
    }
    if (pa.deletions_only) {
        restrict_to_deletions(pa);  // learn_developer planned it again
        if (!pa.plan.skipped) co_await apply_deletions(pa, opt, sum);
        co_return;
    }
    if (pa.plan.skipped) co_return;
    if (!dry) {
        co_await recover_intents(pa);
        const bool recovered = co_await recover_journal(pa);
        if (!recovered) {
            ++sum.actions_failed;
            co_return;
        }
    }
    // Plan, act, re-read, plan again: a rotation (create, complete) and what
    // follows from it settle in one pass. Bounded, in case Apigee and we disagree.
    // A forced rotation (`rotate --app`) applies to the keys as they were: the
    // successor it just made is not rotated again.
    plan::options later = opt.plan;
    later.force_rotate = false;
    for (int round = 0; round < 4; ++round) {
        if (round > 0) pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), later);
        bool wrote = false;
        strip_deletions(pa);  // the revoked phase deletes (learn_developer, recovery re-plan)
        for (const auto& act : pa.plan.actions) {
            pa.current = act.kind;
            if (act.kind == plan::action_kind::report) {
                if (round == 0)
                    record(pa, act.failed ? audit_action::failed : audit_action::skipped, act.key,
                           act.replaces, act.reason, dry);
                if (act.failed) ++sum.actions_failed;
                continue;
            }
            if (dry) {
                const audit_action what =
                    act.kind == plan::action_kind::create_successor     ? audit_action::created
                    : act.kind == plan::action_kind::complete_successor ? audit_action::completed
                    : act.kind == plan::action_kind::revoke_key         ? audit_action::revoked
                                                                        : audit_action::deleted;
                record(pa, what, act.kind == plan::action_kind::create_successor ? "" : act.key,
                       act.kind == plan::action_kind::create_successor ? act.key : act.replaces,
                       act.reason, true, act.late);  // dryRun: true says it
                ++sum.actions_done;
                continue;
            }
            if (opt.may_write && !opt.may_write()) co_return;  // not the leader any more
            wrote = true;
            const bool ok = co_await apply(pa, act, opt);
            if (!ok) {
                ++sum.actions_failed;
                co_return;  // the next pass reads the real state and continues from it
            }
            ++sum.actions_done;
        }
        if (!wrote) {
            co_await settle_delivery(pa, opt);
            co_return;
        }
        // Every write above was verified and its result kept in the snapshot;
        // only "generate", which rewrites the app itself, makes us read it again.
        if (!pa.reread) continue;
        pa.reread = false;
        const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
        auto fresh = co_await api_.get_app(owner, pa.snapshot.name);
        if (!fresh) {
            fail(pa, "", "", "re-reading the app after writing: " + fresh.err().describe());
            ++sum.actions_failed;
            co_return;
        }
        adopt(pa, std::move(fresh.value()), clock_());
    }
    pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), later);
    co_await settle_delivery(pa, opt);
}

net::awaitable<bool> executor::apply(planned_app& pa, const plan::action& act, const run_options&) {
    switch (act.kind) {
        case plan::action_kind::create_successor:
            co_return co_await make_successor(pa, act);
        case plan::action_kind::complete_successor: {
            const credential* s = find_key(pa.snapshot, act.key);
            if (s == nullptr) co_return fail(pa, act.key, act.replaces, "successor vanished");
            const bool completed = co_await complete(pa, *s, act.spec, act.replaces);
            co_return completed;
        }
        case plan::action_kind::revoke_key:
            co_return co_await revoke(pa, act);
        case plan::action_kind::delete_key:
            co_return co_await remove(pa, act);
        case plan::action_kind::report:
            co_return true;
    }
    co_return true;
}

}  // namespace keyrot::exec
