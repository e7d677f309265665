#include "notify/delivery.hpp"

#include <algorithm>
#include <cmath>

namespace keyrot::notify {

outcome classify(int status) {
    if (status >= 200 && status <= 299) return outcome::delivered;
    if (status == 410) return outcome::disable;
    return outcome::retry;
}

const std::vector<milliseconds>& spec_retry_schedule() {
    static const std::vector<milliseconds> s = {
        milliseconds(0), 5 * k_second, 5 * k_minute, 30 * k_minute, 2 * k_hour,
        5 * k_hour,      10 * k_hour,  14 * k_hour,  20 * k_hour,   24 * k_hour};
    return s;
}

next_attempt schedule_next(int attempts_made, sys_ms first_added, sys_ms now, milliseconds max_age,
                           double u01, std::optional<milliseconds> retry_after,
                           std::span<const milliseconds> schedule) {
    next_attempt out;
    const sys_ms deadline = first_added + max_age;
    if (schedule.empty() || now >= deadline) {
        out.give_up = true;
        return out;
    }
    const std::size_t i = std::min<std::size_t>(
        static_cast<std::size_t>(std::max(attempts_made, 1)), schedule.size() - 1);
    milliseconds delay = schedule[i];
    u01 = std::clamp(u01, 0.0, 1.0);
    delay += milliseconds(std::llround(static_cast<double>(delay.count()) * 0.2 * (u01 - 0.5)));
    if (retry_after && *retry_after > delay) delay = std::min(*retry_after, schedule.back());
    out.at = now + std::max(delay, milliseconds(0));
    // One last chance at the deadline rather than none.
    if (out.at > deadline) out.at = deadline;
    return out;
}

}  // namespace keyrot::notify
