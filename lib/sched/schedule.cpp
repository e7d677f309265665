#include "sched/schedule.hpp"

#include <algorithm>

namespace keyrot::sched {

decision next_pass(const pass_result& r, schedule_state& s, const draw_fn& draw) {
    const milliseconds interval = std::max(r.interval, milliseconds::zero());
    auto jitter = [&](milliseconds base, milliseconds spread) {
        return base + draw(-spread, spread);
    };
    decision d;
    if (r.config_changed) {
        d.why = "config reloaded during the pass";
    } else if (!r.ok) {
        // Failed: retry soon, but never at full speed.
        s.backoff = s.backoff == milliseconds::zero() ? k_first_backoff : s.backoff * 2;
        s.backoff = std::min(s.backoff, interval);
        d.wait = jitter(s.backoff, s.backoff / 10);
        d.why = "retry after a failed pass";
        s.immediate = 0;
    } else {
        s.backoff = milliseconds::zero();
        if (!r.targeted) s.next_full = r.now + jitter(interval, interval / 10);
        d.wait = s.next_full - r.now;
        d.why = "full pass";
        if (r.next_action && *r.next_action < r.now + d.wait - k_due_slack) {
            d.wait = *r.next_action + k_due_slack - r.now;
            d.why = "next action due";
        }
        if (r.next_action && *r.next_action <= r.now) {
            // Due already, yet the pass left it: once is fine; repeated, it
            // would spin against Apigee, so back off (1 s, 2 s, 4 s, ...).
            d.wait =
                std::min(k_min_wait * (std::int64_t{1} << std::min(s.immediate, 20)), interval);
            d.why = "action still due";
            ++s.immediate;
        } else {
            s.immediate = 0;
        }
    }
    d.wait = std::max(d.wait, milliseconds::zero());
    return d;
}

time_or_never next_action(const schedule_state& s) {
    time_or_never at;
    for (const auto& w : s.wakes) at = earliest(at, w.at);
    return at;
}

pass_plan choose_pass(sys_ms started, const schedule_state& s, bool same_config,
                      milliseconds interval) {
    pass_plan p;
    p.started = started;
    // A new config may match other apps, or plan them otherwise: only a full
    // pass knows. Once the full pass is due, it reads everything anyway.
    if (same_config && started < s.next_full) {
        for (const auto& w : s.wakes)
            if (w.at <= started + k_due_slack) p.due.push_back(w);  // never is never due
    }
    p.targeted = !p.due.empty() && p.due.size() <= k_targeted_max;
    if (!p.targeted) p.due.clear();  // too many: one listing is the cheaper read
    // A targeted pass keeps the next full pass: wakes before it. A full pass
    // records up to the latest its successor can come (next_pass: +10 %).
    p.wake_horizon = p.targeted ? s.next_full + milliseconds(1)
                                : started + interval + interval / 10 + milliseconds(1);
    return p;
}

void after_pass(const pass_plan& p, pass_outcome o, schedule_state& s) {
    if (p.targeted) {
        std::erase_if(s.wakes, [&](const exec::app_wake& w) {
            return std::any_of(p.due.begin(), p.due.end(), [&](const exec::app_wake& d) {
                return d.developer == w.developer && d.team == w.team && d.app == w.app;
            });
        });
        for (auto& w : o.wakes) s.wakes.push_back(std::move(w));
    } else {
        s.wakes = std::move(o.wakes);
    }
    if ((p.targeted && !o.ok) || !o.read_everything) s.next_full = p.started;
}

}  // namespace keyrot::sched
