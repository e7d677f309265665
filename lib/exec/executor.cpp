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
#include "exec/inventory.hpp"
#include "exec/keygen.hpp"

namespace keyrot::exec {
namespace {

const credential* find_key(const app& a, const std::string& fp) {
    for (const auto& c : a.credentials)
        if (c.fingerprint == fp) return &c;
    return nullptr;
}

std::string product_status(const credential& c, const std::string& product) {
    for (const auto& p : c.products)
        if (p.name == product) return p.status;
    return "";
}

template <typename T>
std::vector<T> sorted(std::vector<T> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        if constexpr (std::is_same_v<T, attribute>)
            return std::tie(a.name, a.value) < std::tie(b.name, b.value);
        else
            return a < b;
    });
    return v;
}

// Whether a failed write may have taken effect, so that reading back is the
// only way to know (docs/apigee-api.md, trap 4).
bool maybe_applied(const error& e) {
    return e.what == error::kind::network || (e.what == error::kind::http && e.status >= 500);
}

std::vector<attribute> with_marker(std::vector<attribute> attrs, const std::string& value) {
    for (auto& a : attrs) {
        if (a.name == k_marker_attribute) {
            a.value = value;
            return attrs;
        }
    }
    attrs.push_back({k_marker_attribute, value});
    return attrs;
}

// A `created` record: why, and when the new key expires.
std::string created_detail(const plan::action& act) {
    return act.reason + "; the new key expires " +
           (act.expires_at == k_never ? std::string("never") : format_time(act.expires_at));
}

// Whether a key as Apigee answered a write still carries keyrotd's lineage marker.
bool keeps_marker(const credential& c) {
    return find_attribute(c.attributes, k_marker_attribute) != nullptr;
}

// A re-read app replaces the snapshot; what only the org list and the developer
// list tell (organisation, developer email and status) is kept.
void adopt(planned_app& pa, app fresh) {
    fresh.organization = pa.snapshot.organization;
    fresh.developer_email = pa.snapshot.developer_email;
    fresh.developer_status = pa.snapshot.developer_status;
    pa.snapshot = std::move(fresh);
}

// The keys of an app keyrotd does not rotate that still work and will stop
// (approved, in an approved app, with an expiry still ahead): key.expiring's
// candidates. Keys that never expire are left out, to keep the summary small.
void add_unmatched(const app& a, millis now, std::vector<unmatched_key>& out) {
    if (a.status == "revoked") return;  // none of its keys works
    for (const auto& c : a.credentials) {
        if (c.status != "approved" || c.expires_at == k_never || c.expires_at <= now) continue;
        out.push_back({a.app_group.empty() ? a.developer_email : std::string(), a.app_group, a.name,
                       c.fingerprint, c.issued_at, c.expires_at, a.developer_status});
    }
}

}  // namespace

