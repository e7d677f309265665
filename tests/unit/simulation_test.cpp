// Three simulated years of an in-memory Apigee driven by the planner (keys
// imported or generated, on Apigee X or Edge), with
// random lifetimes, overlaps, crashes half-way through a rotation, races that
// make duplicate successors, and people who revoke successors and add keys.
// After every step the invariants of docs/rotation.md must hold.
//
// The planner never writes app attributes or the callback URL; that the
// executor leaves them as they were is checked against the emulator after
// every crash window by crash_window_test.cpp, and that it restores them when
// "generate key" wipes them by rotation_test.py (the generateWipesApp fault).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "plan/planner.hpp"
#include "plan/steps.hpp"
#include "plan_fixtures.hpp"

namespace simulation_test {

using namespace keyrot;

namespace {

struct sim_app {
    app a;
    policy::policy p;
    bool edge = false;  // Apigee Edge: an import there is a bare create, then the marker
    bool human_revoked_successor = false;               // a person took access away on purpose
    int creates = 0;                                    // successors made for this app
    std::set<std::string> successor_revoked_by_person;  // old keys whose successor a person revoked
};

class simulation {
  public:
    explicit simulation(unsigned seed) : rng_(seed) {}

    int next_id() { return ++id_; }

    credential new_key(sys_ms now, time_or_never expires) {
        credential c;
        c.fingerprint = fp(next_id());
        c.consumer_key = secret("ck" + c.fingerprint);
        c.status = approval::approved;
        c.issued_at = now;
        c.expires_at = expires;
        return c;
    }

    static std::string fp(int id) {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016x", static_cast<unsigned>(id) * 2654435761u);
        return buf;
    }

    std::int64_t rand_span(std::int64_t lo, std::int64_t hi) {
        return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
    }
    milliseconds rand_span(milliseconds lo, milliseconds hi) {
        return milliseconds(rand_span(lo.count(), hi.count()));
    }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

    // Applies one action the way the executor does, possibly "crashing" part-way.
    void apply(sim_app& s, const plan::action& act, sys_ms now) {
        auto find = [&](const std::string& f) -> credential* {
            for (auto& c : s.a.credentials)
                if (c.fingerprint == f) return &c;
            return nullptr;
        };
        switch (act.kind) {
            case plan::action_kind::create_successor: {
                credential* old = find(act.key);
                ASSERT_NE(old, nullptr);
                // A successor someone revoked does not count: the old key, still
                // valid, gets a new one (docs/rotation.md); it grants nothing the old key
                // does not (checked in check_invariants).
                if (s.successor_revoked_by_person.erase(act.key)) ++recreated_;
                // Read before the loop: push_back below may move the credentials.
                const time_or_never old_expires = old->expires_at;
                EXPECT_TRUE(act.expires_at.is_never() || old_expires.is_never() ||
                            act.expires_at > old_expires)
                    << "successor must outlive the old key";
                const int copies = chance(0.03) ? 2 : 1;  // a race between two daemons
                for (int i = 0; i < copies; ++i) {
                    credential c = make(new_key(now, act.expires_at), act, s);
                    complete(c, act.spec, 0.03);  // a crash part-way leaves it for the next pass
                    s.a.credentials.push_back(std::move(c));
                    ++creates_;
                    ++s.creates;
                }
                break;
            }
            case plan::action_kind::complete_successor: {
                credential* c = find(act.key);
                ASSERT_NE(c, nullptr);
                ++resumed_;
                complete(*c, act.spec, 0.03);
                break;
            }
            case plan::action_kind::revoke_key: {
                credential* k = find(act.key);
                ASSERT_NE(k, nullptr);
                if (act.replaces.empty()) check_revocation_allowed(s, *k, now);
                const plan::step st = plan::retire_step(act);
                *k = plan::expected_after(std::move(*k), st, approval::unknown);
                const auto wrong = plan::check_after(st, *k);
                EXPECT_FALSE(wrong) << wrong.value_or("");
                break;
            }
            case plan::action_kind::delete_key: {
                auto& v = s.a.credentials;
                v.erase(
                    std::remove_if(v.begin(), v.end(),
                                   [&](const credential& c) { return c.fingerprint == act.key; }),
                    v.end());
                break;
            }
            case plan::action_kind::report:
                break;
        }
    }

