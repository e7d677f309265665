// When the daemon's next pass over one organisation runs: a pure function of
// how the last pass went, the actions it knows are coming, the time, the
// interval and a random draw (docs/rotation.md, "When keyrotd runs").
// Spans are std::chrono::milliseconds, instants sys_ms (common/duration.hpp).
//
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
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "common/duration.hpp"

namespace keyrot::sched {

using std::chrono::milliseconds;

inline constexpr milliseconds k_first_backoff = std::chrono::seconds(5);
inline constexpr milliseconds k_min_wait = std::chrono::seconds(1);
inline constexpr milliseconds k_due_slack{250};  // wake just after the due moment

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
};

struct decision {
    milliseconds wait{};   // from pass_result::now; never negative
    const char* why = "";  // "full pass", "next action due", "retry after a failed pass", ...
};

// A uniform draw in [lo, hi] (both included).
using draw_fn = std::function<milliseconds(milliseconds lo, milliseconds hi)>;

decision next_pass(const pass_result& r, schedule_state& s, const draw_fn& draw);

}  // namespace keyrot::sched
