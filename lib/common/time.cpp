#include "common/time.hpp"

#include <date/date.h>

#include <cctype>
#include <chrono>
#include <sstream>

namespace keyrot {
namespace {

bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// "dddd-dd-ddTdd:dd:dd": the fixed part, which date::parse reads more
// leniently (a year of 2 digits, a single-digit month).
bool fixed_part(std::string_view s) {
    static constexpr std::string_view k_shape = "dddd-dd-ddTdd:dd:dd";
    if (s.size() < k_shape.size()) return false;
    for (std::size_t i = 0; i < k_shape.size(); ++i) {
        const char want = k_shape[i];
        if (want == 'd' ? !digit(s[i]) : s[i] != want) return false;
    }
    return true;
}

}  // namespace

std::string format_time(sys_ms ts) {
    return date::format("%FT%TZ", date::floor<std::chrono::seconds>(ts));
}

std::string format_time_ms(sys_ms ts) { return date::format("%FT%TZ", ts); }

std::string format_time_us(sys_ms ts) {
    return date::format("%FT%TZ", date::sys_time<std::chrono::microseconds>{ts});
}

std::optional<sys_ms> parse_time(std::string_view text) {
    std::string s(text);
    if (s.size() > 10 && s[10] == 't') s[10] = 'T';
    if (!s.empty() && s.back() == 'z') s.back() = 'Z';
    if (!fixed_part(s)) return std::nullopt;
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        std::size_t n = 0;
        while (i + 1 + n < s.size() && digit(s[i + 1 + n])) ++n;
        if (n == 0 || n > 9) return std::nullopt;
        // Truncated to milliseconds (date::parse would round to its precision).
        const std::size_t keep = n < 3 ? n : 3;
        s.erase(i + 1 + keep, n - keep);
    }
    std::istringstream in(s);
    sys_ms tp;
    if (!s.empty() && s.back() == 'Z') {
        in >> date::parse("%FT%TZ", tp);
    } else {
        std::chrono::minutes offset{};
        in >> date::parse("%FT%T%Ez", tp, offset);  // the offset is applied: tp is UTC
    }
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) return std::nullopt;
    return tp;
}

}  // namespace keyrot
