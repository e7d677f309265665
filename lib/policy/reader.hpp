// The config and policy loader's parts (config.cpp: the config and the public
// API; policy_reader.cpp: one policy; loading.cpp: files, YAML, directories)
// share this: the field tables, the YAML reader with its diagnostics, and the
// functions one part calls in another. Internal to lib/policy.
#pragma once

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>

#include "common/text.hpp"
#include "deliver/config.hpp"
#include "policy/config.hpp"

namespace keyrot::policy::detail {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Known fields. The readers below check every map against these tables, and
// config_fields() / policy_fields() flatten them for the schema test, so the
// loader, the schema and the docs cannot drift apart silently.

using field_table = std::map<std::string, std::vector<std::string>, std::less<>>;

inline const field_table& config_table() {
    static const field_table t = {
        {"", {"apigee", "listen", "interval", "stateDir", "policies", "log", "metrics", "notify"}},
        {"apigee",
         {"flavor", "url", "edge", "auth", "caFile", "timeout", "maxConcurrency",
          "requestsPerSecond"}},
        {"apigee.edge", {"cloud", "appListRows"}},
        {"apigee.auth",
         {"method", "path", "env", "userEnv", "passwordEnv", "tokenUrl", "user", "passwordFile",
          "mfaSeedFile", "passcodeFile"}},
        {"log", {"level", "format"}},
        {"metrics", {"perKey"}},
        // notify.webhooks and emails are lists: their items are checked by
        // notify::parse_config.
        {"notify", {"expiringAt", "maxAge", "outboxMax", "webhooks", "emails"}},
    };
    return t;
}

inline const field_table& policy_table() {
    static const field_table t = {
        // deliver and attributeTargets: checked by deliver::parse_config.
        {"",
         {"name", "organization", "priority", "match", "rotation", "dryRun", "notify", "deliver",
          "attributeTargets"}},
        {"match", {"developers", "appGroups", "apps", "apiProducts", "attributes", "exclude"}},
        {"match.exclude", {"developers", "appGroups", "apps", "apiProducts"}},
        {"rotation",
         {"keyLifetime", "rotateBefore", "maxAge", "overlap", "revoke", "deleteRevokedAfter",
          "method", "window"}},
        {"rotation.window", {"days", "start", "end", "timezone"}},
        {"notify", {"expiringAt"}},
    };
    return t;
}

nlohmann::json yaml_to_json(const YAML::Node& n, const std::string& path,
                            std::map<std::string, std::pair<int, int>>& positions);

// The path of the first key or string in `j` that is not UTF-8 (YAML requires
// it, yaml-cpp does not check, and nlohmann::json throws on dumping it); empty
// when there is none.
inline std::string first_bad_utf8(const nlohmann::json& j, const std::string& path) {
    if (j.is_string()) return valid_utf8(j.get_ref<const std::string&>()) ? "" : path;
    if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it) {
            if (!valid_utf8(it.key())) return path;
            if (auto bad = first_bad_utf8(it.value(), path + "." + it.key()); !bad.empty())
                return bad;
        }
    }
    if (j.is_array())
        for (std::size_t i = 0; i < j.size(); ++i)
            if (auto bad = first_bad_utf8(j[i], path + "[" + std::to_string(i) + "]"); !bad.empty())
                return bad;
    return "";
}

inline std::vector<std::string> flatten(const field_table& t) {
    std::vector<std::string> out;
    for (const auto& [parent, names] : t)
        for (const auto& n : names)
            out.push_back(parent.empty() ? n : std::string(parent).append(".").append(n));
    std::sort(out.begin(), out.end());
    return out;
}

inline std::string join(std::string_view parent, std::string_view name) {
    if (parent.empty()) return std::string(name);
    return std::string(parent) + "." + std::string(name);
}

inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

