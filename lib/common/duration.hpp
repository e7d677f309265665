// Durations in config: "30s", "15m", "12h", "90d", "2w", "0", ISO 8601
// ("P90D", "PT12H", "P1DT2H30M"). Times in keyrotd are int64 milliseconds;
// an instant that may be "never" is a time_or_never.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/time.hpp"  // format_time and parse_time, for the many that use both

namespace keyrot {

using millis = std::int64_t;  // milliseconds since the epoch, or a span

inline constexpr millis k_second = 1000;
inline constexpr millis k_minute = 60 * k_second;
inline constexpr millis k_hour = 60 * k_minute;
inline constexpr millis k_day = 24 * k_hour;

// An instant, or never (Apigee's "never expires", a plan that never wakes):
// the type says which, where a -1 once did. Never is later than every instant,
// so comparisons read right for both (`expires_at <= now`: expired; std::min:
// the earlier). There is no arithmetic: plus() keeps never never, at() is the
// instant of one that is not never.
class time_or_never {
  public:
    constexpr time_or_never() = default;                            // never
    constexpr time_or_never(millis at) : at_(at), never_(false) {}  // NOLINT: an instant is one
    static constexpr time_or_never never() { return {}; }

    constexpr bool is_never() const { return never_; }
    constexpr millis at() const {  // precondition: !is_never()
        if (never_) throw std::logic_error("time_or_never::at() of never");
        return at_;
    }
    constexpr std::optional<millis> instant() const {
        return never_ ? std::nullopt : std::optional<millis>(at_);
    }
    // `span` later; never stays never.
    constexpr time_or_never plus(millis span) const { return never_ ? *this : at_ + span; }

    friend constexpr bool operator==(time_or_never a, time_or_never b) {
        return a.never_ == b.never_ && (a.never_ || a.at_ == b.at_);
    }
    friend constexpr std::strong_ordering operator<=>(time_or_never a, time_or_never b) {
        if (a.never_ || b.never_) return a.never_ <=> b.never_;
        return a.at_ <=> b.at_;
    }

  private:
    millis at_ = 0;
    bool never_ = true;
};

// The earlier of two; never is later than any instant.
constexpr time_or_never earliest(time_or_never a, time_or_never b) { return a < b ? a : b; }

// format_time(), or "never".
inline std::string format_time(time_or_never t) {
    return t.is_never() ? std::string("never") : format_time(t.at());
}

// std::chrono, where the code has moved to it (lib/sched so far; the rest
// still counts int64 milliseconds): a span is a std::chrono::milliseconds,
// an instant a sys_ms, never an empty optional. At the boundary:
using sys_ms = std::chrono::sys_time<std::chrono::milliseconds>;
constexpr sys_ms as_sys_ms(millis at) { return sys_ms(std::chrono::milliseconds(at)); }
constexpr millis as_millis(sys_ms at) { return at.time_since_epoch().count(); }
constexpr std::optional<sys_ms> as_sys_ms(time_or_never t) {
    return t.is_never() ? std::nullopt : std::optional<sys_ms>(as_sys_ms(t.at()));
}

// nullopt when garbled or negative.
std::optional<millis> parse_duration(std::string_view text);

// "90d", "12h", "1d2h", "0s": for messages and `plan` output.
std::string format_duration(millis span);

}  // namespace keyrot