    // Makes successor `c` by the planner's making steps (plan/steps.hpp) for
    // the app's method and flavor, as the executor does: an import on Apigee
    // X is one create; a generate (products and scopes given, each product's
    // status Apigee's choice) or an Edge import (a bare key) is then marked
    // pending with the key's own attributes. (A crash between the two is the
    // journal's, which crash_window_test covers.)
    credential make(credential c, const plan::action& act, const sim_app& s) {
        const auto steps = plan::making_steps(act, s.p.rotation.method, s.edge);
        EXPECT_EQ(steps.size(),
                  s.p.rotation.method == policy::rotation_method::import_key && !s.edge ? 1u : 2u);
        for (plan::step st : steps) {
            if (st.kind == plan::step_kind::mark_pending) st = plan::marking(c, act.key);
            c = plan::expected_after(std::move(c), st,
                                     chance(0.3) ? approval::pending : approval::approved);
            const auto wrong = plan::check_after(st, c);
            EXPECT_FALSE(wrong) << plan::to_string(st.kind) << ": " << wrong.value_or("");
        }
        return c;
    }

    // Completes `c` by the planner's steps (plan/steps.hpp), as the executor
    // does; this Apigee answers each step as asked, an added product coming
    // out approved (auto-approval) or pending (manual). Each step may crash
    // with probability `crash`, leaving the key as it is for the next pass.
    void complete(credential& c, const plan::successor_spec& spec, double crash) {
        plan::status_phase statuses = plan::status_phase::open;
        for (int n = 0; n < 64; ++n) {
            const auto st = plan::next_completion_step(c, spec, statuses);
            if (!st) return;
            if (st->kind == plan::step_kind::final_marker) {  // as the executor checks
                const auto wrong = plan::check_before_final(c, spec);
                EXPECT_FALSE(wrong) << "before the final marker: " << wrong.value_or("");
                if (wrong) return;
            }
            if (chance(crash)) {
                ++crashes_;
                return;
            }
            ++steps_;
            c = plan::expected_after(std::move(c), *st,
                                     chance(0.3) ? approval::pending : approval::approved);
            if (st->kind == plan::step_kind::set_product_status)
                statuses = plan::status_phase::unverified;
            if (st->kind == plan::step_kind::verify_statuses)
                statuses = plan::status_phase::verified;
            const auto wrong = plan::check_after(*st, c, spec);
            EXPECT_FALSE(wrong) << plan::to_string(st->kind) << ": " << wrong.value_or("");
        }
        ADD_FAILURE() << "completion did not converge in 64 steps";
    }

    void check_revocation_allowed(const sim_app& s, const credential& old, sys_ms now) {
        // A revoked old key had a complete, valid successor whose overlap is over.
        const credential* succ = nullptr;
        for (const auto& c : s.a.credentials) {
            const std::string* m = find_attribute(c.attributes, k_marker_attribute);
            if (m && *m == old.fingerprint && plan::key_valid(c, now)) succ = &c;
        }
        ASSERT_NE(succ, nullptr) << "revoked " << old.fingerprint << " with no valid successor";
        const time_or_never due = earliest(succ->issued_at + s.p.rotation.overlap, old.expires_at);
        EXPECT_GE(now, due.at()) << "revoked early";
        for (const auto& p : old.products) {
            if (p.status != approval::approved) continue;
            bool ok = false;
            for (const auto& q : succ->products)
                ok |= q.name == p.name && q.status == approval::approved;
            EXPECT_TRUE(ok) << "revoked while the successor lacked " << p.name;
        }
    }