// The closest known name, if close enough to be a plausible typo.
inline std::optional<std::string> closest(std::string_view name,
                                          const std::vector<std::string>& known) {
    const std::string l = ascii_lower(name);
    std::optional<std::string> best;
    std::size_t best_d = 0;
    for (const auto& k : known) {
        const std::size_t d = edit_distance(l, ascii_lower(k));
        if (!best || d < best_d) {
            best = k;
            best_d = d;
        }
    }
    if (best && best_d <= std::max<std::size_t>(2, name.size() / 3)) return best;
    return std::nullopt;
}

inline std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// ---------------------------------------------------------------------------

struct pos {
    int line = 0;
    int column = 0;
};

inline pos pos_of(const YAML::Mark& m) {
    if (m.is_null() || m.line < 0) return {};
    return {m.line + 1, m.column + 1};
}

inline const char* kind_of(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Null:
            return "nothing (null)";
        case YAML::NodeType::Scalar:
            return n.Tag() == "!" ? "a string" : "a scalar";
        default:
            return "nothing";
    }
}

// One field of a map: its key and value nodes. Errors about a value point at
// the value; a null value has no useful mark of its own, so use the key's.
struct field_ref {
    YAML::Node key;
    YAML::Node value;
    pos at() const {
        const pos p = value.IsNull() ? pos{} : pos_of(value.Mark());
        return p.line ? p : pos_of(key.Mark());
    }
};

using field_map = std::map<std::string, field_ref, std::less<>>;

class reader {
  public:
    reader(std::string file, std::vector<diagnostic>& out, std::string prefix = {})
        : file_(std::move(file)), out_(out), prefix_(std::move(prefix)) {}

    void error(pos p, std::string_view field, std::string message) {
        add(diagnostic::severity::error, p, field, std::move(message));
    }
    void warning(pos p, std::string_view field, std::string message) {
        add(diagnostic::severity::warning, p, field, std::move(message));
    }
    const std::string& file() const { return file_; }

    // Reads a map, reporting unknown and duplicate keys. nullopt (and an
    // error) when the node is not a map; a null node is an empty map.
    std::optional<field_map> map(const YAML::Node& n, pos at, std::string_view path,
                                 const field_table& table) {
        field_map out;
        if (n.IsNull() || !n.IsDefined()) return out;
        if (!n.IsMap()) {
            error(at, path, std::string("expected a map, got ") + kind_of(n));
            return std::nullopt;
        }
        const auto known = table.find(path);
        for (auto it = n.begin(); it != n.end(); ++it) {
            const YAML::Node key = it->first;  // a copy: `it->` yields a temporary proxy
            const pos kp = pos_of(key.Mark());
            if (!key.IsScalar()) {
                error(kp, path, "a key must be a plain name");
                continue;
            }
            const std::string& name = key.Scalar();
            if (out.count(name)) {
                const pos first = pos_of(out[name].key.Mark());
                error(kp, join(path, name),
                      "duplicate key (first at line " + std::to_string(first.line) + ")");
                continue;
            }
            if (known != table.end()) {
                const auto& names = known->second;
                if (std::find(names.begin(), names.end(), name) == names.end()) {
                    std::string msg = "unknown field " + quote(name);
                    if (auto near = closest(name, names))
                        msg += "; did you mean " + quote(*near) + "?";
                    else
                        msg += " (known: " + list(names) + ")";
                    error(kp, join(path, name), std::move(msg));
                    continue;
                }
            }
            out.emplace(name, field_ref{key, it->second});
        }
        return out;
    }

    std::optional<std::string> string(const field_ref& f, std::string_view field) {
        if (!f.value.IsScalar()) {
            error(f.at(), field, std::string("expected a string, got ") + kind_of(f.value));
            return std::nullopt;
        }
        return f.value.Scalar();
    }

    std::optional<bool> boolean(const field_ref& f, std::string_view field) {
        if (f.value.IsScalar() && f.value.Tag() != "!") {
            const std::string v = ascii_lower(f.value.Scalar());
            if (v == "true") return true;
            if (v == "false") return false;
        }
        error(f.at(), field, "expected true or false, got " + describe(f.value));
        return std::nullopt;
    }

