// The pure rules of webhook delivery: which answer means what, and when the
// next attempt is. No I/O, no clock, no randomness: `now` and the random
// number are parameters (tests/unit/notify_test.cpp).
//
// Contract:
// - classify(): 2xx delivered; 410 Gone disables the endpoint (permanent: the
//   receiver asked to stop); any other status (3xx are not followed), and no
//   answer at all (status 0: refused, reset, timeout), is retried.
// - The retry schedule is the Standard Webhooks spec's: the first attempt at
//   once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, and
//   24 h after that, each delay jittered by ±10 %. A Retry-After longer than
//   the scheduled delay is honoured (capped at the last step). An event is
//   abandoned once the next attempt would start after first_added + max_age;
//   the last attempt is moved to that deadline so the receiver gets one more
//   chance just before it.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "common/duration.hpp"

namespace keyrot::notify {

// refuse: this event is refused for good (never from classify(): a sink says so).
enum class outcome { delivered, retry, disable, refuse };

// status_or_0: the HTTP status, 0 when no answer came.
outcome classify(int status_or_0);

// The spec's schedule: delays before attempt 1, 2, 3, … (the first is 0).
const std::vector<milliseconds>& spec_retry_schedule();

struct next_attempt {
    bool give_up = false;  // true: abandon (max_age reached)
    sys_ms at{};           // when the next attempt is due (when !give_up)
};

// After `attempts_made` (>= 1) failed attempts of an event first added at
// `first_added`, the last failing at `now`. u01 in [0, 1) drives the jitter.
// `schedule` holds the delays before each attempt (schedule[0] for the first);
// past its end the last delay repeats.
next_attempt schedule_next(int attempts_made, sys_ms first_added, sys_ms now, milliseconds max_age,
                           double u01, std::optional<milliseconds> retry_after = std::nullopt,
                           std::span<const milliseconds> schedule = spec_retry_schedule());

}  // namespace keyrot::notify