    void check_invariants(const sim_app& s, sys_ms now) {
        bool valid = false;
        for (const auto& c : s.a.credentials) valid |= plan::key_valid(c, now);
        // Even when a person revokes a successor: the old key then gets a new one.
        EXPECT_TRUE(valid) << "app " << s.a.name << " without a valid key at " << as_millis(now);
        // At most one approved, unexpired successor per key.
        std::map<std::string, int> live;
        for (const auto& c : s.a.credentials) {
            const std::string* m = find_attribute(c.attributes, k_marker_attribute);
            if (!m || !plan::key_valid(c, now)) continue;
            std::string parent = *m;
            if (parent.rfind("pending:", 0) == 0) parent = parent.substr(8);
            ++live[parent];
        }
        for (const auto& [parent, n] : live) {
            EXPECT_LE(n, 1) << "duplicate successors of " << parent << " in " << s.a.name;
        }
        // Complete successors carry the old key's own attributes and products.
        for (const auto& c : s.a.credentials) {
            const std::string* m = find_attribute(c.attributes, k_marker_attribute);
            if (!m || m->rfind("pending:", 0) == 0) continue;
            for (const auto& old : s.a.credentials) {
                if (old.fingerprint != *m) continue;
                for (const auto& attr : old.attributes) {
                    if (attr.name == k_marker_attribute) continue;
                    const std::string* copied = find_attribute(c.attributes, attr.name);
                    EXPECT_TRUE(copied != nullptr && *copied == attr.value)
                        << (copied ? "changed" : "lost") << " attribute " << attr.name;
                }
                for (const auto& p : old.products) {
                    bool has = false;
                    for (const auto& q : c.products) has |= q.name == p.name;
                    EXPECT_TRUE(has) << "lost product " << p.name;
                }
                // Never wider: approved on the successor only where approved on the old key.
                for (const auto& q : c.products) {
                    if (q.status != approval::approved) continue;
                    bool was = false;
                    for (const auto& p : old.products)
                        was |= p.name == q.name && p.status == approval::approved;
                    EXPECT_TRUE(was) << "successor widened " << q.name;
                }
            }
        }
    }

    void human(sim_app& s, sys_ms now) {
        if (chance(0.001)) {  // adds a key by hand
            credential c = new_key(now, now + rand_span(30, 200) * k_day);
            c.products = {{"payments", approval::approved}};
            s.a.credentials.push_back(std::move(c));
        }
        if (chance(0.01)) {  // revokes a successor while its old key still works
            for (auto& c : s.a.credentials) {
                const std::string* m = find_attribute(c.attributes, k_marker_attribute);
                if (!m || c.status != approval::approved) continue;
                const std::string parent = m->rfind("pending:", 0) == 0 ? m->substr(8) : *m;
                bool parent_valid = false;
                for (const auto& o : s.a.credentials)
                    parent_valid |= o.fingerprint == parent && plan::key_valid(o, now);
                if (parent_valid) {
                    c.status = approval::revoked;
                    s.successor_revoked_by_person.insert(m->rfind("pending:", 0) == 0 ? m->substr(8)
                                                                                      : *m);
                    s.human_revoked_successor = true;
                    break;
                }
            }
        }
    }

    int creates_ = 0;
    int steps_ = 0;      // completion steps taken
    int crashes_ = 0;    // completions that stopped part-way
    int resumed_ = 0;    // completions a later pass took up again
    int recreated_ = 0;  // new successors for keys whose successor a person revoked