    std::optional<long long> integer(const field_ref& f, std::string_view field) {
        if (f.value.IsScalar() && f.value.Tag() != "!") {
            const std::string& s = f.value.Scalar();
            long long v = 0;
            const char* b = s.data();
            if (!s.empty() && s[0] == '+') ++b;
            const auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
            if (ec == std::errc() && p == s.data() + s.size() && b != p) return v;
        }
        error(f.at(), field, "expected an integer, got " + describe(f.value));
        return std::nullopt;
    }

    std::optional<double> number(const field_ref& f, std::string_view field) {
        if (f.value.IsScalar() && f.value.Tag() != "!") {
            const std::string& s = f.value.Scalar();
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(s.c_str(), &end);
            if (!s.empty() && errno == 0 && end == s.c_str() + s.size() && std::isfinite(v) &&
                s.find_first_of("xXnNiI") == std::string::npos)
                return v;
        }
        error(f.at(), field, "expected a number, got " + describe(f.value));
        return std::nullopt;
    }

    // A duration (parse_duration), or "never" when allowed (nullopt inside).
    // The outer optional is empty on error.
    std::optional<std::optional<milliseconds>> duration(const field_ref& f, std::string_view field,
                                                        bool allow_never) {
        if (!f.value.IsScalar()) {
            error(f.at(), field, std::string("expected a duration, got ") + kind_of(f.value));
            return std::nullopt;
        }
        std::string s = f.value.Scalar();
        if (allow_never && ascii_lower(s) == "never") return std::optional<milliseconds>{};
        if (auto d = parse_duration(s)) return std::optional<milliseconds>{*d};
        const auto first = s.find_first_not_of(" \t");
        if (first != std::string::npos && s[first] == '-') {
            error(f.at(), field, "must not be negative, got " + quote(s));
            return std::nullopt;
        }
        std::string msg = "bad duration " + quote(s) +
                          ": use a number and a unit (30s, 15m, "
                          "12h, 90d, 2w) or ISO 8601 (P90D, PT12H)";
        if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
            msg += "; a bare number needs a unit";
        if (allow_never) msg += ", or \"never\"";
        error(f.at(), field, std::move(msg));
        return std::nullopt;
    }

    // A list of strings; a null value is an empty list.
    std::optional<std::vector<std::string>> strings(const field_ref& f, std::string_view field) {
        std::vector<std::string> out;
        if (f.value.IsNull()) return out;
        if (!f.value.IsSequence()) {
            error(f.at(), field,
                  std::string("expected a list of strings, got ") + kind_of(f.value));
            return std::nullopt;
        }
        bool ok = true;
        for (std::size_t i = 0; i < f.value.size(); ++i) {
            const YAML::Node& e = f.value[i];
            if (!e.IsScalar()) {
                error(pos_of(e.Mark()).line ? pos_of(e.Mark()) : f.at(),
                      std::string(field) + "[" + std::to_string(i) + "]",
                      std::string("expected a string, got ") + kind_of(e));
                ok = false;
                continue;
            }
            out.push_back(e.Scalar());
        }
        if (!ok) return std::nullopt;
        return out;
    }

    // A list of globs, each checked with glob_error.
    std::vector<std::string> globs(const field_ref& f, std::string_view field) {
        auto l = strings(f, field);
        if (!l) return {};
        for (std::size_t i = 0; i < l->size(); ++i) {
            if (auto why = glob_error((*l)[i])) {
                const YAML::Node e = f.value[i];
                error(pos_of(e.Mark()), std::string(field) + "[" + std::to_string(i) + "]",
                      "bad glob " + quote((*l)[i]) + ": " + *why);
            }
        }
        return *l;
    }

