// Instants as RFC 3339 text and back, through Howard Hinnant's date library
// (libhowardhinnant-date-dev): the calendar arithmetic is the library's.
// Instants are int64 milliseconds since the epoch (common/duration.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyrot {

// "2026-11-25T12:00:00Z" (whole seconds, floored). For `plan`, `inventory`
// and messages; format_time(time_or_never) (common/duration.hpp) prints "never".
std::string format_time(std::int64_t ts);

// "2026-11-25T12:00:00.123Z" (RFC 3339, UTC, milliseconds); instants before
// 1970 too (floor division). For audit records, logs and events.
std::string format_time_ms(std::int64_t ts);

// "2026-11-25T12:00:00.123000Z": always 6 fractional digits, as Kubernetes'
// MicroTime (the API server decodes acquireTime/renewTime with Go's layout
// "2006-01-02T15:04:05.000000Z07:00" and answers anything else 400).
std::string format_time_us(std::int64_t ts);

// RFC 3339: "YYYY-MM-DDThh:mm:ss", a fraction of 1 to 9 digits (truncated to
// milliseconds), then "Z" or "+hh:mm"/"-hh:mm" ('t' and 'z' in either case).
// nullopt for anything else, or a date or time that does not exist.
std::optional<std::int64_t> parse_time(std::string_view text);

}  // namespace keyrot
