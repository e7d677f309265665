// Durations in config: "30s", "15m", "12h", "90d", "2w", "0", ISO 8601
// ("P90D", "PT12H", "P1DT2H30M"). All times in keyrotd are int64 milliseconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/time.hpp"  // format_time and parse_time, for the many that use both

namespace keyrot {

using millis = std::int64_t;  // milliseconds since the epoch, or a span

inline constexpr millis k_second = 1000;
inline constexpr millis k_minute = 60 * k_second;
inline constexpr millis k_hour = 60 * k_minute;
inline constexpr millis k_day = 24 * k_hour;
inline constexpr millis k_never = -1;  // Apigee's "never expires"

// The earlier of two instants, where k_never (never) is later than any.
constexpr millis earliest(millis a, millis b) {
    if (a == k_never) return b;
    if (b == k_never) return a;
    return a < b ? a : b;
}

// nullopt when garbled or negative.
std::optional<millis> parse_duration(std::string_view text);

// "90d", "12h", "1d2h", "0s": for messages and `plan` output.
std::string format_duration(millis span);

}  // namespace keyrot
