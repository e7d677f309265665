#include "policy/config.hpp"

namespace keyrot::policy {
namespace {

char fold(char c, bool icase) {
    return icase && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Matches one bracket expression starting at p[i] == '['. Returns the index
// after the closing ']' and sets `hit`; returns npos for a malformed set.
std::size_t match_set(std::string_view p, std::size_t i, char c, bool icase, bool& hit,
                      const char** why = nullptr) {
    const char* unused = nullptr;
    if (!why) why = &unused;
    *why = "unclosed '['";
    ++i;  // '['
    bool negate = false;
    if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
        negate = true;
        ++i;
    }
    bool found = false;
    bool first = true;
    while (i < p.size() && (first || p[i] != ']')) {
        first = false;
        char lo = p[i];
        if (lo == '\\') {
            if (++i >= p.size()) return std::string_view::npos;
            lo = p[i];
        }
        ++i;
        char hi = lo;
        if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
            hi = p[i + 1];
            i += 2;
            if (hi == '\\') {
                if (i >= p.size()) return std::string_view::npos;
                hi = p[i++];
            }
            if (hi < lo) {
                *why = "reversed range in '[...]'";
                return std::string_view::npos;
            }
        }
        const char fc = fold(c, icase);
        if (icase) {
            // Try both cases of c against the (unfolded) range.
            const char uc = fc >= 'a' && fc <= 'z' ? static_cast<char>(fc - 'a' + 'A') : fc;
            if ((fc >= lo && fc <= hi) || (uc >= lo && uc <= hi)) found = true;
        } else if (c >= lo && c <= hi) {
            found = true;
        }
    }
    if (i >= p.size()) return std::string_view::npos;  // no closing ']'
    hit = found != negate;
    return i + 1;
}

bool match(std::string_view p, std::string_view t, bool icase) {
    // Iterative matcher with one backtrack point for the last '*': linear in
    // practice, no recursion on hostile patterns.
    std::size_t pi = 0, ti = 0;
    std::size_t star_p = std::string_view::npos, star_t = 0;
    while (ti < t.size()) {
        if (pi < p.size()) {
            const char pc = p[pi];
            if (pc == '*') {
                star_p = ++pi;
                star_t = ti;
                continue;
            }
            if (pc == '?') {
                ++pi;
                ++ti;
                continue;
            }
            if (pc == '[') {
                bool hit = false;
                const std::size_t next = match_set(p, pi, t[ti], icase, hit);
                if (next == std::string_view::npos) return false;
                if (hit) {
                    pi = next;
                    ++ti;
                    continue;
                }
            } else {
                char lit = pc;
                std::size_t next = pi + 1;
                if (pc == '\\') {
                    if (next >= p.size()) return false;
                    lit = p[next++];
                }
                if (fold(lit, icase) == fold(t[ti], icase)) {
                    pi = next;
                    ++ti;
                    continue;
                }
            }
        }
        if (star_p == std::string_view::npos) return false;
        pi = star_p;
        ti = ++star_t;
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

}  // namespace

std::optional<std::string> glob_error(std::string_view p) {
    if (p.empty()) return "empty pattern";
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '\\') {
            if (i + 1 >= p.size()) return "trailing '\\'";
            ++i;
        } else if (p[i] == '[') {
            bool hit = false;
            const char* why = nullptr;
            const std::size_t next = match_set(p, i, 'a', false, hit, &why);
            if (next == std::string_view::npos)
                return std::string(why) + " at position " + std::to_string(i + 1);
            i = next - 1;
        }
    }
    return std::nullopt;
}

bool glob_valid(std::string_view pattern) { return !glob_error(pattern).has_value(); }

bool glob_match(std::string_view pattern, std::string_view text) {
    return match(pattern, text, false);
}

bool glob_match_icase(std::string_view pattern, std::string_view text) {
    return match(pattern, text, true);
}

}  // namespace keyrot::policy
