// One row per rule of the rotation model (docs/rotation.md).
#include "plan/planner.hpp"

#include <date/tz.h>
#include <gtest/gtest.h>

#include <functional>

#include "plan/forecast.hpp"
#include "plan_fixtures.hpp"

namespace planner_test {

using namespace keyrot;
using namespace keyrot::testing;
using namespace std::chrono_literals;

namespace {

struct row {
    std::string name;
    std::function<app()> make;
    std::function<void(policy::policy&)> tweak = [](policy::policy&) {};
    std::vector<std::string> expect;  // "kind:fp", report that counts as failed: "report!:fp"
    time_or_never wake;               // expected next_wake
    plan::options opt = {};
    sys_ms now = T0;
};

std::string describe(const plan::action& a) {
    std::string k = plan::to_string(a.kind);
    if (a.kind == plan::action_kind::report && a.failed) k += "!";
    if (a.kind == plan::action_kind::create_successor && a.late) k += "-late";
    return k + ":" + a.key;
}

void PrintTo(const row& r, std::ostream* os) { *os << r.name; }

class PlannerRules : public ::testing::TestWithParam<row> {};

TEST_P(PlannerRules, Plans) {
    const row& r = GetParam();
    policy::policy p = make_policy();
    if (r.tweak) r.tweak(p);
    const app a = r.make();
    const plan::app_plan got = plan::plan_app(a, p, r.now, r.opt);
    std::vector<std::string> kinds;
    for (const auto& act : got.actions) {
        kinds.push_back(describe(act));
        EXPECT_FALSE(act.reason.empty()) << "every action says why";
    }
    EXPECT_EQ(kinds, r.expect);
    EXPECT_EQ(got.next_wake, r.wake);
}

const milliseconds d = k_day;

INSTANTIATE_TEST_SUITE_P(
    Rotation, PlannerRules,
    ::testing::Values(
        row{"fresh_key_not_due_wakes_at_rotate_before",
            [] { return make_app({key("a1", T0 - 10 * d, T0 + 80 * d)}); },
            {},
            {},
            T0 + 66 * d},
        row{"due_by_rotate_before",
            [] { return make_app({key("a1", T0 - 80 * d, T0 + 10 * d)}); },
            {},
            {"create:a1"},
            time_or_never::never()},
        row{"due_exactly_at_rotate_before",
            [] { return make_app({key("a1", T0 - 76 * d, T0 + 14 * d)}); },
            {},
            {"create:a1"},
            time_or_never::never()},
        row{"due_by_max_age",
            [] { return make_app({key("a1", T0 - 40 * d, T0 + 200 * d)}); },
            [](policy::policy& p) { p.rotation.max_age = 30 * d; },
            {"create:a1"},
            time_or_never::never()},
        row{"max_age_wake",
            [] { return make_app({key("a1", T0 - 10 * d, T0 + 200 * d)}); },
            [](policy::policy& p) { p.rotation.max_age = 30 * d; },
            {},
            T0 + 20 * d},
        row{"never_expiring_key_not_due_without_max_age",
            [] { return make_app({key("a1", T0 - 900 * d, time_or_never::never())}); },
            {},
            {},
            time_or_never::never()},
        row{"never_expiring_key_due_by_max_age",
            [] { return make_app({key("a1", T0 - 900 * d, time_or_never::never())}); },
            [](policy::policy& p) { p.rotation.max_age = 365 * d; },
            {"create:a1"},
            time_or_never::never()},
        row{"pending_successor_is_completed_not_duplicated",
            [] {
                return make_app({key("a1", T0 - 80 * d, T0 + 10 * d),
                                 successor("b2", "a1", true, T0 - 1000ms, T0 + 90 * d)});
            },
            {},
            {"complete:b2"},
            time_or_never::never()},
        row{"complete_successor_then_old_key_waits_for_overlap",
            [] {
                return make_app({key("a1", T0 - 80 * d, T0 + 10 * d),
                                 successor("b2", "a1", false, T0 - 1 * d, T0 + 89 * d)});
            },
            {},
            {},
            T0 + 6 * d},
        row{"overlap_over_revokes_old_key",
            [] {
                return make_app({key("a1", T0 - 88 * d, T0 + 2 * d),
                                 successor("b2", "a1", false, T0 - 7 * d, T0 + 83 * d)});
            },
            {},
            {"revoke:a1"},
            T0 + 69 * d},
        row{"complete_successor_with_product_left_pending_is_finished_first",
            [] {
                credential s = successor("b2", "a1", false, T0 - 8 * d, T0 + 82 * d);
                s.products = {{"payments", approval::pending}};
                return make_app({key("a1", T0 - 88 * d, T0 + 2 * d), s});
            },
            {},
            {"complete:b2"},
            T0 + 68 * d},
        row{"pending_product_the_old_key_has_pending_too_is_left",
            [] {
                credential k = key("a1", T0 - 88 * d, T0 + 2 * d);
                k.products.push_back({"beta", approval::pending});
                credential s = successor("b2", "a1", false, T0 - 8 * d, T0 + 82 * d);
                s.products = {{"payments", approval::approved}, {"beta", approval::pending}};
                return make_app({k, s});
            },
            {},
            {"revoke:a1"},
            T0 + 68 * d},
        row{"revocation_no_later_than_old_expiry",
            [] {
                return make_app({key("a1", T0 - 87 * d, T0 + 3 * d),
                                 successor("b2", "a1", false, T0 - 1 * d, T0 + 89 * d)});
            },
            {},
            {},
            T0 + 3 * d},
        row{"expired_old_key_is_not_revoked_needlessly",
            [] {
                return make_app({key("a1", T0 - 90 * d, T0 - 1ms),
                                 successor("b2", "a1", false, T0 - 2 * d, T0 + 88 * d)});
            },
            {},
            {},
            T0 + 74 * d},
        row{"revoke_false_keeps_old_key",
            [] {
                return make_app({key("a1", T0 - 88 * d, T0 + 2 * d),
                                 successor("b2", "a1", false, T0 - 7 * d, T0 + 83 * d)});
            },
            [](policy::policy& p) { p.rotation.revoke = false; },
            {},
            T0 + 69 * d},
        row{"no_revocation_on_drift",
            [] {
                credential s = successor("b2", "a1", false, T0 - 8 * d, T0 + 82 * d);
                s.products = {{"payments", approval::revoked}};
                return make_app({key("a1", T0 - 88 * d, T0 + 2 * d), s});
            },
            {},
            {"report:a1"},
            T0 + 68 * d},
        row{"person_revoked_key_gets_no_successor",
            [] {
                return make_app({key("a1", T0 - 80 * d, T0 + 10 * d, approval::revoked),
                                 key("c3", T0 - 5 * d, T0 + 85 * d)});
            },
            {},
            {},
            T0 + 71 * d},
        row{"person_revoked_successor_does_not_count_due_old_key_gets_new_one",
            [] {
                return make_app(
                    {key("a1", T0 - 88 * d, T0 + 2 * d),
                     successor("b2", "a1", false, T0 - 8 * d, T0 + 82 * d, approval::revoked)});
            },
            {},
            {"create:a1"},
            time_or_never::never()},
        row{"person_revoked_successor_old_key_not_due_waits",
            [] {
                return make_app(
                    {key("a1", T0 - 10 * d, T0 + 80 * d),
                     successor("b2", "a1", false, T0 - 1 * d, T0 + 89 * d, approval::revoked)});
            },
            {},
            {},
            T0 + 66 * d},
        row{"team_app_rotated_like_a_developer_app",
            [] {
                app a = make_app({key("a1", T0 - 80 * d, T0 + 10 * d)});
                a.developer_email.clear();
                a.app_group = "team-a";
                return a;
            },
            {},
            {"create:a1"},
            time_or_never::never()},
        row{"inactive_team_skipped",
            [] {
                app a = make_app({key("a1", T0 - 80 * d, T0 + 10 * d)});
                a.developer_email.clear();
                a.app_group = "team-a";
                a.developer_status = owner_status::inactive;
                return a;
            },
            {},
            {},
            time_or_never::never()},
        row{"unknown_developer_with_work_skipped",
            [] {
                app a = make_app({key("a1", T0 - 80 * d, T0 + 10 * d)});
                a.developer_status = owner_status::not_known;
                return a;
            },
            {},
            {},
            time_or_never::never()},
        row{"unknown_developer_without_work_plans_normally",
            [] {
                app a = make_app({key("a1", T0 - 10 * d, T0 + 80 * d)});
                a.developer_status = owner_status::not_known;
                return a;
            },
            {},
            {},
            T0 + 66 * d},
        row{"late_rotation_of_recently_expired_key",
            [] { return make_app({key("a1", T0 - 92 * d, T0 - 2 * d)}); },
            {},
            {"create-late:a1"},
            time_or_never::never()},
        row{"expired_long_ago_is_history",
            [] { return make_app({key("a1", T0 - 200 * d, T0 - 30 * d)}); },
            {},
            {},
            time_or_never::never()},
        row{"expired_key_covered_by_another_key_is_history",
            [] {
                return make_app(
                    {key("a1", T0 - 92 * d, T0 - 2 * d), key("c3", T0 - 5 * d, T0 + 85 * d)});
            },
            {},
            {},
            T0 + 71 * d},
        row{"duplicate_successors_keep_smaller_fingerprint",
            [] {
                return make_app({key("a1", T0 - 80 * d, T0 + 10 * d),
                                 successor("b2", "a1", false, T0 - 1000ms, T0 + 90 * d),
                                 successor("9f", "a1", false, T0 - 900ms, T0 + 90 * d)});
            },
            {},
            {"revoke:b2"},
            T0 - 900ms + 7 * d},
        row{"never_touch_unmarked_keys",
            [] {
                return make_app({key("a1", T0 - 10 * d, T0 + 80 * d),
                                 key("c3", T0 - 10 * d, T0 + 80 * d, approval::revoked)});
            },
            [](policy::policy& p) { p.rotation.delete_revoked_after = 1 * d; },
            {},
            T0 + 66 * d},
        row{"delete_revoked_after",
            [] {
                return make_app({key("a1", T0 - 100 * d, T0 - 10 * d, approval::revoked),
                                 successor("b2", "a1", false, T0 - 24 * d, T0 + 66 * d)});
            },
            [](policy::policy& p) { p.rotation.delete_revoked_after = 7 * d; },
            {"delete:a1"},
            T0 + 52 * d},
        row{"delete_waits",
            [] {
                return make_app({key("a1", T0 - 92 * d, T0 - 2 * d, approval::revoked),
                                 successor("b2", "a1", false, T0 - 10 * d, T0 + 80 * d)});
            },
            [](policy::policy& p) { p.rotation.delete_revoked_after = 7 * d; },
            {},
            T0 + 4 * d},
        row{"revoked_app_skipped",
            [] {
                app a = make_app({key("a1", T0 - 80 * d, T0 + 10 * d)});
                a.status = approval::revoked;
                return a;
            },
            {},
            {},
            time_or_never::never()},
        row{"inactive_developer_skipped",
            [] {
                app a = make_app({key("a1", T0 - 80 * d, T0 + 10 * d)});
                a.developer_status = owner_status::inactive;
                return a;
            },
            {},
            {},
            time_or_never::never()},
        row{"no_room_for_marker_is_reported_as_failure",
            [] {
                credential k = key("a1", T0 - 80 * d, T0 + 10 * d);
                k.attributes.clear();
                for (int i = 0; i < 18; ++i) k.attributes.push_back({"a" + std::to_string(i), "v"});
                return make_app({k});
            },
            {},
            {"report!:a1"},
            time_or_never::never()},
        row{"outside_window_waits_for_it",
            // T0 is Friday 2027-01-15 08:00 UTC; window Mon–Fri 09:00–17:00.
            [] { return make_app({key("a1", T0 - 80 * d, T0 + 10 * d)}); },
            [](policy::policy& p) {
                p.rotation.window = policy::time_window{{1, 2, 3, 4, 5}, 9h, 17h, "UTC", 0min};
            },
            {},
            T0 + k_hour},
        row{"pending_successor_of_revoked_key_not_completed",
            [] {
                return make_app({key("a1", T0 - 80 * d, T0 + 10 * d, approval::revoked),
                                 successor("b2", "a1", true, T0 - 1000ms, T0 + 90 * d)});
            },
            {},
            {"report!:b2"},
            time_or_never::never()},
        row{"forced_rotation",
            [] { return make_app({key("a1", T0 - 1 * d, T0 + 89 * d)}); },
            {},
            {"create:a1"},
            time_or_never::never(),
            plan::options{true, false}},
        row{"revoke_now_after_complete",
            [] {
                return make_app({key("a1", T0 - 1 * d, T0 + 89 * d),
                                 successor("b2", "a1", false, T0 - 1000ms, T0 + 90 * d)});
            },
            {},
            {"revoke:a1"},
            T0 + 76 * d,
            plan::options{false, true}},
        row{"implausible_duplicate_key_not_touched",
            [] {
                return make_app(
                    {key("a1", T0 - 80 * d, T0 + 10 * d), key("a1", T0 - 80 * d, T0 + 10 * d)});
            },
            {},
            {"report!:"},
            time_or_never::never()},
        row{"implausible_key_count_not_touched",
            [] {
                std::vector<credential> keys;
                for (int i = 0; i < 1001; ++i)
                    keys.push_back(key("k" + std::to_string(i), T0 - 80 * d, T0 + 10 * d));
                return make_app(std::move(keys));
            },
            {},
            {"report!:"},
            time_or_never::never()},
        row{"chain_successor_rotates_itself_later",
            [] {
                return make_app({key("a1", T0 - 170 * d, T0 - 80 * d, approval::revoked),
                                 successor("b2", "a1", false, T0 - 86 * d, T0 + 4 * d)});
            },
            {},
            {"create:b2"},
            time_or_never::never()}),
    [](const ::testing::TestParamInfo<row>& param_info) { return param_info.param.name; });

TEST(Planner, SuccessorOutlivesOldKey) {
    // Due by maxAge with far-away expiry: the successor still ends after the old key.
    policy::policy p = make_policy();
    p.rotation.max_age = 30 * k_day;
    app a = make_app({key("a1", T0 - 40 * k_day, T0 + 300 * k_day)});
    auto got = plan::plan_app(a, p, T0);
    ASSERT_EQ(got.actions.size(), 1u);
    EXPECT_GT(got.actions[0].expires_at, T0 + 300 * k_day);
}

TEST(Planner, SuccessorExpiryIsNowPlusLifetime) {
    policy::policy p = make_policy();
    app a = make_app({key("a1", T0 - 80 * k_day, T0 + 10 * k_day)});
    auto got = plan::plan_app(a, p, T0);
    ASSERT_EQ(got.actions.size(), 1u);
    EXPECT_EQ(got.actions[0].expires_at, T0 + 90 * k_day);
    p.rotation.key_lifetime.reset();
    got = plan::plan_app(a, p, T0);
    EXPECT_EQ(got.actions[0].expires_at, time_or_never::never());
}

// An old key that never expires (rotated for its age) gets a successor that
// expires at now + keyLifetime: "outlive the old key" does not make it never.
TEST(Planner, SuccessorOfAKeyThatNeverExpiresGetsTheLifetime) {
    policy::policy p = make_policy();
    p.rotation.max_age = 30 * k_day;
    app a = make_app({key("a1", T0 - 40 * k_day, time_or_never::never())});
    auto got = plan::plan_app(a, p, T0);
    ASSERT_EQ(got.actions.size(), 1u);
    ASSERT_EQ(got.actions[0].kind, plan::action_kind::create_successor);
    EXPECT_EQ(got.actions[0].expires_at, T0 + 90 * k_day);
}

TEST(Planner, SpecMirrorsOldKeyAndCarriesFinalMarker) {
    credential old = key("a1", T0 - 80 * k_day, T0 + 10 * k_day, approval::approved,
                         {{"payments", approval::approved},
                          {"admin", approval::revoked},
                          {"beta", approval::pending}});
    old.attributes = {{"env", "prod"}, {k_marker_attribute, "0ld0ld"}};  // itself a successor
    old.scopes = {"read", "write"};
    auto got = plan::plan_app(make_app({old}), make_policy(), T0);
    ASSERT_EQ(got.actions.size(), 1u);
    const auto& spec = got.actions[0].spec;
    EXPECT_EQ(spec.products, old.products);  // revoked and pending stay so
    EXPECT_EQ(spec.scopes, old.scopes);
    const std::vector<attribute> want{{"env", "prod"}, {k_marker_attribute, "a1"}};
    EXPECT_EQ(spec.attributes, want);  // the old key's own marker is not copied
}

TEST(Planner, ReportsAreClassifiedForObservers) {
    // app.stranded is told from the audit record's detail: pin the phrases.
    app drift = make_app({key("a1", T0 - 88 * k_day, T0 + 2 * k_day, approval::approved,
                              {{"payments", approval::approved}, {"admin", approval::approved}}),
                          successor("b2", "a1", false, T0 - 8 * k_day, T0 + 82 * k_day)});
    auto got = plan::plan_app(drift, make_policy(), T0);
    ASSERT_EQ(got.actions.size(), 1u);
    EXPECT_EQ(plan::classify_report(got.actions[0].reason), plan::report_code::drift);
    credential full = key("a1", T0 - 80 * k_day, T0 + 10 * k_day);
    full.attributes.clear();
    for (int i = 0; i < 18; ++i) full.attributes.push_back({"a" + std::to_string(i), "v"});
    got = plan::plan_app(make_app({full}), make_policy(), T0);
    ASSERT_EQ(got.actions.size(), 1u);
    EXPECT_EQ(plan::classify_report(got.actions[0].reason), plan::report_code::no_room_for_marker);
    credential s = successor("b2", "a1", false, T0 - 10 * k_day, T0 - 1ms);
    got = plan::plan_app(make_app({key("a1", T0 - 88 * k_day, T0 + 2 * k_day), s}), make_policy(),
                         T0, plan::options{false, true});
    ASSERT_FALSE(got.actions.empty());
    for (const auto& a : got.actions)
        EXPECT_EQ(plan::classify_report(a.reason), plan::report_code::other) << a.reason;
}

TEST(Planner, NeverRevokesLastValidKey) {
    // Two complete keys whose markers name each other (a person copied key
    // attributes by hand): each is the other's successor and both overlaps are
    // over, so the overlap rule would revoke both. The guard keeps the one that
    // would be left, and says so.
    app a = make_app({successor("a1", "b2", false, T0 - 20 * k_day, T0 + 70 * k_day),
                      successor("b2", "a1", false, T0 - 10 * k_day, T0 + 80 * k_day)});
    auto got = plan::plan_app(a, make_policy(), T0);
    std::vector<std::string> kinds;
    for (const auto& act : got.actions) kinds.push_back(describe(act));
    EXPECT_EQ(kinds, (std::vector<std::string>{"revoke:a1", "report:b2"}));
    ASSERT_EQ(got.actions.size(), 2u);
    EXPECT_NE(got.actions[1].reason.find("last valid key"), std::string::npos)
        << got.actions[1].reason;
}

TEST(Planner, KeyStatesForMetrics) {
    app a = make_app({key("a1", T0 - 88 * k_day, T0 + 2 * k_day),
                      successor("b2", "a1", false, T0 - 1 * k_day, T0 + 89 * k_day),
                      key("c3", T0 - 80 * k_day, T0 + 10 * k_day),
                      key("d4", T0 - 100 * k_day, T0 - 50 * k_day),
                      key("e5", T0 - 10 * k_day, T0 + 80 * k_day, approval::revoked)});
    auto got = plan::plan_app(a, make_policy(), T0);
    std::map<std::string, std::string> states;
    for (const auto& k : got.keys) states[k.fingerprint] = plan::to_string(k.state);
    EXPECT_EQ(states["a1"], "overlap");
    EXPECT_EQ(states["b2"], "valid");
    EXPECT_EQ(states["c3"], "due");
    EXPECT_EQ(states["d4"], "expired");
    EXPECT_EQ(states["e5"], "revoked");
    EXPECT_TRUE(got.has_valid_key);
}

TEST(Window, InsideAndNextOpen) {
    policy::time_window w{{1, 2, 3, 4, 5}, 9h, 17h, "UTC", 0min};
    // T0 = Friday 08:00 UTC
    EXPECT_FALSE(plan::in_window(w, T0));
    EXPECT_EQ(plan::next_window_open(w, T0), T0 + k_hour);
    EXPECT_TRUE(plan::in_window(w, T0 + 2 * k_hour));
    // Friday 18:00 -> next open is Monday 09:00
    EXPECT_EQ(plan::next_window_open(w, T0 + 10 * k_hour), T0 + 3 * k_day + k_hour);
    // A +02:00 zone: Friday 08:00 UTC is 10:00 local, inside.
    w.utc_offset = std::chrono::hours(2);
    EXPECT_TRUE(plan::in_window(w, T0));
}

}  // namespace

TEST(Planner, KeysOfAppsLeftAloneAreSkippedNeverDue) {
    // A due key of an app keyrotd will not touch must not raise "expiring without
    // a successor": its state is `skipped`, with the reason and a code to count.
    const std::vector<std::pair<std::string, std::function<void(app&)>>> cases = {
        {"team-inactive",
         [](app& a) {
             a.app_group = "team-a", a.developer_email.clear(),
             a.developer_status = owner_status::inactive;
         }},
        {"team-unknown",
         [](app& a) {
             a.app_group = "team-a", a.developer_email.clear(),
             a.developer_status = owner_status::not_known;
         }},
        {"app-revoked", [](app& a) { a.status = approval::revoked; }},
        {"developer-inactive", [](app& a) { a.developer_status = owner_status::inactive; }},
        {"developer-unknown", [](app& a) { a.developer_status = owner_status::not_known; }},
        // A status Apigee gives that is neither active nor inactive.
        {"developer-unknown", [](app& a) { a.developer_status = owner_status::other; }},
    };
    for (const auto& [code, tweak] : cases) {
        SCOPED_TRACE(code);
        app a = make_app({key("a1", T0 - 80 * k_day, T0 + 10 * k_day),
                          key("e5", T0 - 10 * k_day, T0 + 80 * k_day, approval::revoked)});
        tweak(a);
        auto got = plan::plan_app(a, make_policy(), T0);
        EXPECT_TRUE(got.skipped);
        EXPECT_EQ(got.skip_code, code);
        EXPECT_FALSE(got.skip_reason.empty());
        EXPECT_TRUE(got.actions.empty());
        ASSERT_EQ(got.keys.size(), 2u);
        for (const auto& k : got.keys)
            EXPECT_EQ(std::string(plan::to_string(k.state)),
                      k.fingerprint == "e5" ? "revoked" : "skipped");
    }
}

TEST(Planner, RevokeNowSaysSo) {
    app a = make_app({key("a1", T0 - 10 * k_day, T0 + 80 * k_day),
                      successor("b2", "a1", false, T0 - 1000ms, T0 + 89 * k_day)});
    auto now = plan::plan_app(a, make_policy(), T0, plan::options{false, true});
    ASSERT_EQ(now.actions.size(), 1u);
    EXPECT_EQ(now.actions[0].kind, plan::action_kind::revoke_key);
    EXPECT_NE(now.actions[0].reason.find("--revoke-now"), std::string::npos);
    EXPECT_EQ(now.actions[0].reason.find("overlap over"), std::string::npos);
}

TEST(Planner, ANewSuccessorForARevokedOneSaysWhy) {
    app a = make_app(
        {key("a1", T0 - 88 * k_day, T0 + 2 * k_day),
         successor("b2", "a1", false, T0 - 8 * k_day, T0 + 82 * k_day, approval::revoked)});
    auto got = plan::plan_app(a, make_policy(), T0);
    ASSERT_EQ(got.actions.size(), 1u);
    EXPECT_EQ(got.actions[0].kind, plan::action_kind::create_successor);
    EXPECT_NE(got.actions[0].reason.find("successor b2 was revoked by someone else"),
              std::string::npos)
        << got.actions[0].reason;
    EXPECT_NE(got.actions[0].reason.find("within rotateBefore"), std::string::npos);
}

// The forecast (`plan --within`): "kind:key@day" (days after T0).
namespace {

struct forecast_row {
    std::string name;
    std::function<app()> make;
    std::function<void(policy::policy&)> tweak;
    milliseconds within;
    std::vector<std::string> expect;
    bool no_policy = false;
};

void PrintTo(const forecast_row& r, std::ostream* os) { *os << r.name; }

class ForecastRules : public ::testing::TestWithParam<forecast_row> {};

TEST_P(ForecastRules, Forecasts) {
    const forecast_row& r = GetParam();
    policy::policy p = make_policy();
    if (r.tweak) r.tweak(p);
    const auto got =
        plan::forecast_app(r.make(), r.no_policy ? nullptr : &p, T0, T0 + r.within, false);
    std::vector<std::string> items;
    for (const auto& it : got) {
        EXPECT_FALSE(it.reason.empty()) << "every item says why";
        const auto day = (it.at - T0) / k_day;
        const bool whole = (it.at - T0) % k_day == 0ms;
        items.push_back(std::string(plan::to_string(it.kind)) + ":" + it.key + "@" +
                        std::to_string(day) + (whole ? "" : "+"));
    }
    EXPECT_EQ(items, r.expect);
}

const milliseconds fd = k_day;

INSTANTIATE_TEST_SUITE_P(
    Forecast, ForecastRules,
    ::testing::Values(
        forecast_row{"nothing_in_window",
                     [] { return make_app({key("a1", T0 - 10 * fd, T0 + 80 * fd)}); },
                     {},
                     30 * fd,
                     {}},
        forecast_row{"rotation_then_revocation_an_overlap_later",
                     [] { return make_app({key("a1", T0 - 10 * fd, T0 + 80 * fd)}); },
                     {},
                     90 * fd,
                     {"create:a1@66", "revoke:a1@73"}},
        forecast_row{"window_end_is_inclusive_and_cuts",
                     [] { return make_app({key("a1", T0 - 10 * fd, T0 + 80 * fd)}); },
                     {},
                     66 * fd,
                     {"create:a1@66"}},
        forecast_row{"revocation_minutes_away_while_nothing_is_due_now",
                     [] {
                         return make_app({key("a1", T0 - 88 * fd, T0 + 2 * fd),
                                          successor("b2", "a1", false, T0 - 7 * fd + 10 * k_minute,
                                                    T0 + 83 * fd)});
                     },
                     {},
                     1 * fd,
                     {"revoke:a1@0+"}},
        forecast_row{"due_now_is_left_out_but_its_consequences_are_not",
                     [] { return make_app({key("a1", T0 - 80 * fd, T0 + 10 * fd)}); },
                     {},
                     30 * fd,
                     {"revoke:a1@7"}},
        forecast_row{"revoke_false_old_key_expires",
                     [] {
                         return make_app({key("a1", T0 - 88 * fd, T0 + 2 * fd),
                                          successor("b2", "a1", false, T0 - 1 * fd, T0 + 89 * fd)});
                     },
                     [](policy::policy& p) { p.rotation.revoke = false; },
                     7 * fd,
                     {"expire:a1@2"}},
        forecast_row{"deletion_after_revocation",
                     [] {
                         return make_app({key("a1", T0 - 88 * fd, T0 + 2 * fd),
                                          successor("b2", "a1", false, T0 - 6 * fd, T0 + 84 * fd)});
                     },
                     [](policy::policy& p) { p.rotation.delete_revoked_after = 3 * k_day; },
                     7 * fd,
                     {"revoke:a1@1", "delete:a1@4"}},
        forecast_row{"successor_chain_in_a_long_window",
                     [] { return make_app({key("a1", T0 - 80 * fd, T0 + 10 * fd)}); },
                     // The successor lives 20 d and is due 14 d before: it rotates at 6 d.
                     [](policy::policy& p) { p.rotation.key_lifetime = 20 * k_day; },
                     14 * fd,
                     {"create:(successor of a1)@6", "revoke:a1@7", "create:(successor 2 of a1)@12",
                      "revoke:(successor of a1)@13"}},
        forecast_row{
            "rotation_waits_for_the_window",
            [] { return make_app({key("a1", T0 - 10 * fd, T0 + 78 * fd)}); },
            [](policy::policy& p) {
                // Due at T0 + 64 d, a Saturday: the rotation waits for Monday 09:00.
                p.rotation.window = policy::time_window{{1, 2, 3, 4, 5}, 9h, 17h, "UTC", 0min};
            },
            70 * fd,
            {"create:a1@66+"}},
        forecast_row{"no_policy_only_expiry",
                     [] {
                         return make_app({key("a1", T0 - 80 * fd, T0 + 10 * fd),
                                          key("e5", T0 - 80 * fd, T0 + 5 * fd, approval::revoked)});
                     },
                     {},
                     30 * fd,
                     {"expire:a1@10"},
                     true},
        forecast_row{"successor_expires_first_old_key_rotates_again",
                     [] {
                         return make_app({key("a1", T0 - 88 * fd, T0 + 20 * fd),
                                          successor("b2", "a1", false, T0 - 1 * fd, T0 + 3 * fd)});
                     },
                     [](policy::policy& p) { p.rotation.overlap = 30 * k_day; },
                     30 * fd,
                     {"expire:b2@3", "create:a1@6", "expire:a1@20"}},
        forecast_row{"no_room_for_the_marker_reported_once",
                     [] {
                         credential k = key("a1", T0 - 10 * fd, T0 + 20 * fd);
                         k.attributes.clear();
                         for (int i = 0; i < 18; ++i)
                             k.attributes.push_back({"a" + std::to_string(i), "v"});
                         return make_app({k});
                     },
                     {},
                     30 * fd,
                     {"report:a1@6", "expire:a1@20"}}),
    [](const ::testing::TestParamInfo<forecast_row>& param_info) { return param_info.param.name; });

TEST(Forecast, SkippedAppKeysStillExpire) {
    app a = make_app({key("a1", T0 - 80 * k_day, T0 + 10 * k_day)});
    a.developer_status = owner_status::inactive;
    policy::policy p = make_policy();
    const auto got = plan::forecast_app(a, &p, T0, T0 + 30 * k_day, false);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].kind, plan::forecast_kind::expire);
    EXPECT_NE(got[0].reason.find("developer is inactive"), std::string::npos) << got[0].reason;
}

