// The executor's retiring part: revocation (behind the delivery gate),
// deletion, and delivery to the targets (docs/delivery.md).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apigee/api.hpp"
#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "exec/inventory.hpp"
#include "exec/keygen.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

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
                return o.fingerprint == k.replaces && plan::key_works(o.state);
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
        // The listing's secret, or (kept without one) as Apigee has it now.
        result<credential> cur = *s;
        const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
        if (cur->consumer_secret.empty())
            cur = co_await api_.get_key(owner, pa.snapshot.name, s->consumer_key);
        if (!cur) co_return;  // the next pass tries again
        const delivered_key dk{k.fingerprint, s->consumer_key, cur->consumer_secret,
                               cur->expires_at};
        auto d = co_await delivery_->revoked(pa.snapshot, *pa.policy, dk);
        delivered(pa, k.fingerprint, k.replaces, "drop", static_cast<bool>(d));
        if (d) dropped_.insert(k.fingerprint);
    }
}

net::awaitable<bool> executor::revoke(planned_app& pa, const plan::action& act) {
    const apigee::app_owner dev = apigee::app_owner::of(pa.snapshot);
    const std::string& name = pa.snapshot.name;
    const credential* k = find_key(pa.snapshot, act.key);
    if (k == nullptr) co_return fail(pa, act.key, act.replaces, "key to revoke vanished");
    const secret key = k->consumer_key;
    std::string detail = act.reason;
    const plan::step st = plan::retire_step(act);
    std::optional<credential> successor;  // as Apigee answered the check below
    if (act.replaces.empty()) {
        // An old key: its successor must be valid at this moment, not just at inventory time.
        std::string succ_fp;
        for (const auto& v : pa.plan.keys)
            if (v.fingerprint == act.key) succ_fp = v.successor;
        const credential* s = find_key(pa.snapshot, succ_fp);
        if (s == nullptr) co_return fail(pa, act.key, "", "no successor to check before revoking");
        // From the snapshot when it was read moments ago; otherwise as Apigee has it now.
        result<credential> now_s = *s;
        if (clock_() - pa.read_at > k_fresh_snapshot)
            now_s = co_await api_.get_key(dev, name, s->consumer_key);
        if (!now_s) co_return fail(pa, act.key, "", "check successor: " + now_s.err().describe());
        if (auto wrong = plan::check_revocable(now_s.value(), succ_fp, *k, clock_()))
            co_return fail(pa, act.key, "", *wrong);
        successor = now_s.value();
        // The gate: every target holds the successor, verified, before the old key goes.
        if (st.delivery_gate && delivery_ && delivery_->wants(pa.snapshot, *pa.policy)) {
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
    const std::optional<intent> in = step_intent(pa, st, act.key, act.replaces, detail, false);
    if (in) {
        const bool began = co_await begin(pa, *in);
        if (!began) co_return false;
    }
    auto r = co_await api_.set_key_status(dev, name, key, false);
    if (!r && !maybe_applied(r.err()))
        co_return fail(pa, act.key, act.replaces, "revoke: " + r.err().describe());
    if (r) {
        // 204: revoked. The answer has no body; the snapshot says so itself.
        keep(pa, plan::expected_after(*k, st, approval::unknown), key);
    } else {
        // The answer was lost: only reading the key back tells.
        auto back = co_await api_.get_key(dev, name, key);
        if (!back || plan::check_after(st, back.value()))
            co_return fail(pa, act.key, act.replaces, "revoke: " + r.err().describe());
        keep(pa, std::move(back.value()), key);
    }
    bool finished = true;
    if (in) finished = co_await finish(pa, *in);
    if (finished && st.delivery_gate && delivery_ && delivery_->wants(pa.snapshot, *pa.policy)) {
        std::string succ_fp;
        for (const auto& v : pa.plan.keys)
            if (v.fingerprint == act.key) succ_fp = v.successor;
        if (const credential* s = find_key(pa.snapshot, succ_fp); s != nullptr && successor) {
            delivered_key cur{s->fingerprint, s->consumer_key, successor->consumer_secret,
                              successor->expires_at};
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
    const apigee::app_owner dev = apigee::app_owner::of(pa.snapshot);
    const std::string& name = pa.snapshot.name;
    error e;
    e.what = error::kind::internal;
    const credential* s = find_key(pa.snapshot, fp);
    if (s == nullptr) {
        e.message = "successor " + fp + " not found";
        co_return e;
    }
    // Secrets as Apigee has them: from this pass's listing or a write's answer
    // (kept for apps that deliver: keep()); a GET key only when missing.
    result<credential> cur = fresh ? result<credential>(*fresh) : result<credential>(*s);
    if (cur->consumer_secret.empty()) cur = co_await api_.get_key(dev, name, s->consumer_key);
    if (!cur) {
        e.message = "read successor: " + cur.err().describe();
        co_return e;
    }
    delivered_key current{fp, s->consumer_key, cur->consumer_secret, cur->expires_at};
    std::optional<delivered_key> previous;
    if (const credential* o = replaces.empty() ? nullptr : find_key(pa.snapshot, replaces);
        o != nullptr && o->status == approval::approved) {
        result<credential> old = *o;
        if (old->consumer_secret.empty()) old = co_await api_.get_key(dev, name, o->consumer_key);
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
    const apigee::app_owner dev = apigee::app_owner::of(pa.snapshot);
    const std::string& name = pa.snapshot.name;
    const credential* k = find_key(pa.snapshot, act.key);
    if (k == nullptr) co_return true;  // already gone
    const secret key = k->consumer_key;
    const plan::step st = plan::retire_step(act);
    const std::optional<intent> in = step_intent(pa, st, act.key, "", act.reason, false);
    if (in) {
        const bool began = co_await begin(pa, *in);
        if (!began) co_return false;
    }
    auto r = co_await api_.delete_key(dev, name, key);
    if (!r && !r.err().is_status(404)) {
        if (!maybe_applied(r.err()))
            co_return fail(pa, act.key, "", "delete: " + r.err().describe());
        // The answer was lost: only reading the key back tells (404: it is gone).
        auto back = co_await api_.get_key(dev, name, key);
        if (back) {
            const std::string wrong = plan::check_after(st, back.value()).value_or("");
            co_return fail(pa, act.key, "", "delete: " + r.err().describe() + "; " + wrong);
        }
        if (!back.err().is_status(404))
            co_return fail(pa, act.key, "", "delete: " + r.err().describe());
    }
    std::erase_if(pa.snapshot.credentials,
                  [&](const credential& c) { return c.fingerprint == act.key; });
    bool finished = true;
    if (in) finished = co_await finish(pa, *in);
    co_return finished;
}

}  // namespace keyrot::exec
