#include "common/duration.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <limits>

namespace keyrot {
namespace {

bool mul_add(std::int64_t& acc, std::int64_t n, milliseconds unit_span) {
    const std::int64_t unit = unit_span.count();
    if (n > std::numeric_limits<std::int64_t>::max() / unit) return false;
    if (acc > std::numeric_limits<std::int64_t>::max() - n * unit) return false;
    acc += n * unit;
    return true;
}

std::optional<milliseconds> parse_iso(std::string_view s) {
    // P[nW][nD][T[nH][nM][nS]]
    std::size_t i = 1;
    bool in_time = false, any = false;
    std::int64_t total = 0;
    while (i < s.size()) {
        if (s[i] == 'T') {
            if (in_time) return std::nullopt;
            in_time = true;
            ++i;
            if (i >= s.size()) return std::nullopt;  // "P1DT"
            continue;
        }
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        std::int64_t n = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (n > std::numeric_limits<std::int64_t>::max() / 10) return std::nullopt;
            n = n * 10 + (s[i] - '0');
            ++i;
        }
        if (i >= s.size()) return std::nullopt;
        milliseconds unit{0};
        switch (s[i]) {
            case 'W':
                unit = in_time ? milliseconds(0) : 7 * k_day;
                break;
            case 'D':
                unit = in_time ? milliseconds(0) : k_day;
                break;
            case 'H':
                unit = in_time ? k_hour : milliseconds(0);
                break;
            case 'M':
                unit = in_time ? k_minute : milliseconds(0);
                break;
            case 'S':
                unit = in_time ? k_second : milliseconds(0);
                break;
            default:
                return std::nullopt;
        }
        if (unit == milliseconds(0) || !mul_add(total, n, unit)) return std::nullopt;
        any = true;
        ++i;
    }
    if (!any) return std::nullopt;
    return milliseconds(total);
}

}  // namespace

std::optional<milliseconds> parse_duration(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    if (s.empty()) return std::nullopt;
    if (s == "0") return milliseconds(0);
    if (s[0] == 'P') return parse_iso(s);
    // one or more <digits><unit> groups: "1d12h"
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        std::int64_t n = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (n > std::numeric_limits<std::int64_t>::max() / 10) return std::nullopt;
            n = n * 10 + (s[i] - '0');
            ++i;
        }
        if (i >= s.size()) return std::nullopt;
        milliseconds unit{0};
        if (s.substr(i, 2) == "ms") {
            unit = milliseconds(1);
            i += 2;
        } else {
            switch (s[i]) {
                case 's':
                    unit = k_second;
                    break;
                case 'm':
                    unit = k_minute;
                    break;
                case 'h':
                    unit = k_hour;
                    break;
                case 'd':
                    unit = k_day;
                    break;
                case 'w':
                    unit = 7 * k_day;
                    break;
                default:
                    return std::nullopt;
            }
            ++i;
        }
        if (!mul_add(total, n, unit)) return std::nullopt;
    }
    return milliseconds(total);
}

std::string format_duration(milliseconds span_ms) {
    std::int64_t span = span_ms.count();
    if (span == 0) return "0s";
    std::string out;
    if (span < 0) {
        out = "-";
        span = -span;
    }
    const std::int64_t second = k_second.count(), minute = k_minute.count(), hour = k_hour.count(),
                       day = k_day.count();
    const std::int64_t d = span / day, h = span % day / hour, m = span % hour / minute,
                       s = span % minute / second;
    if (d) out += std::to_string(d) + "d";
    if (h) out += std::to_string(h) + "h";
    if (m && !d) out += std::to_string(m) + "m";
    if (s && !d && !h) out += std::to_string(s) + "s";
    if (out.empty() || out == "-") out += std::to_string(span) + "ms";
    return out;
}

}  // namespace keyrot