TEST(Window, NamedZoneFollowsDaylightSavingTime) {
    // Europe/Berlin: CET (+01:00) until Sunday 2027-03-28 01:00 UTC, CEST (+02:00) after.
    policy::time_window w{{1, 2, 3, 4, 5}, 9h, 17h, "Europe/Berlin", 0min};
    w.zone = date::locate_zone("Europe/Berlin");
    const sys_ms fri_winter = as_sys_ms(1806019200000);  // Friday 2027-03-26 00:00 UTC
    const sys_ms mon_summer = fri_winter + 3 * k_day;
    // Winter: 09:00 local is 08:00 UTC.
    EXPECT_FALSE(plan::in_window(w, fri_winter + 8 * k_hour - k_minute));
    EXPECT_TRUE(plan::in_window(w, fri_winter + 8 * k_hour));
    EXPECT_FALSE(plan::in_window(w, fri_winter + 16 * k_hour));  // 17:00 local
    // After the change 09:00 local is 07:00 UTC: from Friday evening the window
    // next opens on Monday at 07:00 UTC, not 08:00.
    EXPECT_EQ(plan::next_window_open(w, fri_winter + 18 * k_hour), mon_summer + 7 * k_hour);
    EXPECT_TRUE(plan::in_window(w, mon_summer + 7 * k_hour));
    EXPECT_FALSE(plan::in_window(w, mon_summer + 15 * k_hour));  // 17:00 local
    // A fixed offset does not follow the change.
    policy::time_window fixed{{1, 2, 3, 4, 5}, 9h, 17h, "+01:00", 1h};
    EXPECT_EQ(plan::next_window_open(fixed, fri_winter + 18 * k_hour), mon_summer + 8 * k_hour);
}