    // A list of durations above 0 (key.expiring lead times), longest first,
    // without duplicates. nullopt on error.
    std::optional<std::vector<milliseconds>> lead_times(const field_ref& f,
                                                        std::string_view field) {
        std::vector<milliseconds> out;
        if (f.value.IsNull()) return out;
        if (!f.value.IsSequence()) {
            error(f.at(), field,
                  std::string("expected a list of durations such as [30d, 7d, 1d], got ") +
                      kind_of(f.value));
            return std::nullopt;
        }
        bool ok = true;
        for (std::size_t i = 0; i < f.value.size(); ++i) {
            const std::string item = std::string(field) + "[" + std::to_string(i) + "]";
            const field_ref e{f.key, f.value[i]};
            auto d = duration(e, item, false);
            if (!d) {
                ok = false;
            } else if (**d <= milliseconds(0)) {
                error(e.at(), item, "must be greater than 0");
                ok = false;
            } else {
                out.push_back(**d);
            }
        }
        if (!ok) return std::nullopt;
        std::sort(out.begin(), out.end(), std::greater<>());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    }

  private:
    static std::string list(const std::vector<std::string>& names) {
        std::string out;
        for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
        return out;
    }
    static std::string describe(const YAML::Node& n) {
        if (n.IsScalar()) return std::string(kind_of(n)) + " " + quote(n.Scalar());
        return kind_of(n);
    }
    void add(diagnostic::severity s, pos p, std::string_view field, std::string message) {
        out_.push_back({s, file_, p.line, p.column, join(prefix_, field), std::move(message)});
    }

    std::string file_;
    std::vector<diagnostic>& out_;
    std::string prefix_;
};

inline const field_ref* get(const field_map& m, std::string_view name) {
    const auto it = m.find(name);
    return it == m.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// Windows

inline std::optional<int> parse_day(std::string_view s) {
    static const std::pair<const char*, const char*> names[] = {
        {"sun", "sunday"},   {"mon", "monday"}, {"tue", "tuesday"}, {"wed", "wednesday"},
        {"thu", "thursday"}, {"fri", "friday"}, {"sat", "saturday"}};
    const std::string l = ascii_lower(s);
    for (int i = 0; i < 7; ++i)
        if (l == names[i].first || l == names[i].second) return i;
    return std::nullopt;
}

// "HH:MM" (or "H:MM"), after midnight; "24:00" only when allowed.
inline std::optional<std::chrono::minutes> parse_hhmm(std::string_view s, bool allow_24) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 2 || s.size() != colon + 3)
        return std::nullopt;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (i != colon && (s[i] < '0' || s[i] > '9')) return std::nullopt;
    const int h = std::stoi(std::string(s.substr(0, colon)));
    const int m = std::stoi(std::string(s.substr(colon + 1)));
    if (m > 59) return std::nullopt;
    if (h < 24) return std::chrono::hours(h) + std::chrono::minutes(m);
    if (allow_24 && h == 24 && m == 0) return std::chrono::hours(24);
    return std::nullopt;
}

// "UTC" / "Z" -> 0, "+02:00" / "-05:30" -> east of UTC.
inline std::optional<std::chrono::minutes> parse_offset(std::string_view s) {
    const std::string l = ascii_lower(s);
    if (l == "utc" || l == "z") return std::chrono::minutes(0);
    if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
    for (int i : {1, 2, 4, 5})
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
    const int h = (s[1] - '0') * 10 + (s[2] - '0');
    const int m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59) return std::nullopt;
    return (s[0] == '-' ? -1 : 1) * (std::chrono::hours(h) + std::chrono::minutes(m));
}

// policy_reader.cpp
std::optional<policy> read_policy(reader& r, const YAML::Node& n, pos& name_at);
// loading.cpp
bool read_file(const fs::path& path, std::string& text, std::vector<diagnostic>& out);
std::optional<std::vector<YAML::Node>> parse_all(const fs::path& path, const std::string& text,
                                                 std::vector<diagnostic>& out);
policies_result load_policies_impl(const fs::path& path, std::string_view field,
                                   std::optional<pos> field_at, const std::string& cfg_file);

}  // namespace keyrot::policy::detail