executor::executor(apigee::api& api, observer& obs, std::filesystem::path state_dir,
                   std::function<millis()> clock, state_store* store)
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
                       [](const policy::policy& p) { return p.rotation.delete_revoked_after > 0; });
}

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
    const millis now = clock_();
    for (auto& a : apps) {
        if (!a.app_group.empty()) {
            // Team (AppGroup) apps: not supported yet. Counted, never matched.
            if (opt.only_app.empty()) ++skipped_["team-app"];
            if (unmatched) add_unmatched(a, now, *unmatched);
            continue;
        }
        // Developer e-mails compare without case, as Apigee's do; app names exactly.
        if (!opt.only_app.empty()) {
            const auto slash = opt.only_app.find('/');  // neither part holds one
            if (slash == std::string::npos ||
                ascii_lower(opt.only_app.substr(0, slash)) != ascii_lower(a.developer_email) ||
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
    inventory_stream stream(api_, o.page_size, o.list_revoked);
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
        const std::string id = pa.snapshot.developer_email + "\n" + pa.snapshot.name;
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
    if (!pa.snapshot.developer_status.empty()) co_return true;
    if (!always && pa.plan.skip_code != "developer-unknown") co_return true;
    const std::string who = ascii_lower(pa.snapshot.developer_email);
    auto known = developer_status_.find(who);
    if (known == developer_status_.end()) {
        auto st = co_await api_.get_developer_status(pa.snapshot.developer_email);
        if (!st) {
            pa.current = plan::action_kind::report;
            fail(pa, "", "", "cannot read the developer's status: " + st.err().describe());
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
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    std::map<std::string, pass_summary::policy_counts> counts;
    for (const auto& p : policies) counts[p.name].policy = p.name;
    auto began = co_await begin_pass(opt);
    if (!began) {
        sum.error = began.err().describe();
        sum.seconds = elapsed();
        obs_.on_pass(sum);
        co_return sum;
    }

    // A reader streams pages of apps into a bounded queue; workers take the
    // apps that have something to do. Reading the next page overlaps with the
    // writes of the last, and no page boundary makes the workers wait.
    inventory_stream stream(api_, opt.page_size, lists_revoked(policies, opt));
    auto opened = co_await stream.open();
    if (!opened) {
        sum.error = "inventory: " + opened.err().describe();
        sum.seconds = elapsed();
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
    auto finished = [&running, &done, &first_error, &pl](std::exception_ptr e) {
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
    sum.seconds = elapsed();
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
                !opt.dry_run && (pending_intents_.count(a.developer_email + "\n" + a.name) ||
                                 journal_.exists(a.organization, a.developer_email, a.name));
            // An app with work whose developer's status is not known yet: a
            // worker reads the status and plans again.
            const bool learn =
                pa.plan.skip_code == "developer-unknown" && pa.snapshot.developer_status.empty();
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
            record(pa, "deleted", act.key, "", act.reason, true);  // dryRun says it
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
            pending_intents_[i.developer + "\n" + i.app].push_back(std::move(i));
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
        sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        co_return sum;
    }
    for (const auto& w : apps) {
        if (opt.may_write && !opt.may_write()) break;  // not the leader any more
        auto got = co_await api_.get_app(w.developer, w.app);
        if (!got) {
            if (got.err().is_status(404)) continue;  // gone: nothing to do
            sum.error = "read app " + w.developer + "/" + w.app + ": " + got.err().describe();
            break;  // the next full pass reads everything again
        }
        app a = std::move(got.value());
        a.organization = api_.organization();
        a.developer_email = w.developer;  // the app's own answer may not carry it
        a.developer_status.clear();       // learnt when the plan has work
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
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
                                    k, pa.snapshot.developer_status});
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
    if (pa.plan.next_wake != k_never) {
        sum.next_wake = sum.next_wake == k_never ? pa.plan.next_wake
                                                 : std::min(sum.next_wake, pa.plan.next_wake);
        if (pa.plan.next_wake < wake_horizon_)
            sum.wakes.push_back({pa.snapshot.developer_email, pa.snapshot.name, pa.plan.next_wake});
    }
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
                                pa.snapshot.developer_status});
    }
    if (pa.plan.keys.empty() && !pa.plan.skipped && obs_.wants_keys())
        sum.keyless_apps.push_back({pa.snapshot.developer_email,
                                    pa.snapshot.name,
                                    pa.policy->name,
                                    {},
                                    pa.snapshot.developer_status});
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
                    record(pa, act.failed ? "failed" : "skipped", act.key, act.replaces, act.reason,
                           dry);
                if (act.failed) ++sum.actions_failed;
                continue;
            }
            if (dry) {
                const char* what = act.kind == plan::action_kind::create_successor     ? "created"
                                   : act.kind == plan::action_kind::complete_successor ? "completed"
                                   : act.kind == plan::action_kind::revoke_key         ? "revoked"
                                                                                       : "deleted";
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
        auto fresh = co_await api_.get_app(pa.snapshot.developer_email, pa.snapshot.name);
        if (!fresh) {
            fail(pa, "", "", "re-reading the app after writing: " + fresh.err().describe());
            ++sum.actions_failed;
            co_return;
        }
        adopt(pa, std::move(fresh.value()));
    }
    pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), later);
    co_await settle_delivery(pa, opt);
}

std::vector<const plan::key_view*> executor::unsettled(const planned_app& pa,
                                                       const run_options& opt) const {
    std::vector<const plan::key_view*> out;
    if (!delivery_ || opt.dry_run || pa.policy->dry_run || pa.plan.skipped || pa.deletions_only)
        return out;
    if (!pa.plan.actions.empty() || !delivery_->wants(pa.snapshot, *pa.policy)) return out;
    // The newest complete key: it replaces a key, has no successor yet, and
    // the key it replaces no longer works (revoked, or gone from the listing).
    for (const auto& k : pa.plan.keys) {
        if (k.replaces.empty() || k.pending || !k.successor.empty()) continue;
        if (k.state != plan::key_state::valid && k.state != plan::key_state::due) continue;
        if (dropped_.count(k.fingerprint)) continue;
        const bool predecessor_works =
            std::any_of(pa.plan.keys.begin(), pa.plan.keys.end(), [&](const plan::key_view& o) {
                return o.fingerprint == k.replaces &&
                       (o.state == plan::key_state::valid || o.state == plan::key_state::due ||
                        o.state == plan::key_state::overlap);
            });
        if (!predecessor_works) out.push_back(&k);
    }
    return out;
}

