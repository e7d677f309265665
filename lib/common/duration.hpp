// Durations in config: "30s", "15m", "12h", "90d", "2w", "0", ISO 8601
// ("P90D", "PT12H", "P1DT2H30M"). A span is a std::chrono::milliseconds, an
// instant a sys_ms (common/time.hpp), an instant that may be "never" a
// time_or_never.
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

inline constexpr milliseconds k_second = std::chrono::seconds(1);
inline constexpr milliseconds k_minute = std::chrono::minutes(1);
inline constexpr milliseconds k_hour = std::chrono::hours(1);
inline constexpr milliseconds k_day = std::chrono::days(1);

// An instant, or never (Apigee's "never expires", a plan that never wakes):
// the type says which, where a -1 once did. Never is later than every instant,
// so comparisons read right for both (`expires_at <= now`: expired; std::min:
// the earlier). There is no arithmetic: plus() keeps never never, at() is the
// instant of one that is not never.
class time_or_never {
  public:
    constexpr time_or_never() = default;                            // never
    constexpr time_or_never(sys_ms at) : at_(at), never_(false) {}  // NOLINT: an instant is one
    static constexpr time_or_never never() { return {}; }

    constexpr bool is_never() const { return never_; }
    constexpr sys_ms at() const {  // precondition: !is_never()
        if (never_) throw std::logic_error("time_or_never::at() of never");
        return at_;
    }
    constexpr std::optional<sys_ms> instant() const {
        return never_ ? std::nullopt : std::optional<sys_ms>(at_);
    }
    // `span` later; never stays never.
    constexpr time_or_never plus(milliseconds span) const {
        return never_ ? *this : time_or_never(at_ + span);
    }

    friend constexpr bool operator==(time_or_never a, time_or_never b) {
        return a.never_ == b.never_ && (a.never_ || a.at_ == b.at_);
    }
    friend constexpr std::strong_ordering operator<=>(time_or_never a, time_or_never b) {
        if (a.never_ || b.never_) return a.never_ <=> b.never_;
        return a.at_ <=> b.at_;
    }

  private:
    sys_ms at_{};
    bool never_ = true;
};

// The earlier of two; never is later than any instant.
constexpr time_or_never earliest(time_or_never a, time_or_never b) { return a < b ? a : b; }

// format_time(), or "never".
inline std::string format_time(time_or_never t) {
    return t.is_never() ? std::string("never") : format_time(t.at());
}

// nullopt when garbled or negative.
std::optional<milliseconds> parse_duration(std::string_view text);

// "90d", "12h", "1d2h", "0s": for messages and `plan` output.
std::string format_duration(milliseconds span);

}  // namespace keyrot
