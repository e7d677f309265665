// When the daemon's next pass over one organisation runs, and what it reads:
// pure functions of how the last pass went, the actions it knows are coming,
// the time, the interval and a random draw (docs/rotation.md, "What each pass
// reads"; docs/cli.md, `run`). No I/O, no clock: instants are parameters.
// Spans are std::chrono::milliseconds, instants sys_ms (common/duration.hpp).
//
// next_pass, when:
// - After a failed pass: back off 5 s, 10 s, 20 s, ... up to the interval,
//   each ±10 %.
// - After a successful full pass: the next full pass one interval later,
//   ±10 % (so replicas and restarts do not line up); a targeted pass (a few
//   apps re-read because an action fell due) keeps the full pass it had.
// - Sooner when an action falls due before then: just after its moment
//   (k_due_slack), so the plan sees it due.
// - An action already due that the pass left (it failed, or was held) would
//   make the daemon spin against Apigee: 1 s, 2 s, 4 s, ... up to the interval.
// - A config reloaded during the pass: at once.
//
// choose_pass, what (at the start of a pass):
// - Targeted: before the next full pass, with the config of the last full
//   pass, re-read only the apps whose action falls due by now + k_due_slack,
//   if there are 1 to k_targeted_max of them. Otherwise a full pass.
// - The wakes a pass records (exec::run_options::wake_horizon): a targeted
//   pass up to the next full pass; a full pass up to the latest the next full
//   pass can come (interval + 10 % jitter).
// - after_pass: the wakes a pass recorded replace those of the apps it read
//   (a full pass: all of them). A targeted pass that failed, or a full pass
//   whose reads failed (its wakes are partial), makes the next pass a full one.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

#include "common/duration.hpp"
#include "exec/observer.hpp"  // app_wake

namespace keyrot::sched {

using std::chrono::milliseconds;

inline constexpr milliseconds k_first_backoff = std::chrono::seconds(5);
inline constexpr milliseconds k_min_wait = std::chrono::seconds(1);
inline constexpr milliseconds k_due_slack{250};  // wake just after the due moment
// A wake-up between full passes re-reads just the apps whose action falls due
// (one GET each) when there are at most this many; more, and a full pass is
// the cheaper read.
inline constexpr std::size_t k_targeted_max = 100;

struct pass_result {
    bool ok = false;                    // the pass read everything and no action failed
    bool targeted = false;              // it re-read only the apps with an action due
    bool config_changed = false;        // a reload swapped the config during the pass
    sys_ms now{};                       // when it ended (wall clock)
    milliseconds interval{};            // the configured interval between full passes
    std::optional<sys_ms> next_action;  // the earliest action due over every app; none: never
};

// Carried from one decision to the next; starts zeroed.
struct schedule_state {
    milliseconds backoff{};  // the last wait after a failed pass (0: the last pass was fine)
    int immediate = 0;       // consecutive decisions that found an action already due
    sys_ms next_full{};      // when the next full pass is due
    // When each app's next action falls due: the last full pass's wakes,
    // updated by the targeted passes since (after_pass).
    std::vector<exec::app_wake> wakes;
};

// The earliest of `s.wakes`; never when there is none.
time_or_never next_action(const schedule_state& s);

struct decision {
    milliseconds wait{};   // from pass_result::now; never negative
    const char* why = "";  // "full pass", "next action due", "retry after a failed pass", ...
};

// A uniform draw in [lo, hi] (both included).
using draw_fn = std::function<milliseconds(milliseconds lo, milliseconds hi)>;

decision next_pass(const pass_result& r, schedule_state& s, const draw_fn& draw);

// What a pass about to start reads.
struct pass_plan {
    sys_ms started{};                 // as given to choose_pass
    bool targeted = false;            // re-read `due` alone; false: a full pass
    std::vector<exec::app_wake> due;  // targeted: the apps to re-read; else empty
    sys_ms wake_horizon{};            // record the wakes before this (run_options)
};

// `same_config`: the pass runs with the config the last full pass ran with
// (then `s.wakes` are still what the policies say). Wakes that are never are
// never due.
pass_plan choose_pass(sys_ms started, const schedule_state& s, bool same_config,
                      milliseconds interval);

// What a pass brought back.
struct pass_outcome {
    bool ok = false;                    // it read everything and no action failed
    bool read_everything = false;       // every read succeeded (actions may have failed)
    std::vector<exec::app_wake> wakes;  // the wakes it recorded (up to its horizon)
};

// Once the pass `p` planned has ended (before next_pass): its wakes replace
// those of the apps it read. A failed targeted pass, or a full pass with a
// failed read, leaves the wakes of the apps it could not read unknown, so the
// next pass reads everything. A full pass whose reads all succeeded knows
// every wake though an action failed: its retry may be targeted.
void after_pass(const pass_plan& p, pass_outcome o, schedule_state& s);

}  // namespace keyrot::sched