net::awaitable<void> executor::settle_delivery(planned_app& pa, const run_options& opt) {
    // (copies: the plan is not replaced meanwhile, but a vector of pointers into it is fragile)
    std::vector<plan::key_view> keys;
    for (const plan::key_view* kp : unsettled(pa, opt)) keys.push_back(*kp);
    for (const auto& k : keys) {
        const credential* s = find_key(pa.snapshot, k.fingerprint);
        if (s == nullptr) continue;
        // Ask the targets first (no Apigee call): most often they are settled.
        auto states = co_await delivery_->inspect(pa.snapshot, *pa.policy);
        if (!states) co_return;
        const bool settled =
            std::all_of(states->begin(), states->end(), [&](const target_state& t) {
                return !t.skipped.empty() ||
                       (t.error.empty() && t.key == k.fingerprint && t.previous.empty());
            });
        if (settled) {
            dropped_.insert(k.fingerprint);
            continue;
        }
        if (opt.may_write && !opt.may_write()) co_return;  // not the leader any more
        // The listing's keys carry no secret: read it as Apigee has it.
        auto cur =
            co_await api_.get_key(pa.snapshot.developer_email, pa.snapshot.name, s->consumer_key);
        if (!cur) co_return;  // the next pass tries again
        const delivered_key dk{k.fingerprint, s->consumer_key, cur->consumer_secret,
                               cur->expires_at};
        auto d = co_await delivery_->revoked(pa.snapshot, *pa.policy, dk);
        delivered(pa, k.fingerprint, k.replaces, "drop", static_cast<bool>(d));
        if (d) dropped_.insert(k.fingerprint);
    }
}

