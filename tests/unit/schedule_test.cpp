// The daemon's schedule (lib/sched/schedule.hpp) as tables: how the last pass
// went, what the next decision is (draws are fixed: lo, 0 or hi); and what a
// pass about to start reads (targeted or full, the wake horizon).
#include "sched/schedule.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "unit/print_time.hpp"

namespace keyrot::sched::schedule_test {
namespace {

using namespace std::chrono_literals;

constexpr sys_ms k_now{milliseconds{1'800'000'000'000}};
constexpr milliseconds k_interval = 10min;

enum class draw_at { low, middle, high };

draw_fn fixed(draw_at at) {
    return [at](milliseconds lo, milliseconds hi) {
        return at == draw_at::low ? lo : at == draw_at::high ? hi : (lo + hi) / 2;
    };
}

pass_result ok_full(std::optional<sys_ms> next_action = std::nullopt) {
    pass_result r;
    r.ok = true;
    r.now = k_now;
    r.interval = k_interval;
    r.next_action = next_action;
    return r;
}

pass_result failed() {
    pass_result r = ok_full();
    r.ok = false;
    return r;
}

struct row {
    const char* name;
    pass_result result;
    schedule_state before;
    draw_at draw;
    milliseconds wait;
    std::string why;
    schedule_state after;
};

bool same(const schedule_state& a, const schedule_state& b) {
    return a.backoff == b.backoff && a.immediate == b.immediate && a.next_full == b.next_full;
}

// gtest names a failing row by its name, not its bytes.
void PrintTo(const row& r, std::ostream* os) { *os << r.name; }

class ScheduleTable : public ::testing::TestWithParam<row> {};

TEST_P(ScheduleTable, Decides) {
    const row& r = GetParam();
    schedule_state s = r.before;
    const decision d = next_pass(r.result, s, fixed(r.draw));
    EXPECT_EQ(d.wait.count(), r.wait.count());
    EXPECT_EQ(std::string(d.why), r.why);
    EXPECT_TRUE(same(s, r.after)) << "backoff " << s.backoff.count() << " immediate " << s.immediate
                                  << " next_full " << as_millis(s.next_full);
}

pass_result targeted(std::optional<sys_ms> next_action) {
    pass_result r = ok_full(next_action);
    r.targeted = true;
    return r;
}

pass_result reloaded() {
    pass_result r = failed();
    r.config_changed = true;
    return r;
}

pass_result short_interval_failed() {
    pass_result r = failed();
    r.interval = 7s;
    return r;
}

const row k_rows[] = {
    // A full pass: the next one interval later, ±10 %.
    {"FullPassMiddle",
     ok_full(),
     {},
     draw_at::middle,
     k_interval,
     "full pass",
     {0ms, 0, k_now + k_interval}},
    {"FullPassEarly",
     ok_full(),
     {},
     draw_at::low,
     k_interval - k_interval / 10,
     "full pass",
     {0ms, 0, k_now + k_interval - k_interval / 10}},
    {"FullPassLate",
     ok_full(),
     {},
     draw_at::high,
     k_interval + k_interval / 10,
     "full pass",
     {0ms, 0, k_now + k_interval + k_interval / 10}},
    // An action due before the next full pass: just after its moment.
    {"ActionDueFirst",
     ok_full(k_now + 1min),
     {},
     draw_at::middle,
     1min + k_due_slack,
     "next action due",
     {0ms, 0, k_now + k_interval}},
    // One due after the full pass changes nothing.
    {"ActionDueLater",
     ok_full(k_now + 2 * k_interval),
     {},
     draw_at::middle,
     k_interval,
     "full pass",
     {0ms, 0, k_now + k_interval}},
    // A success resets the backoff.
    {"SuccessResetsBackoff",
     ok_full(),
     {40s, 0, {}},
     draw_at::middle,
     k_interval,
     "full pass",
     {0ms, 0, k_now + k_interval}},
    // A targeted pass keeps the full pass it had.
    {"TargetedKeepsFullPass",
     targeted(std::nullopt),
     {0ms, 0, k_now + 3min},
     draw_at::high,
     3min,
     "full pass",
     {0ms, 0, k_now + 3min}},
    {"TargetedNextAction",
     targeted(k_now + 1min),
     {0ms, 0, k_now + 3min},
     draw_at::high,
     1min + k_due_slack,
     "next action due",
     {0ms, 0, k_now + 3min}},
    // A full pass overdue (a targeted pass ran long): at once.
    {"FullPassOverdue",
     targeted(std::nullopt),
     {0ms, 0, k_now - 1s},
     draw_at::middle,
     0ms,
     "full pass",
     {0ms, 0, k_now - 1s}},
    // Failures: 5 s, 10 s, 20 s, ... ±10 %, capped at the interval.
    {"FirstFailure", failed(), {}, draw_at::middle, 5s, "retry after a failed pass", {5s, 0, {}}},
    {"FirstFailureLow",
     failed(),
     {},
     draw_at::low,
     4500ms,
     "retry after a failed pass",
     {5s, 0, {}}},
    {"SecondFailure",
     failed(),
     {5s, 0, {}},
     draw_at::high,
     11s,
     "retry after a failed pass",
     {10s, 0, {}}},
    {"FailureCapped",
     failed(),
     {8min, 0, {}},
     draw_at::middle,
     k_interval,
     "retry after a failed pass",
     {k_interval, 0, {}}},
    {"FailureCappedShortInterval",
     short_interval_failed(),
     {},
     draw_at::middle,
     5s,
     "retry after a failed pass",
     {5s, 0, {}}},
    {"FailureResetsSpinGuard",
     failed(),
     {0ms, 3, {}},
     draw_at::middle,
     5s,
     "retry after a failed pass",
     {5s, 0, {}}},
    // An action already due that the pass left: 1 s, 2 s, 4 s, ... (no spin).
    {"StillDueOnce",
     ok_full(k_now - 1s),
     {},
     draw_at::middle,
     1s,
     "action still due",
     {0ms, 1, k_now + k_interval}},
    {"StillDueThird",
     ok_full(k_now),
     {0ms, 2, {}},
     draw_at::middle,
     4s,
     "action still due",
     {0ms, 3, k_now + k_interval}},
    {"StillDueCapped",
     ok_full(k_now),
     {0ms, 40, {}},
     draw_at::middle,
     k_interval,
     "action still due",
     {0ms, 41, k_now + k_interval}},
    {"NoLongerDueResets",
     ok_full(k_now + 1min),
     {0ms, 5, {}},
     draw_at::middle,
     1min + k_due_slack,
     "next action due",
     {0ms, 0, k_now + k_interval}},
    // A reload during the pass: at once, whatever else happened.
    {"Reloaded",
     reloaded(),
     {5s, 2, k_now + 1min},
     draw_at::high,
     0ms,
     "config reloaded during the pass",
     {5s, 2, k_now + 1min}},
};

INSTANTIATE_TEST_SUITE_P(Schedule, ScheduleTable, ::testing::ValuesIn(k_rows),
                         [](const ::testing::TestParamInfo<row>& i) { return i.param.name; });

// Jitter spreads full passes over ±10 % and never beyond.
TEST(Schedule, JitterStaysWithinTenPercent) {
    std::optional<milliseconds> lo;
    milliseconds hi{};
    std::mt19937_64 rng(42);  // fixed: the test is deterministic
    for (int i = 0; i < 1000; ++i) {
        schedule_state s;
        const decision d = next_pass(ok_full(), s, [&rng](milliseconds a, milliseconds b) {
            return milliseconds(
                std::uniform_int_distribution<milliseconds::rep>(a.count(), b.count())(rng));
        });
        lo = lo ? std::min(*lo, d.wait) : d.wait;
        hi = std::max(hi, d.wait);
    }
    ASSERT_TRUE(lo.has_value());
    EXPECT_GE(*lo, k_interval - k_interval / 10);
    EXPECT_LE(hi, k_interval + k_interval / 10);
    EXPECT_LT(lo, k_interval - k_interval / 20);  // it does spread
    EXPECT_GT(hi, k_interval + k_interval / 20);
}

// What a pass reads. k_now is the start; the last full pass left its
// successor due at k_next_full.
constexpr sys_ms k_next_full = k_now + 5min;
constexpr sys_ms k_full_horizon = k_now + k_interval + k_interval / 10 + 1ms;
constexpr sys_ms k_targeted_horizon = k_next_full + 1ms;

exec::app_wake wake(std::string app, time_or_never at, std::string team = "") {
    exec::app_wake w;
    w.developer = team.empty() ? "dev@example.com" : "";
    w.app = std::move(app);
    w.at = at;
    w.team = std::move(team);
    return w;
}

// n apps, app-0 ... app-<n-1>, all waking at `at`.
std::vector<exec::app_wake> wakes_at(std::size_t n, time_or_never at) {
    std::vector<exec::app_wake> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(wake("app-" + std::to_string(i), at));
    return out;
}

std::vector<std::string> names(const std::vector<exec::app_wake>& wakes) {
    std::vector<std::string> out;
    for (const auto& w : wakes) out.push_back(w.team + "/" + w.developer + "/" + w.app);
    return out;
}

template <class... T>
std::vector<exec::app_wake> list(T... w) {
    return {std::move(w)...};
}

struct choice_row {
    const char* name;
    sys_ms next_full;  // schedule_state::next_full
    bool same_config;
    std::vector<exec::app_wake> wakes;
    bool targeted;
    std::vector<exec::app_wake> due;
    sys_ms wake_horizon;
};

void PrintTo(const choice_row& r, std::ostream* os) { *os << r.name; }

class ChoosePassTable : public ::testing::TestWithParam<choice_row> {};

TEST_P(ChoosePassTable, Chooses) {
    const choice_row& r = GetParam();
    schedule_state s;
    s.next_full = r.next_full;
    s.wakes = r.wakes;
    const pass_plan p = choose_pass(k_now, s, r.same_config, k_interval);
    EXPECT_EQ(p.started, k_now);
    EXPECT_EQ(p.targeted, r.targeted);
    EXPECT_EQ(names(p.due), names(r.due));
    EXPECT_EQ(as_millis(p.wake_horizon), as_millis(r.wake_horizon));
}

const choice_row k_choices[] = {
    // An action due by the start plus the slack: that app alone.
    {"DueWithinSlack", k_next_full, true,
     list(wake("a", k_now + k_due_slack), wake("b", k_now + k_due_slack + 1ms)), true,
     list(wake("a", k_now + k_due_slack)), k_targeted_horizon},
    {"DueJustAfterSlack",
     k_next_full,
     true,
     list(wake("a", k_now + k_due_slack + 1ms)),
     false,
     {},
     k_full_horizon},
    // Due a while ago (a targeted pass ran late): due still.
    {"DueInThePast", k_next_full, true, list(wake("a", k_now - 1min)), true,
     list(wake("a", k_now - 1min)), k_targeted_horizon},
    // A team app is re-read as a team app.
    {"TeamAppDue", k_next_full, true, list(wake("a", k_now, "ops")), true,
     list(wake("a", k_now, "ops")), k_targeted_horizon},
    // Up to k_targeted_max apps: one GET each; one more: a full pass.
    {"ExactlyMaxDue", k_next_full, true, wakes_at(k_targeted_max, k_now), true,
     wakes_at(k_targeted_max, k_now), k_targeted_horizon},
    {"OneOverMaxDue",
     k_next_full,
     true,
     wakes_at(k_targeted_max + 1, k_now),
     false,
     {},
     k_full_horizon},
    // The apps not due do not count towards the limit.
    {"MaxDueAmongMore", k_next_full, true,
     [] {
         auto w = wakes_at(k_targeted_max, k_now);
         w.push_back(wake("later", k_now + 1min));
         return w;
     }(),
     true, wakes_at(k_targeted_max, k_now), k_targeted_horizon},
    // The config changed since the last full pass: the wakes may be wrong.
    {"ConfigChanged", k_next_full, false, list(wake("a", k_now)), false, {}, k_full_horizon},
    // The full pass is due: it reads everything anyway.
    {"StartedAtNextFull", k_now, true, list(wake("a", k_now)), false, {}, k_full_horizon},
    {"StartedAfterNextFull", k_now - 1ms, true, list(wake("a", k_now)), false, {}, k_full_horizon},
    // The first pass (state zeroed).
    {"FirstPass", sys_ms{}, false, {}, false, {}, k_full_horizon},
    // Woken with nothing due (a timer cancelled, the spin guard): a full pass.
    {"NoWakes", k_next_full, true, {}, false, {}, k_full_horizon},
    // An app that never wakes is never due.
    {"NeverWakesIgnored",
     k_next_full,
     true,
     list(wake("a", time_or_never::never()), wake("b", time_or_never::never())),
     false,
     {},
     k_full_horizon},
    {"NeverWakesAmongDue", k_next_full, true,
     list(wake("a", time_or_never::never()), wake("b", k_now), wake("c", time_or_never::never())),
     true, list(wake("b", k_now)), k_targeted_horizon},
};

INSTANTIATE_TEST_SUITE_P(Schedule, ChoosePassTable, ::testing::ValuesIn(k_choices),
                         [](const ::testing::TestParamInfo<choice_row>& i) {
                             return i.param.name;
                         });

// A full pass's horizon follows the interval: up to the latest next_pass can
// put the next full pass (interval + 10 %), so no wake before it is missed.
TEST(Schedule, FullHorizonIsLatestNextFullPass) {
    schedule_state s;
    const pass_plan p = choose_pass(k_now, s, true, 7s);
    EXPECT_FALSE(p.targeted);
    EXPECT_EQ(as_millis(p.wake_horizon), as_millis(k_now + 7700ms + 1ms));
    // Even a pass that took no time, followed by the latest draw.
    const pass_plan full = choose_pass(k_now, s, true, k_interval);
    next_pass(ok_full(), s, fixed(draw_at::high));
    EXPECT_LT(s.next_full, full.wake_horizon);
}

// After a failed targeted pass the next pass reads everything: next_full
// becomes the start of that pass, whatever next_pass then decides.
TEST(Schedule, FailedTargetedPassMakesNextPassFull) {
    schedule_state s;
    s.next_full = k_next_full;
    s.wakes = list(wake("a", k_now));
    const pass_plan p = choose_pass(k_now, s, true, k_interval);
    ASSERT_TRUE(p.targeted);
    after_pass(p, {false, true, list(wake("a", k_now))}, s);  // its action failed
    EXPECT_EQ(as_millis(s.next_full), as_millis(k_now));
    // next_pass retries after a failure and keeps next_full ...
    pass_result r = failed();
    r.targeted = true;
    r.now = k_now + 2s;
    const decision d = next_pass(r, s, fixed(draw_at::middle));
    EXPECT_EQ(as_millis(s.next_full), as_millis(k_now));
    // ... so the retry is a full pass, though the app is still due.
    const pass_plan retry = choose_pass(r.now + d.wait, s, true, k_interval);
    EXPECT_FALSE(retry.targeted);
}

// A targeted pass's wakes replace those of the apps it re-read, and only
// theirs; the next full pass stays.
TEST(Schedule, SuccessfulTargetedPassUpdatesItsAppsWakesAndKeepsNextFull) {
    schedule_state s;
    s.next_full = k_next_full;
    s.wakes = list(wake("a", k_now), wake("b", k_now + 1h), wake("a", k_now, "ops"));
    const pass_plan p = choose_pass(k_now, s, true, k_interval);
    ASSERT_TRUE(p.targeted);
    ASSERT_EQ(names(p.due), (std::vector<std::string>{"/dev@example.com/a", "ops//a"}));
    after_pass(p, {true, true, list(wake("a", k_now + 2h))}, s);  // the team app: nothing due
    EXPECT_EQ(as_millis(s.next_full), as_millis(k_next_full));
    EXPECT_EQ(names(s.wakes),
              (std::vector<std::string>{"/dev@example.com/b", "/dev@example.com/a"}));
    EXPECT_EQ(next_action(s), time_or_never(k_now + 1h));
}

// A full pass's wakes replace all others.
TEST(Schedule, FullPassReplacesEveryWake) {
    schedule_state s;
    s.next_full = k_next_full;
    s.wakes = list(wake("a", k_now + 1min), wake("b", k_now + 1h));
    const pass_plan p = choose_pass(k_now, s, false, k_interval);
    ASSERT_FALSE(p.targeted);
    after_pass(p, {true, true, list(wake("c", k_now + 3h))}, s);
    EXPECT_EQ(names(s.wakes), (std::vector<std::string>{"/dev@example.com/c"}));
    EXPECT_EQ(next_action(s), time_or_never(k_now + 3h));
    after_pass(p, {true, true, {}}, s);
    EXPECT_EQ(next_action(s), time_or_never::never());
}

// A full pass that read everything but failed an action knows every wake:
// next_full stays, and the retry re-reads the app whose action is due.
TEST(Schedule, FullPassWithAFailedActionKeepsNextFull) {
    schedule_state s;
    s.next_full = k_next_full;
    const pass_plan p = choose_pass(k_now, s, false, k_interval);
    ASSERT_FALSE(p.targeted);
    after_pass(p, {false, true, list(wake("a", k_now))}, s);
    EXPECT_EQ(as_millis(s.next_full), as_millis(k_next_full));
    EXPECT_TRUE(choose_pass(k_now + 5s, s, true, k_interval).targeted);
}

// A full pass whose reads failed (a listing page, an app) has seen only some
// apps' wakes: an app it missed may be due before the next full pass, so the
// next pass reads everything, even if that full pass ran early (a reload).
TEST(Schedule, FullPassWithAFailedReadMakesNextPassFull) {
    schedule_state s;
    s.next_full = k_next_full;
    const pass_plan p = choose_pass(k_now, s, false, k_interval);
    ASSERT_FALSE(p.targeted);
    after_pass(p, {false, false, list(wake("a", k_now))}, s);
    EXPECT_EQ(as_millis(s.next_full), as_millis(k_now));
    EXPECT_FALSE(choose_pass(k_now + 5s, s, true, k_interval).targeted);
}

}  // namespace
}  // namespace keyrot::sched::schedule_test
