// Instants as RFC 3339 text and back, through Howard Hinnant's date library
// (libhowardhinnant-date-dev): the calendar arithmetic is the library's.
// An instant is a sys_ms: milliseconds since the epoch, as std::chrono counts
// them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyrot {

using std::chrono::milliseconds;                     // a span
using sys_ms = std::chrono::sys_time<milliseconds>;  // an instant

// At the boundaries that count int64 milliseconds (Apigee's JSON, the
// journal, the emulator): an instant from its count, and back.
constexpr sys_ms as_sys_ms(std::int64_t at) { return sys_ms(milliseconds(at)); }
constexpr std::int64_t as_millis(sys_ms at) { return at.time_since_epoch().count(); }

// The system clock, to the millisecond.
inline sys_ms system_now() {
    return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
}

// "2026-11-25T12:00:00Z" (whole seconds, floored). For `plan`, `inventory`
// and messages; format_time(time_or_never) (common/duration.hpp) prints "never".
std::string format_time(sys_ms ts);

// "2026-11-25T12:00:00.123Z" (RFC 3339, UTC, milliseconds); instants before
// 1970 too (floor division). For audit records, logs and events.
std::string format_time_ms(sys_ms ts);

// "2026-11-25T12:00:00.123000Z": always 6 fractional digits, as Kubernetes'
// MicroTime (the API server decodes acquireTime/renewTime with Go's layout
// "2006-01-02T15:04:05.000000Z07:00" and answers anything else 400).
std::string format_time_us(sys_ms ts);

// RFC 3339: "YYYY-MM-DDThh:mm:ss", a fraction of 1 to 9 digits (truncated to
// milliseconds), then "Z" or "+hh:mm"/"-hh:mm" ('t' and 'z' in either case).
// nullopt for anything else, or a date or time that does not exist.
std::optional<sys_ms> parse_time(std::string_view text);

}  // namespace keyrot