net::awaitable<bool> executor::apply(planned_app& pa, const plan::action& act, const run_options&) {
    switch (act.kind) {
        case plan::action_kind::create_successor:
            if (pa.policy->rotation.method == policy::rotation_method::generate)
                co_return co_await create_generate(pa, act);
            co_return co_await create_import(pa, act);
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

net::awaitable<bool> executor::create_import(planned_app& pa, const plan::action& act) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    apigee::new_key nk;
    nk.consumer_key = random_token(48);
    nk.consumer_secret = random_token(48);
    const millis now = clock_();
    nk.expires_in_seconds =
        act.expires_at == k_never ? k_never : std::max<millis>(1, (act.expires_at - now) / 1000);
    // Attributes and the pending marker in the create; no scopes: a key without
    // products may refuse them (docs/apigee-fidelity.md). complete() sets them.
    nk.attributes = with_marker(act.spec.attributes, k_pending_prefix + act.key);
    const std::string fp = fingerprint(nk.consumer_key);

    const intent in = make_intent(pa, "created", fp, act.key, created_detail(act), act.late);
    const bool began = co_await begin(pa, in);
    if (!began) co_return false;
    auto created = co_await api_.create_key(dev, name, nk);
    if (!created) {
        // A key that was never created is named nowhere (no fingerprint of it
        // in the log or the audit record): the record names the old key only.
        if (!maybe_applied(created.err()) && !created.err().is_status(409)) {
            co_await intents_.remove(in);
            co_return fail(pa, "", act.key, "create key: " + created.err().describe());
        }
        // It may exist after all: read it back instead of creating another.
        auto back = co_await api_.get_key(dev, name, nk.consumer_key);
        if (!back) {
            // Absent, or not known: either way the record names no new key. If
            // it was created after all, its intent and pending marker make the
            // next pass find it, audit it and complete it.
            const bool absent = back.err().is_status(404);
            if (absent) co_await intents_.remove(in);
            co_return fail(pa, "", act.key,
                           "create key: " + created.err().describe() +
                               (absent ? "; not created (the read-back finds no such key)"
                                       : "; read-back failed too: " + back.err().describe()) +
                               ", the next pass starts over");
        }
        created = std::move(back);
    }
    credential s = std::move(created.value());
    s.fingerprint = fp;
    s.consumer_key = nk.consumer_key;
    const std::string* mark = find_attribute(s.attributes, k_marker_attribute);
    if (mark == nullptr || *mark != k_pending_prefix + act.key || s.status != "approved")
        co_return fail(pa, fp, act.key, "created key does not read back as a pending successor");
    const bool finished = co_await finish(pa, in);
    if (!finished) co_return false;
    co_return co_await complete(pa, std::move(s), act.spec, act.key);
}

net::awaitable<bool> executor::create_generate(planned_app& pa, const plan::action& act) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    const credential* old = find_key(pa.snapshot, act.key);
    if (old == nullptr) co_return fail(pa, "", act.key, "old key vanished");
    std::vector<std::string> products;
    for (const auto& p : old->products) products.push_back(p.name);

    // Read the app right before: the body must repeat everything it holds.
    auto before = co_await api_.get_app(dev, name);
    if (!before)
        co_return fail(pa, "", act.key, "read app before generate: " + before.err().describe());
    journal_entry je{pa.snapshot.organization, dev, name, act.key, {}, clock_()};
    for (const auto& c : before->credentials) je.known.push_back(c.fingerprint);
    const bool journaled = co_await journal_.write(je);
    if (!journaled)
        co_return fail(pa, "", act.key,
                       "cannot write the generate journal (" + store_.describe() + ")");

    app body = before.value();
    body.api_products = products;
    body.scopes = act.spec.scopes;
    const millis now = clock_();
    body.key_expires_in = act.expires_at == k_never ? k_never : act.expires_at - now;
    pa.reread = true;  // the app itself is rewritten: re-read it before planning again
    auto after = co_await api_.generate_key(dev, body);
    if (!after) {
        if (!maybe_applied(after.err())) {
            co_await journal_.remove(pa.snapshot.organization, dev, name);
            co_return fail(pa, "", act.key, "generate key: " + after.err().describe());
        }
        after = co_await api_.get_app(dev, name);
        if (!after)
            co_return fail(pa, "", act.key, "read app after generate: " + after.err().describe());
    }
    // The new key is the one the journal did not know.
    const credential* fresh = nullptr;
    for (const auto& c : after->credentials) {
        if (std::find(je.known.begin(), je.known.end(), c.fingerprint) == je.known.end() &&
            find_attribute(c.attributes, k_marker_attribute) == nullptr)
            fresh = &c;
    }
    bool ok = true;
    if (sorted(after->attributes) != sorted(before->attributes) ||
        after->callback_url != before->callback_url) {
        // Trap 1: generate replaced the app's attributes or callback URL. Put them back.
        auto restored = co_await api_.update_app(dev, before.value());
        ok = false;
        fail(pa, fresh ? fresh->fingerprint : "", act.key,
             std::string("generate changed the app's attributes or callback URL; ") +
                 (restored ? "restored them" : "restoring FAILED: " + restored.err().describe()));
    }
    if (fresh == nullptr) {
        co_await journal_.remove(pa.snapshot.organization, dev, name);
        co_return fail(pa, "", act.key, "generate: no new key found; the next pass starts over");
    }
    credential s = *fresh;
    const intent in =
        make_intent(pa, "created", s.fingerprint, act.key, created_detail(act), act.late);
    const bool began = co_await begin(pa, in);
    if (!began) co_return false;
    auto marked =
        co_await api_.update_key(dev, name, s.consumer_key, {},
                                 with_marker(std::vector<attribute>{}, k_pending_prefix + act.key));
    if (!marked)
        co_return fail(pa, s.fingerprint, act.key, "mark new key: " + marked.err().describe());
    co_await journal_.remove(pa.snapshot.organization, dev, name);
    s.attributes = marked->attributes;
    s.products = marked->products;
    const bool finished = co_await finish(pa, in);
    if (!finished) co_return false;
    const bool completed = co_await complete(pa, std::move(s), act.spec, act.key);
    co_return ok&& completed;
}

