#include "plan/forecast.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "plan/steps.hpp"

namespace keyrot::plan {
namespace {

credential* find_key(app& a, const std::string& fp) {
    for (auto& c : a.credentials)
        if (c.fingerprint == fp) return &c;
    return nullptr;
}

void set_marker(credential& c, const std::string& value) {
    for (auto& at : c.attributes) {
        if (at.name == k_marker_attribute) {
            at.value = value;
            return;
        }
    }
    c.attributes.push_back({k_marker_attribute, value});
}

forecast_kind kind_of(action_kind k) {
    switch (k) {
        case action_kind::create_successor:
            return forecast_kind::rotate;
        case action_kind::complete_successor:
            return forecast_kind::complete;
        case action_kind::revoke_key:
            return forecast_kind::revoke;
        case action_kind::delete_key:
            return forecast_kind::remove;
        case action_kind::report:
            break;
    }
    return forecast_kind::report;
}

// Completing a successor: the planner's own completion steps
// (next_completion_step, as executor::complete() runs them), on the successor
// as its making leaves it: the pending marker, and with `generated` the
// products and scopes the app gave it, else none. The forecast cannot tell
// auto from manual approval (a pass does not read products): an added product
// comes out pending when every product of the old key is approved (each then
// needs approving, and one read back), else approved.
int completion_calls(const successor_spec& spec, bool generated) {
    const bool all_approved =
        std::all_of(spec.products.begin(), spec.products.end(),
                    [](const product_grant& p) { return p.status == approval::approved; });
    const approval added = all_approved ? approval::pending : approval::approved;
    credential s;
    s.status = approval::approved;
    s.attributes = with_marker(spec.attributes, std::string(k_pending_prefix) + "old");
    if (generated) {
        for (const auto& p : spec.products) s.products.push_back({p.name, added});
        s.scopes = spec.scopes;
    }
    status_phase statuses = status_phase::open;
    int n = 0;
    // Bounded as executor::complete() is: it gives up where this stops.
    for (std::size_t i = 0; i <= 2 * spec.products.size() + 6; ++i) {
        const std::optional<step> st = next_completion_step(s, spec, statuses);
        if (!st) break;
        ++n;
        if (st->kind == step_kind::set_product_status) statuses = status_phase::unverified;
        if (st->kind == step_kind::verify_statuses) statuses = status_phase::verified;
        s = expected_after(std::move(s), *st, added);
    }
    return n;
}

struct simulation {
    const policy::policy* policy;
    app sim;
    sys_ms now;
    sys_ms until;
    bool edge;
    std::map<std::string, sys_ms> revoked_at;  // fingerprint -> when revoked (or deleted)
    std::set<std::pair<std::string, std::string>> reported;  // (key, reason)
    // Simulated successor -> (the real key it descends from, generation).
    std::map<std::string, std::pair<std::string, int>> lineage;
    std::vector<forecast_item> out;

    void emit(forecast_item it) {
        if (it.at > now && it.at <= until) out.push_back(std::move(it));
    }

