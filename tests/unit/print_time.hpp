// How GoogleTest prints instants in a failure message: RFC 3339 text, not the
// bytes of a time_point. gtest finds PrintTo by argument-dependent lookup, so
// the one for sys_ms (a std::chrono type) has to be declared in std::chrono:
// a test-only liberty (the standard library of GCC 12 has no operator<< for
// sys_time to use instead).
#pragma once

#include <ostream>

#include "common/duration.hpp"

namespace std::chrono {
inline void PrintTo(const keyrot::sys_ms& t, std::ostream* os) { *os << keyrot::format_time_ms(t); }
}  // namespace std::chrono

namespace keyrot {
inline void PrintTo(const time_or_never& t, std::ostream* os) {
    *os << (t.is_never() ? std::string("never") : format_time_ms(t.at()));
}
}  // namespace keyrot