net::awaitable<bool> executor::recover_journal(planned_app& pa) {
    const auto& a = pa.snapshot;
    auto je = journal_.read(a.organization, a.developer_email, a.name);
    if (!je) co_return true;
    pa.current = plan::action_kind::create_successor;
    // A key that appeared after the entry is the successor: without a marker
    // (the crash prevented it) it gets one; with ours (the marking took effect
    // but its answer was lost) it only needs its audit record.
    for (const auto& c : a.credentials) {
        if (std::find(je->known.begin(), je->known.end(), c.fingerprint) != je->known.end())
            continue;
        if (c.issued_at + 5 * k_minute < je->ts) continue;
        const std::string* mark = find_attribute(c.attributes, k_marker_attribute);
        if (mark != nullptr && *mark != k_pending_prefix + je->replaces && *mark != je->replaces)
            continue;  // someone else's successor
        if (mark == nullptr) {
            auto marked = co_await api_.update_key(
                a.developer_email, a.name, c.consumer_key, {},
                with_marker(c.attributes, k_pending_prefix + je->replaces));
            if (!marked) {
                // Keep the entry and leave the app alone this pass: going on would
                // make a second successor while this one is still unmarked.
                co_return fail(pa, c.fingerprint, je->replaces,
                               "journal recovery: " + marked.err().describe());
            }
        }
        // A crash may have left the record already (via an intent, this pass or
        // an earlier one): never twice.
        if (!journal_checked_audit_) {
            for (auto& e : recently_audited()) audited_.insert(e);
            journal_checked_audit_ = true;
        }
        if (!audited_.count({"created", c.fingerprint}))
            record(pa, "created", c.fingerprint, je->replaces,
                   "recovered from the generate journal");
        break;
    }
    co_await journal_.remove(a.organization, a.developer_email, a.name);
    auto fresh = co_await api_.get_app(a.developer_email, a.name);
    if (!fresh)
        co_return fail(pa, "", je->replaces,
                       "re-read after journal recovery: " + fresh.err().describe());
    adopt(pa, std::move(fresh.value()));
    pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), {});
    co_return true;
}

net::awaitable<bool> executor::complete(planned_app& pa, credential s,
                                        const plan::successor_spec& spec,
                                        const std::string& replaces) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    const std::string fp = s.fingerprint;
    const secret key = s.consumer_key;

    // 1. Products the old key has, added (Apigee sets approved or pending).
    std::vector<std::string> missing;
    for (const auto& p : spec.products)
        if (product_status(s, p.name).empty()) missing.push_back(p.name);
    if (!missing.empty()) {
        // The complete attribute list rides along: an update may replace the
        // attributes with those sent, or wipe them when none are sent.
        auto r = co_await api_.update_key(dev, name, key, missing, s.attributes);
        if (!r) co_return fail(pa, fp, replaces, "add products: " + r.err().describe());
        s.products = r->products;
        if (!keeps_marker(*r))
            co_return fail(pa, fp, replaces,
                           "the lineage marker does not read back after adding products");
        for (const auto& m : missing)
            if (product_status(s, m).empty())
                co_return fail(pa, fp, replaces, "product " + m + " missing after adding it");
    }
    // 2. Each product's status mirrored, never wider (trap 3): a pending the API
    //    cannot set becomes revoked.
    bool changed = false;
    for (const auto& p : spec.products) {
        const std::string actual = product_status(s, p.name);
        bool approve = false, revoke = false;
        if (p.status == "approved" && actual != "approved") approve = true;
        if (p.status == "revoked" && actual != "revoked") revoke = true;
        if (p.status == "pending" && actual == "approved") revoke = true;
        if (p.status != "approved" && p.status != "revoked" && p.status != "pending" &&
            actual == "approved")
            revoke = true;  // an unknown status is never widened
        if (!approve && !revoke) continue;
        auto r = co_await api_.set_key_product_status(dev, name, key, p.name, approve);
        if (!r)
            co_return fail(pa, fp, replaces, "set status of " + p.name + ": " + r.err().describe());
        changed = true;
    }
    if (changed) {
        auto back = co_await api_.get_key(dev, name, key);
        if (!back)
            co_return fail(pa, fp, replaces,
                           "read back product statuses: " + back.err().describe());
        s.products = back->products;
        for (const auto& p : spec.products) {
            const std::string actual = product_status(s, p.name);
            const bool good = p.status == "approved" ? actual == "approved"
                                                     : actual == "revoked" || actual == "pending";
            if (!good)
                co_return fail(
                    pa, fp, replaces,
                    "product " + p.name + " reads back " + actual + ", wanted " + p.status);
        }
    }
    // 3. Scopes.
    if (sorted(s.scopes) != sorted(spec.scopes)) {
        auto r = co_await api_.replace_key_scopes(dev, name, key, spec.scopes, s.attributes);
        if (!r) co_return fail(pa, fp, replaces, "set scopes: " + r.err().describe());
        if (sorted(r->scopes) != sorted(spec.scopes))
            co_return fail(pa, fp, replaces, "scopes do not read back as set");
        if (!keeps_marker(*r))
            co_return fail(pa, fp, replaces,
                           "the lineage marker does not read back after setting scopes");
    }
    // 4. Last, the final marker with the old key's attributes: now it is complete.
    const intent in =
        make_intent(pa, "completed", fp, replaces,
                    "products, statuses, scopes and attributes copied; marker final", false);
    const bool began = co_await begin(pa, in);
    if (!began) co_return false;
    auto r = co_await api_.update_key(dev, name, key, {}, spec.attributes);
    if (!r && maybe_applied(r.err())) r = co_await api_.get_key(dev, name, key);  // took effect?
    if (!r) co_return fail(pa, fp, replaces, "write final marker: " + r.err().describe());
    if (sorted(r->attributes) != sorted(spec.attributes))
        co_return fail(pa, fp, replaces, "attributes do not read back as written");
    keep(pa, std::move(r.value()), key);
    const bool finished = co_await finish(pa, in);
    if (finished && delivery_ && delivery_->wants(pa.snapshot, *pa.policy)) {
        // At the start of the overlap; the revocation gate retries a failure.
        auto d = co_await deliver(pa, fp, replaces);
        delivered(pa, fp, replaces, "overlap", static_cast<bool>(d));
        if (!d) fail(pa, fp, replaces, "deliver: " + d.err().message);
    }
    co_return finished;
}

