#include "common/duration.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <limits>

namespace keyrot {
namespace {

bool mul_add(millis& acc, millis n, millis unit) {
    if (n > std::numeric_limits<millis>::max() / unit) return false;
    if (acc > std::numeric_limits<millis>::max() - n * unit) return false;
    acc += n * unit;
    return true;
}

std::optional<millis> parse_iso(std::string_view s) {
    // P[nW][nD][T[nH][nM][nS]]
    std::size_t i = 1;
    bool in_time = false, any = false;
    millis total = 0;
    while (i < s.size()) {
        if (s[i] == 'T') {
            if (in_time) return std::nullopt;
            in_time = true;
            ++i;
            if (i >= s.size()) return std::nullopt;  // "P1DT"
            continue;
        }
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        millis n = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (n > std::numeric_limits<millis>::max() / 10) return std::nullopt;
            n = n * 10 + (s[i] - '0');
            ++i;
        }
        if (i >= s.size()) return std::nullopt;
        millis unit = 0;
        switch (s[i]) {
            case 'W':
                unit = in_time ? 0 : 7 * k_day;
                break;
            case 'D':
                unit = in_time ? 0 : k_day;
                break;
            case 'H':
                unit = in_time ? k_hour : 0;
                break;
            case 'M':
                unit = in_time ? k_minute : 0;
                break;
            case 'S':
                unit = in_time ? k_second : 0;
                break;
            default:
                return std::nullopt;
        }
        if (unit == 0 || !mul_add(total, n, unit)) return std::nullopt;
        any = true;
        ++i;
    }
    if (!any) return std::nullopt;
    return total;
}

}  // namespace

std::optional<millis> parse_duration(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    if (s.empty()) return std::nullopt;
    if (s == "0") return 0;
    if (s[0] == 'P') return parse_iso(s);
    // one or more <digits><unit> groups: "1d12h"
    millis total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        millis n = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (n > std::numeric_limits<millis>::max() / 10) return std::nullopt;
            n = n * 10 + (s[i] - '0');
            ++i;
        }
        if (i >= s.size()) return std::nullopt;
        millis unit = 0;
        if (s.substr(i, 2) == "ms") {
            unit = 1;
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
    return total;
}

std::string format_duration(millis span) {
    if (span == 0) return "0s";
    std::string out;
    if (span < 0) {
        out = "-";
        span = -span;
    }
    const millis d = span / k_day, h = span % k_day / k_hour, m = span % k_hour / k_minute,
                 s = span % k_minute / k_second;
    if (d) out += std::to_string(d) + "d";
    if (h) out += std::to_string(h) + "h";
    if (m && !d) out += std::to_string(m) + "m";
    if (s && !d && !h) out += std::to_string(s) + "s";
    if (out.empty() || out == "-") out += std::to_string(span) + "ms";
    return out;
}

}  // namespace keyrot