  private:
    std::mt19937_64 rng_;
    int id_ = 0;
};

TEST(Simulation, ThreeYearsOfRotationKeepInvariants) {
    // Three worlds of three years; KEYROT_SIM_SEEDS=1 runs the first world only
    // and KEYROT_SIM_DAYS=N (365 to 1095) lives N days in each (tests/run.sh runs
    // one world of a year under ASan+UBSan: at -O0 the later years, with their
    // many revoked keys, take most of a minute; the release run has it all).
    unsigned worlds = 3;
    if (const char* n = std::getenv("KEYROT_SIM_SEEDS"); n != nullptr && *n >= '1' && *n <= '3')
        worlds = static_cast<unsigned>(*n - '0');
    std::int64_t days = 3 * 365;
    if (const char* d = std::getenv("KEYROT_SIM_DAYS"); d != nullptr)
        days = std::clamp<std::int64_t>(std::atoll(d), 365, 3 * 365);
    for (unsigned seed = 1; seed <= worlds; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        simulation sim(seed);
        const sys_ms start = keyrot::testing::T0;
        std::vector<sim_app> apps;
        for (int i = 0; i < 25; ++i) {
            sim_app s;
            s.p = keyrot::testing::make_policy();
            const milliseconds life = sim.rand_span(20, 200) * k_day;
            s.p.rotation.key_lifetime = life;
            // X imports, generates (on X or Edge: the same steps), Edge imports.
            if (i % 2 == 1) s.p.rotation.method = policy::rotation_method::generate;
            s.edge = i % 4 >= 2;
            s.p.rotation.rotate_before = sim.rand_span(2 * k_day, life / 3);
            s.p.rotation.overlap = sim.rand_span(k_hour, s.p.rotation.rotate_before / 2);
            const milliseconds delete_after =
                sim.chance(0.5) ? sim.rand_span(0, 60) * k_day : milliseconds(0);
            if (delete_after > milliseconds(0)) s.p.rotation.delete_revoked_after = delete_after;
            if (sim.chance(0.2)) s.p.rotation.max_age = life / 2;
            const bool never_expires =  // an Edge import's key: keys/create takes no expiry
                s.edge && s.p.rotation.method == policy::rotation_method::import_key;
            if (never_expires) {
                s.p.rotation.key_lifetime = std::nullopt;
                s.p.rotation.max_age = life;
            }
            s.a = keyrot::testing::make_app({});
            s.a.name = "app" + std::to_string(i);
            credential k = sim.new_key(start - sim.rand_span(milliseconds(0), life / 2), sys_ms{});
            k.expires_at = never_expires ? time_or_never::never() : k.issued_at + life;
            k.attributes = {{"tier", "gold"}};
            if (sim.chance(0.3)) {
                // All approved, no scopes: products and final marker in one update.
                k.products = {{"payments", approval::approved}, {"orders", approval::approved}};
            } else {
                k.products = {{"payments", approval::approved},
                              {"admin", approval::revoked},
                              {"beta", approval::pending}};
                k.scopes = {"read"};
            }
            s.a.credentials.push_back(std::move(k));
            apps.push_back(std::move(s));
        }
        const milliseconds step = 6 * k_hour;  // keyrotd's pass interval in this world
        const sys_ms end = start + days * k_day;
        for (sys_ms now = start; now < end; now += step) {
            for (auto& s : apps) {
                sim.human(s, now);
                // Two passes per step: a crash leaves a pending successor for the next one.
                for (int pass = 0; pass < 2; ++pass) {
                    const plan::app_plan plan = plan::plan_app(s.a, s.p, now);
                    for (const auto& act : plan.actions) sim.apply(s, act, now);
                }
                sim.check_invariants(s, now);
                if (::testing::Test::HasFailure()) return;
            }
        }
        // Every key of every app was replaced before it expired: a key lives at
        // most keyLifetime (maxAge, when set, is shorter), so three years need at
        // least floor(3 years / keyLifetime) - 1 successors.
        for (const auto& s : apps) {
            const milliseconds life = s.p.rotation.max_age.value_or(*s.p.rotation.key_lifetime);
            EXPECT_GE(s.creates, static_cast<int>((end - start) / life) - 1)
                << s.a.name << " (lifetime " << life / k_day << " days) was rotated too rarely";
        }
        EXPECT_GT(sim.recreated_, 0) << "a revoked successor was replaced at least once";
        // Completions went through the planner's steps, and some crashed
        // part-way, to be taken up again by a later pass.
        EXPECT_GT(sim.steps_, sim.creates_) << "successors are completed by plan/steps.hpp";
        EXPECT_GT(sim.crashes_, 0) << "no completion crashed part-way";
        EXPECT_GT(sim.resumed_, 0) << "no crashed completion was taken up again";
        std::map<std::pair<bool, policy::rotation_method>, int> kinds;
        for (const auto& s : apps) ++kinds[{s.edge, s.p.rotation.method}];
        EXPECT_EQ(kinds.size(), 4u) << "X and Edge, import and generate";
    }
}

}  // namespace

}  // namespace simulation_test