net::awaitable<bool> executor::revoke(planned_app& pa, const plan::action& act) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    const credential* k = find_key(pa.snapshot, act.key);
    if (k == nullptr) co_return fail(pa, act.key, act.replaces, "key to revoke vanished");
    const secret key = k->consumer_key;
    std::string detail = act.reason;
    if (act.replaces.empty()) {
        // An old key: its successor must be valid at this moment, not just at inventory time.
        std::string succ_fp;
        for (const auto& v : pa.plan.keys)
            if (v.fingerprint == act.key) succ_fp = v.successor;
        const credential* s = find_key(pa.snapshot, succ_fp);
        if (s == nullptr) co_return fail(pa, act.key, "", "no successor to check before revoking");
        auto now_s = co_await api_.get_key(dev, name, s->consumer_key);
        if (!now_s) co_return fail(pa, act.key, "", "check successor: " + now_s.err().describe());
        if (!plan::key_valid(now_s.value(), clock_()))
            co_return fail(pa, act.key, "",
                           "successor " + succ_fp + " is not valid now; not revoked");
        // The gate: every target holds the successor, verified, before the old key goes.
        if (delivery_ && delivery_->wants(pa.snapshot, *pa.policy)) {
            auto d = co_await deliver(pa, succ_fp, act.key, &now_s.value());
            delivered(pa, succ_fp, act.key, "gate", static_cast<bool>(d));
            if (!d) {
                ++pa.revocations_held;
                pa.held_expiry = earliest(pa.held_expiry, k->expires_at);
            }
            if (!d)
                co_return fail(pa, act.key, "",
                               "revocation held: successor " + succ_fp +
                                   " is not delivered: " + d.err().message);
            detail += "; successor " + succ_fp + " delivered and verified";
        }
    }
    const intent in = make_intent(pa, "revoked", act.key, act.replaces, detail, false);
    const bool began = co_await begin(pa, in);
    if (!began) co_return false;
    auto r = co_await api_.set_key_status(dev, name, key, false);
    if (!r && !maybe_applied(r.err()))
        co_return fail(pa, act.key, act.replaces, "revoke: " + r.err().describe());
    auto back = co_await api_.get_key(dev, name, key);  // 204: read back
    if (!back || back->status != "revoked")
        co_return fail(
            pa, act.key, act.replaces,
            r ? "revoked key does not read back as revoked" : "revoke: " + r.err().describe());
    keep(pa, std::move(back.value()), key);
    const bool finished = co_await finish(pa, in);
    if (finished && act.replaces.empty() && delivery_ &&
        delivery_->wants(pa.snapshot, *pa.policy)) {
        std::string succ_fp;
        for (const auto& v : pa.plan.keys)
            if (v.fingerprint == act.key) succ_fp = v.successor;
        if (const credential* s = find_key(pa.snapshot, succ_fp)) {
            delivered_key cur{s->fingerprint, s->consumer_key, s->consumer_secret, s->expires_at};
            auto d = co_await delivery_->revoked(pa.snapshot, *pa.policy, cur);
            delivered(pa, succ_fp, act.key, "drop", static_cast<bool>(d));
            if (d) dropped_.insert(succ_fp);
            if (!d)
                fail(pa, succ_fp, act.key, "deliver (drop the revoked key): " + d.err().message);
        }
    }
    co_return finished;
}