    // Applies one planned action at `t` as a pass would. True when it changed the app.
    bool apply(const action& act, sys_ms t) {
        forecast_item it;
        it.at = t;
        if (policy != nullptr)
            it.apigee_calls =
                apigee_calls(kind_of(act.kind), act.spec, policy->rotation.method, edge);
        it.reason = act.reason;
        it.key = act.key;
        it.replaces = act.replaces;
        switch (act.kind) {
            case action_kind::create_successor: {
                // The pass creates and completes the successor in one go.
                credential s;
                // A successor of a successor not made yet either: "(successor 2 of FP)".
                auto [base, gen] =
                    lineage.count(act.key) ? lineage.at(act.key) : std::pair{act.key, 0};
                ++gen;
                s.fingerprint = gen == 1
                                    ? "(successor of " + base + ")"
                                    : "(successor " + std::to_string(gen) + " of " + base + ")";
                lineage[s.fingerprint] = {base, gen};
                s.status = approval::approved;
                s.issued_at = t;
                s.expires_at = act.expires_at;
                s.attributes = act.spec.attributes;
                s.scopes = act.spec.scopes;
                s.products = act.spec.products;
                it.kind = forecast_kind::rotate;
                it.expires_at = act.expires_at;
                emit(std::move(it));
                sim.credentials.push_back(std::move(s));
                return true;
            }
            case action_kind::complete_successor: {
                credential* s = find_key(sim, act.key);
                if (s == nullptr) return false;
                s->products = act.spec.products;
                s->scopes = act.spec.scopes;
                set_marker(*s, act.replaces);
                it.kind = forecast_kind::complete;
                emit(std::move(it));
                return true;
            }
            case action_kind::revoke_key: {
                credential* k = find_key(sim, act.key);
                if (k == nullptr || k->status != approval::approved) return false;
                k->status = approval::revoked;
                revoked_at.emplace(act.key, t);
                it.kind = forecast_kind::revoke;
                emit(std::move(it));
                return true;
            }
            case action_kind::delete_key: {
                auto& cs = sim.credentials;
                const auto before = cs.size();
                cs.erase(
                    std::remove_if(cs.begin(), cs.end(),
                                   [&](const credential& c) { return c.fingerprint == act.key; }),
                    cs.end());
                if (cs.size() == before) return false;
                revoked_at.emplace(act.key, t);
                it.kind = forecast_kind::remove;
                emit(std::move(it));
                return true;
            }
            case action_kind::report:
                if (reported.emplace(act.key, act.reason).second && t > now) {
                    it.kind = forecast_kind::report;
                    emit(std::move(it));
                }
                return false;
        }
        return false;
    }
};

int order(forecast_kind k) { return static_cast<int>(k); }

}  // namespace

int apigee_calls(forecast_kind kind, const successor_spec& spec, policy::rotation_method method,
                 bool edge) {
    switch (kind) {
        case forecast_kind::rotate:
            if (method == policy::rotation_method::generate)
                // Read the app, generate (products and scopes ride along), mark
                // the new key pending, complete, re-read the rewritten app.
                return 3 + completion_calls(spec, true) + 1;
            if (edge)  // create, mark (keys/create takes no attributes), complete
                return 2 + completion_calls(spec, false);
            return 1 + completion_calls(spec, false);  // create, complete
        case forecast_kind::complete:
            return completion_calls(spec, false);
        case forecast_kind::revoke:  // the write (the successor as listed; no read back after 204)
        case forecast_kind::remove:  // the DELETE (a lost answer alone is read back)
            return 1;
        case forecast_kind::expire:
        case forecast_kind::report:
            return 0;
    }
    return 0;
}

int pass_calls(long apps, long developers, int page_size, bool revoked) {
    const long size = std::max(page_size, 1);
    auto pages = [size](long n) { return static_cast<int>(std::max(1L, (n + size - 1) / size)); };
    return pages(developers) + pages(apps) * (revoked ? 2 : 1);
}

const char* to_string(forecast_kind k) {
    switch (k) {
        case forecast_kind::rotate:
            return "create";
        case forecast_kind::complete:
            return "complete";
        case forecast_kind::revoke:
            return "revoke";
        case forecast_kind::remove:
            return "delete";
        case forecast_kind::expire:
            return "expire";
        case forecast_kind::report:
            return "report";
    }
    return "?";
}

std::vector<forecast_item> forecast_app(const app& a, const policy::policy* p, sys_ms now,
                                        sys_ms until, bool edge, int max_steps) {
    simulation s{p, a, now, until, edge, {}, {}, {}, {}};
    std::string skipped;  // why the app is left alone, if it is
    if (p != nullptr) {
        time_or_never t = now;
        for (int step = 0; step < max_steps && t <= until; ++step) {
            const app_plan ap = plan_app(s.sim, *p, t.at());
            if (ap.skipped) {
                skipped = ap.skip_reason;
                break;
            }
            bool changed = false;
            for (const auto& act : ap.actions) changed = s.apply(act, t.at()) || changed;
            // After a write, plan again at the same moment: one action may make
            // the next one due (a pass does the same).
            if (!changed) t = ap.next_wake;
        }
    }
    // Keys that stop working by expiring, not revoked or deleted first.
    std::vector<credential> all = a.credentials;
    for (const auto& c : s.sim.credentials)
        if (std::none_of(all.begin(), all.end(),
                         [&](const credential& o) { return o.fingerprint == c.fingerprint; }))
            all.push_back(c);
    for (const auto& c : all) {
        if (c.status != approval::approved && !s.revoked_at.count(c.fingerprint)) continue;
        if (c.expires_at <= now || c.expires_at > until) continue;  // never is later than until
        if (auto r = s.revoked_at.find(c.fingerprint);
            r != s.revoked_at.end() && r->second <= c.expires_at)
            continue;
        forecast_item it;
        it.at = c.expires_at.at();
        it.kind = forecast_kind::expire;
        it.key = c.fingerprint;
        it.expires_at = c.expires_at;
        if (p == nullptr)
            it.reason = "expires; no policy rotates this key";
        else if (!skipped.empty())
            it.reason = "expires; not rotated: " + skipped;
        else
            it.reason = "expires";
        s.out.push_back(std::move(it));
    }
    std::stable_sort(s.out.begin(), s.out.end(),
                     [](const forecast_item& x, const forecast_item& y) {
                         if (x.at != y.at) return x.at < y.at;
                         return order(x.kind) < order(y.kind);
                     });
    return std::move(s.out);
}

}  // namespace keyrot::plan