TEST(Window, NamedZoneTimeSkippedOrRepeated) {
    policy::time_window w{{}, 2h + 30min, 3h + 30min, "Europe/Berlin", 0min};
    w.zone = date::locate_zone("Europe/Berlin");
    // Sunday 2027-03-28: 02:30 local does not exist (02:00 -> 03:00 at 01:00
    // UTC); the window opens at the change, 03:00 local.
    const sys_ms sun_spring = as_sys_ms(1806192000000);  // 2027-03-28 00:00 UTC
    EXPECT_EQ(plan::next_window_open(w, sun_spring), sun_spring + 1 * k_hour);
    EXPECT_TRUE(plan::in_window(w, sun_spring + 1 * k_hour));  // 03:00 CEST
    // Sunday 2027-10-31: 02:30 local happens twice (03:00 CEST -> 02:00 CET at
    // 01:00 UTC); the window opens at the first, 00:30 UTC.
    const sys_ms sun_autumn = as_sys_ms(1824940800000);  // 2027-10-31 00:00 UTC
    EXPECT_EQ(plan::next_window_open(w, sun_autumn), sun_autumn + 30 * k_minute);
}

TEST(Planner, TeamAppsMatchOnlyPoliciesThatNameTheirGroup) {
    app dev = make_app({key("a1", T0 - 80 * k_day, T0 + 10 * k_day)});
    app team = dev;
    team.developer_email.clear();
    team.app_group = "partners-eu";
    policy::policy all = make_policy();  // no match rules: every developer app
    all.name = "all";
    policy::policy teams = make_policy();
    teams.name = "teams";
    teams.match.app_groups = {"partners-*"};
    policy::policy both = make_policy();
    both.name = "both";
    both.match.developers = {"*"};
    both.match.app_groups = {"*"};
    both.match.exclude.app_groups = {"*-eu"};
    auto name = [](const policy::policy* p) { return p ? p->name : std::string("none"); };
    EXPECT_EQ(name(plan::match_policy(dev, {all})), "all");
    EXPECT_EQ(name(plan::match_policy(team, {all})), "none") << "team apps need appGroups";
    EXPECT_EQ(name(plan::match_policy(team, {teams})), "teams");
    EXPECT_EQ(name(plan::match_policy(dev, {teams})), "none") << "appGroups alone: teams only";
    EXPECT_EQ(name(plan::match_policy(dev, {both})), "both");
    EXPECT_EQ(name(plan::match_policy(team, {both})), "none") << "excluded group";
    team.app_group = "PARTNERS-x";
    EXPECT_EQ(name(plan::match_policy(team, {teams})), "none") << "AppGroup names are exact";
}

}  // namespace

}  // namespace planner_test