net::awaitable<result<void>> executor::deliver(planned_app& pa, const std::string& fp,
                                               const std::string& replaces,
                                               const credential* fresh) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    error e;
    e.what = error::kind::internal;
    const credential* s = find_key(pa.snapshot, fp);
    if (s == nullptr) {
        e.message = "successor " + fp + " not found";
        co_return e;
    }
    // The secret is not kept between calls: read both keys as Apigee has them.
    result<credential> cur = fresh ? result<credential>(*fresh) : error{};
    if (!fresh) cur = co_await api_.get_key(dev, name, s->consumer_key);
    if (!cur) {
        e.message = "read successor: " + cur.err().describe();
        co_return e;
    }
    delivered_key current{fp, s->consumer_key, cur->consumer_secret, cur->expires_at};
    std::optional<delivered_key> previous;
    if (const credential* o = replaces.empty() ? nullptr : find_key(pa.snapshot, replaces);
        o != nullptr && o->status == "approved") {
        auto old = co_await api_.get_key(dev, name, o->consumer_key);
        if (!old) {
            e.message = "read the key it replaces: " + old.err().describe();
            co_return e;
        }
        previous = delivered_key{replaces, o->consumer_key, old->consumer_secret, old->expires_at};
    }
    auto d = co_await delivery_->deliver(pa.snapshot, *pa.policy, current,
                                         previous ? &*previous : nullptr);
    co_return d;
}

net::awaitable<bool> executor::remove(planned_app& pa, const plan::action& act) {
    const std::string& dev = pa.snapshot.developer_email;
    const std::string& name = pa.snapshot.name;
    const credential* k = find_key(pa.snapshot, act.key);
    if (k == nullptr) co_return true;  // already gone
    const secret key = k->consumer_key;
    const intent in = make_intent(pa, "deleted", act.key, "", act.reason, false);
    const bool began = co_await begin(pa, in);
    if (!began) co_return false;
    auto r = co_await api_.delete_key(dev, name, key);
    if (!r && !r.err().is_status(404)) {
        if (!maybe_applied(r.err()))
            co_return fail(pa, act.key, "", "delete: " + r.err().describe());
    }
    auto back = co_await api_.get_key(dev, name, key);
    if (back || !back.err().is_status(404))
        co_return fail(pa, act.key, "", "deleted key still reads back");
    std::erase_if(pa.snapshot.credentials,
                  [&](const credential& c) { return c.fingerprint == act.key; });
    const bool finished = co_await finish(pa, in);
    co_return finished;
}

// A key as Apigee answered it after a verified write replaces our copy (or
// joins the snapshot), so the next plan needs no re-read of the app.
void executor::keep(planned_app& pa, credential c, const secret& key) {
    c.consumer_key = key;
    c.fingerprint = fingerprint(key);
    c.consumer_secret.clear();  // not needed for planning
    for (auto& k : pa.snapshot.credentials) {
        if (k.fingerprint == c.fingerprint) {
            k = std::move(c);
            return;
        }
    }
    pa.snapshot.credentials.push_back(std::move(c));
}

intent executor::make_intent(const planned_app& pa, std::string action, const std::string& key,
                             const std::string& replaces, std::string detail, bool late) const {
    intent i;
    i.organization = pa.snapshot.organization;
    i.developer = pa.snapshot.developer_email;
    i.app = pa.snapshot.name;
    i.policy = pa.policy ? pa.policy->name : "";
    i.action = std::move(action);
    i.key = key;
    i.replaces = replaces;
    i.detail = std::move(detail);
    i.late = late;
    i.ts = clock_();
    return i;
}

net::awaitable<bool> executor::begin(const planned_app& pa, const intent& i) {
    // (Plain statements around each co_await: GCC 12 miscompiles a co_await in
    // an if condition followed by co_return here; the resumed frame traps.)
    const bool written = co_await intents_.write(i);
    if (!written)
        fail(pa, i.key, i.replaces,
             "cannot write the audit intent (" + store_.describe() + "); not writing");
    co_return written;
}

net::awaitable<bool> executor::finish(const planned_app& pa, const intent& i) {
    const bool durable = record(pa, i.action, i.key, i.replaces, i.detail, false, i.late);
    if (durable) co_await intents_.remove(i);
    co_return durable;
}

