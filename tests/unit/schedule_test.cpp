// The daemon's schedule (lib/sched/schedule.hpp) as a table: how the last pass
// went, what the next decision is. Draws are fixed (lo, 0 or hi).
#include "sched/schedule.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace keyrot::sched {
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

}  // namespace
}  // namespace keyrot::sched