// Intents left by a crash: the action is audited if Apigee shows it took effect.
// A key the listing does not show (revoked keys are listed only when needed)
// is read by itself: absent from a listing is not the same as deleted.
net::awaitable<void> executor::recover_intents(planned_app& pa) {
    auto it = pending_intents_.find(pa.snapshot.developer_email + "\n" + pa.snapshot.name);
    if (it == pending_intents_.end()) co_return;
    std::vector<intent> todo = std::move(it->second);
    pending_intents_.erase(it);
    for (const intent& i : todo) {
        const credential* k = find_key(pa.snapshot, i.key);
        credential fetched;
        if (k == nullptr && !i.key.empty()) {
            // Only a fingerprint is kept: the key itself is found among the app's.
            auto fresh = co_await api_.get_app(pa.snapshot.developer_email, pa.snapshot.name);
            if (!fresh) continue;  // keep the intent; the next pass tries again
            for (auto& c : fresh->credentials)
                if (c.fingerprint == i.key) fetched = std::move(c), k = &fetched;
        }
        const std::string* mark = k ? find_attribute(k->attributes, k_marker_attribute) : nullptr;
        bool happened = false;
        if (i.action == "created") happened = k != nullptr;
        if (i.action == "completed") happened = mark != nullptr && *mark == i.replaces;
        if (i.action == "revoked") happened = k != nullptr && k->status == "revoked";
        if (i.action == "deleted") happened = k == nullptr;
        // The record may be in the audit log already (a crash after writing it,
        // before the intent was removed): never twice.
        if (happened && !audited_.count({i.action, i.key})) {
            if (!record(pa, i.action, i.key, i.replaces, i.detail + " (recorded after a restart)",
                        false, i.late))
                continue;  // keep the intent; the audit log is not writable
            audited_.emplace(i.action, i.key);
        }
        co_await intents_.remove(i);
    }
}

// (action, key) of the audit log's last records: those an intent may already
// have produced. Intents are short-lived, so the tail is enough.
std::set<std::pair<std::string, std::string>> executor::recently_audited() const {
    std::set<std::pair<std::string, std::string>> out;
    std::ifstream in(state_dir_ / "audit.jsonl", std::ios::binary);
    if (!in) return out;
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    const std::streamoff tail = 8 << 20;
    in.seekg(size > tail ? size - tail : 0);
    std::string line;
    if (size > tail) std::getline(in, line);  // a partial first line
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object() || j.value("dryRun", false)) continue;
        out.emplace(j.value("action", ""), j.value("key", ""));
    }
    return out;
}

bool executor::record(const planned_app& pa, std::string action, const std::string& key,
                      const std::string& replaces, std::string detail, bool dry_run, bool late) {
    action_record r;
    r.ts = clock_();
    r.organization = pa.snapshot.organization;
    r.developer = pa.snapshot.developer_email;
    r.app = pa.snapshot.name;
    r.policy = pa.policy ? pa.policy->name : "";
    r.action = std::move(action);
    r.kind = pa.current;
    r.key = key;
    r.replaces = replaces;
    r.dry_run = dry_run;
    r.late = late;
    r.detail = std::move(detail);
    r.developer_status = pa.snapshot.developer_status;
    // Times of the keys named, as this pass knows them (not in the audit line).
    if (const credential* k = key.empty() ? nullptr : find_key(pa.snapshot, key)) {
        r.key_issued_at = k->issued_at;
        r.key_expires_at = k->expires_at;
    }
    if (const credential* o = replaces.empty() ? nullptr : find_key(pa.snapshot, replaces))
        r.replaces_expires_at = o->expires_at;
    return obs_.on_action(r);
}

void executor::delivered(const planned_app& pa, const std::string& key, const std::string& replaces,
                         const char* stage, bool ok) {
    delivery_record r;
    r.organization = pa.snapshot.organization;
    r.developer = pa.snapshot.developer_email;
    r.app = pa.snapshot.name;
    r.policy = pa.policy->name;
    r.key = key;
    r.replaces = replaces;
    r.stage = stage;
    r.ok = ok;
    try {
        obs_.on_delivery(r);
    } catch (...) {  // an observer never turns a delivery into an exception
    }
}

bool executor::fail(const planned_app& pa, const std::string& key, const std::string& replaces,
                    std::string detail) {
    record(pa, "failed", key, replaces, std::move(detail));
    return false;
}

}  // namespace keyrot::exec
