#include "policy/config.hpp"

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

namespace keyrot::policy {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Known fields. The readers below check every map against these tables, and
// config_fields() / policy_fields() flatten them for the schema test, so the
// loader, the schema and the docs cannot drift apart silently.

using field_table = std::map<std::string, std::vector<std::string>, std::less<>>;

const field_table& config_table() {
    static const field_table t = {
        {"", {"apigee", "listen", "interval", "stateDir", "policies", "log", "metrics", "notify"}},
        {"apigee", {"url", "auth", "caFile", "timeout", "maxConcurrency", "requestsPerSecond"}},
        {"apigee.auth", {"method", "path", "env", "userEnv", "passwordEnv"}},
        {"log", {"level", "format"}},
        {"metrics", {"perKey"}},
        // notify.webhooks and emails are lists: their items are checked by
        // notify::parse_config.
        {"notify", {"expiringAt", "maxAge", "outboxMax", "webhooks", "emails"}},
    };
    return t;
}

const field_table& policy_table() {
    static const field_table t = {
        // deliver and attributeTargets: checked by deliver::parse_config.
        {"",
         {"name", "organization", "priority", "match", "rotation", "dryRun", "notify", "deliver",
          "attributeTargets"}},
        {"match", {"developers", "apps", "apiProducts", "attributes", "exclude"}},
        {"match.exclude", {"developers", "apps", "apiProducts"}},
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
std::string first_bad_utf8(const nlohmann::json& j, const std::string& path) {
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

std::vector<std::string> flatten(const field_table& t) {
    std::vector<std::string> out;
    for (const auto& [parent, names] : t)
        for (const auto& n : names) out.push_back(parent.empty() ? n : parent + "." + n);
    std::sort(out.begin(), out.end());
    return out;
}

std::string join(std::string_view parent, std::string_view name) {
    if (parent.empty()) return std::string(name);
    return std::string(parent) + "." + std::string(name);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
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
std::optional<std::string> closest(std::string_view name, const std::vector<std::string>& known) {
    const std::string l = lower(name);
    std::optional<std::string> best;
    std::size_t best_d = 0;
    for (const auto& k : known) {
        const std::size_t d = edit_distance(l, lower(k));
        if (!best || d < best_d) {
            best = k;
            best_d = d;
        }
    }
    if (best && best_d <= std::max<std::size_t>(2, name.size() / 3)) return best;
    return std::nullopt;
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// ---------------------------------------------------------------------------

struct pos {
    int line = 0;
    int column = 0;
};

pos pos_of(const YAML::Mark& m) {
    if (m.is_null() || m.line < 0) return {};
    return {m.line + 1, m.column + 1};
}

const char* kind_of(const YAML::Node& n) {
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
            const std::string v = lower(f.value.Scalar());
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
    std::optional<std::optional<millis>> duration(const field_ref& f, std::string_view field,
                                                  bool allow_never) {
        if (!f.value.IsScalar()) {
            error(f.at(), field, std::string("expected a duration, got ") + kind_of(f.value));
            return std::nullopt;
        }
        std::string s = f.value.Scalar();
        if (allow_never && lower(s) == "never") return std::optional<millis>{};
        if (auto d = parse_duration(s)) return std::optional<millis>{*d};
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
    std::optional<std::vector<millis>> lead_times(const field_ref& f, std::string_view field) {
        std::vector<millis> out;
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
            } else if (**d <= 0) {
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

const field_ref* get(const field_map& m, std::string_view name) {
    const auto it = m.find(name);
    return it == m.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// Windows

std::optional<int> parse_day(std::string_view s) {
    static const std::pair<const char*, const char*> names[] = {
        {"sun", "sunday"},   {"mon", "monday"}, {"tue", "tuesday"}, {"wed", "wednesday"},
        {"thu", "thursday"}, {"fri", "friday"}, {"sat", "saturday"}};
    const std::string l = lower(s);
    for (int i = 0; i < 7; ++i)
        if (l == names[i].first || l == names[i].second) return i;
    return std::nullopt;
}

// "HH:MM" (or "H:MM") to minutes; "24:00" only when allowed.
std::optional<int> parse_hhmm(std::string_view s, bool allow_24) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 2 || s.size() != colon + 3)
        return std::nullopt;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (i != colon && (s[i] < '0' || s[i] > '9')) return std::nullopt;
    const int h = std::stoi(std::string(s.substr(0, colon)));
    const int m = std::stoi(std::string(s.substr(colon + 1)));
    if (m > 59) return std::nullopt;
    if (h < 24) return h * 60 + m;
    if (allow_24 && h == 24 && m == 0) return 24 * 60;
    return std::nullopt;
}

// "UTC" / "Z" -> 0, "+02:00" / "-05:30" -> minutes east of UTC.
std::optional<int> parse_offset(std::string_view s) {
    const std::string l = lower(s);
    if (l == "utc" || l == "z") return 0;
    if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
    for (int i : {1, 2, 4, 5})
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
    const int h = (s[1] - '0') * 10 + (s[2] - '0');
    const int m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59) return std::nullopt;
    return (s[0] == '-' ? -1 : 1) * (h * 60 + m);
}

std::optional<time_window> read_window(reader& r, const field_ref& f) {
    const std::string path = "rotation.window";
    auto m = r.map(f.value, f.at(), path, policy_table());
    if (!m) return std::nullopt;
    time_window w;
    if (const auto* d = get(*m, "days")) {
        if (auto names = r.strings(*d, path + ".days")) {
            for (std::size_t i = 0; i < names->size(); ++i) {
                if (auto day = parse_day((*names)[i])) {
                    if (std::find(w.days.begin(), w.days.end(), *day) == w.days.end())
                        w.days.push_back(*day);
                } else {
                    r.error(pos_of(d->value[i].Mark()), path + ".days[" + std::to_string(i) + "]",
                            "bad day " + quote((*names)[i]) +
                                ": use mon, tue, wed, thu, fri, sat or sun");
                }
            }
            std::sort(w.days.begin(), w.days.end());
        }
    }
    bool times_ok = true;
    pos start_at = f.at();
    for (const char* name : {"start", "end"}) {
        const auto* t = get(*m, name);
        if (!t) continue;
        const auto s = r.string(*t, path + "." + name);
        if (!s) {
            times_ok = false;
            continue;
        }
        const bool is_end = std::string_view(name) == "end";
        const auto minutes = parse_hhmm(*s, is_end);
        if (!minutes) {
            r.error(t->at(), path + "." + name,
                    "bad time " + quote(*s) + ": expected \"HH:MM\" from 00:00 to " +
                        (is_end ? "24:00" : "23:59"));
            times_ok = false;
            continue;
        }
        (is_end ? w.end_minute : w.start_minute) = *minutes;
        if (!is_end) start_at = t->at();
    }
    if (times_ok && w.start_minute >= w.end_minute) {
        const auto* e = get(*m, "end");
        r.error(e ? e->at() : start_at, path + ".end",
                "window must end after it starts (start " + std::to_string(w.start_minute / 60) +
                    ":" + (w.start_minute % 60 < 10 ? "0" : "") +
                    std::to_string(w.start_minute % 60) +
                    "); windows over midnight are not "
                    "supported: use 00:00-24:00 or two policies");
    }
    if (const auto* tz = get(*m, "timezone")) {
        if (auto s = r.string(*tz, path + ".timezone")) {
            if (auto off = parse_offset(*s)) {
                w.timezone = *s;
                w.utc_offset_minutes = *off;
            } else if (s->find('/') != std::string::npos ||
                       (s->size() >= 3 && std::isalpha(static_cast<unsigned char>((*s)[0])))) {
                r.error(tz->at(), path + ".timezone",
                        "named time zones (" + quote(*s) +
                            ") are not supported yet: use \"UTC\" or a fixed offset like "
                            "\"+02:00\" or \"-05:30\"");
            } else {
                r.error(tz->at(), path + ".timezone",
                        "bad time zone " + quote(*s) +
                            ": use \"UTC\" or a fixed offset like \"+02:00\" or \"-05:30\"");
            }
        }
    }
    return w;
}

// ---------------------------------------------------------------------------
// Policies

struct policy_marks {
    pos self, key_lifetime, rotate_before, overlap, max_age;
};

std::optional<policy> read_policy(reader& r, const YAML::Node& n, pos& name_at) {
    const pos self = pos_of(n.Mark());
    if (!n.IsMap()) {
        r.error(self, "", std::string("expected a policy (a map), got ") + kind_of(n));
        return std::nullopt;
    }
    auto m = r.map(n, self, "", policy_table());
    if (!m) return std::nullopt;

    policy p;
    p.source = r.file();
    policy_marks at{self, self, self, self, self};
    name_at = self;

    if (const auto* f = get(*m, "name")) {
        name_at = f->at();
        if (auto s = r.string(*f, "name")) {
            p.name = *s;
            if (s->empty()) r.error(f->at(), "name", "must not be empty");
        }
    } else {
        r.error(self, "name", "missing: every policy needs a name");
    }
    if (const auto* f = get(*m, "organization")) {
        if (auto s = r.string(*f, "organization")) {
            p.organization = *s;
            if (s->empty()) r.error(f->at(), "organization", "must not be empty");
        }
    } else {
        r.error(self, "organization", "missing: every policy needs the Apigee organization");
    }
    if (const auto* f = get(*m, "priority")) {
        if (auto v = r.integer(*f, "priority")) {
            if (*v < -1000000 || *v > 1000000)
                r.error(f->at(), "priority", "out of range (-1000000 to 1000000)");
            else
                p.priority = static_cast<int>(*v);
        }
    }
    if (const auto* f = get(*m, "dryRun"))
        if (auto b = r.boolean(*f, "dryRun")) p.dry_run = *b;
    {
        // deliver / attributeTargets: as JSON, checked by lib/deliver (docs/delivery.md).
        nlohmann::json dj = nlohmann::json::object();
        std::map<std::string, std::pair<int, int>> positions;
        pos first{};
        for (const char* key : {"deliver", "attributeTargets"})
            if (const auto* f = get(*m, key)) {
                dj[key] = yaml_to_json(f->value, key, positions);
                if (!first.line) first = f->at();
            }
        if (const auto bad = first_bad_utf8(dj, ""); !bad.empty()) {
            r.error(first, bad.substr(1), "is not valid UTF-8");
        } else if (!dj.empty()) {
            if (auto parsed = deliver::parse_config(dj); !parsed)
                r.error(first, "deliver", parsed.err().message);
            else
                p.deliver_json = dj.dump();
        }
    }
    if (const auto* f = get(*m, "notify")) {
        if (auto nm = r.map(f->value, f->at(), "notify", policy_table()))
            if (const auto* g = get(*nm, "expiringAt"))
                if (auto leads = r.lead_times(*g, "notify.expiringAt"))
                    p.notify_expiring_at = *leads;
    }

    if (const auto* f = get(*m, "match")) {
        if (auto mm = r.map(f->value, f->at(), "match", policy_table())) {
            if (const auto* g = get(*mm, "developers"))
                p.match.developers = r.globs(*g, "match.developers");
            if (const auto* g = get(*mm, "apps")) p.match.apps = r.globs(*g, "match.apps");
            if (const auto* g = get(*mm, "apiProducts"))
                p.match.api_products = r.globs(*g, "match.apiProducts");
            if (const auto* g = get(*mm, "attributes")) {
                if (!g->value.IsNull() && !g->value.IsMap()) {
                    r.error(g->at(), "match.attributes",
                            std::string("expected a map of name: value, got ") + kind_of(g->value));
                } else if (g->value.IsMap()) {
                    std::set<std::string> seen;
                    for (auto it = g->value.begin(); it != g->value.end(); ++it) {
                        const std::string key =
                            it->first.IsScalar() ? it->first.Scalar() : std::string();
                        const std::string field = "match.attributes." + key;
                        if (!seen.insert(key).second) {
                            r.error(pos_of(it->first.Mark()), field, "duplicate key");
                            continue;
                        }
                        if (auto v = r.string(field_ref{it->first, it->second}, field))
                            p.match.attributes.emplace_back(key, *v);
                    }
                }
            }
            if (const auto* g = get(*mm, "exclude")) {
                if (auto ex = r.map(g->value, g->at(), "match.exclude", policy_table())) {
                    if (const auto* h = get(*ex, "developers"))
                        p.match.exclude.developers = r.globs(*h, "match.exclude.developers");
                    if (const auto* h = get(*ex, "apps"))
                        p.match.exclude.apps = r.globs(*h, "match.exclude.apps");
                    if (const auto* h = get(*ex, "apiProducts"))
                        p.match.exclude.api_products = r.globs(*h, "match.exclude.apiProducts");
                }
            }
        }
    }

    bool lifetime_explicit = false, rotate_before_explicit = false, overlap_explicit = false;
    bool durations_ok = true;
    auto& rot = p.rotation;
    if (const auto* f = get(*m, "rotation")) {
        if (auto rm = r.map(f->value, f->at(), "rotation", policy_table())) {
            auto dur = [&](const char* name, bool never, auto&& store) {
                const auto* g = get(*rm, name);
                if (!g) return false;
                const std::string field = std::string("rotation.") + name;
                if (auto d = r.duration(*g, field, never))
                    store(*d, g->at());
                else
                    durations_ok = false;
                return true;
            };
            lifetime_explicit = dur("keyLifetime", true, [&](std::optional<millis> d, pos p0) {
                at.key_lifetime = p0;
                rot.key_lifetime = d;
                if (d && *d == 0) {
                    r.error(p0, "rotation.keyLifetime",
                            "must be greater than 0 (or \"never\" for keys that do not expire)");
                    durations_ok = false;
                }
            });
            rotate_before_explicit =
                dur("rotateBefore", false, [&](std::optional<millis> d, pos p0) {
                    at.rotate_before = p0;
                    rot.rotate_before = *d;
                });
            dur("maxAge", false, [&](std::optional<millis> d, pos p0) {
                at.max_age = p0;
                rot.max_age = *d;
            });
            overlap_explicit = dur("overlap", false, [&](std::optional<millis> d, pos p0) {
                at.overlap = p0;
                rot.overlap = *d;
            });
            dur("deleteRevokedAfter", false,
                [&](std::optional<millis> d, pos) { rot.delete_revoked_after = *d; });
            if (const auto* g = get(*rm, "revoke"))
                if (auto b = r.boolean(*g, "rotation.revoke")) rot.revoke = *b;
            if (const auto* g = get(*rm, "method")) {
                if (auto s = r.string(*g, "rotation.method")) {
                    if (*s == "import")
                        rot.method = rotation_method::import_key;
                    else if (*s == "generate")
                        rot.method = rotation_method::generate;
                    else
                        r.error(g->at(), "rotation.method",
                                "unknown method " + quote(*s) + ": use import or generate");
                }
            }
            if (const auto* g = get(*rm, "window")) rot.window = read_window(r, *g);
        }
    }

    if (durations_ok) {
        const auto shown = [](millis d, bool explicit_) {
            return format_duration(d) + (explicit_ ? "" : ", the default");
        };
        if (rot.key_lifetime) {
            const millis kl = *rot.key_lifetime;
            const pos where_rb = rotate_before_explicit ? at.rotate_before : at.key_lifetime;
            if (rot.rotate_before >= kl)
                r.error(where_rb, "rotation.rotateBefore",
                        "rotateBefore (" + shown(rot.rotate_before, rotate_before_explicit) +
                            ") must be shorter than keyLifetime (" + shown(kl, lifetime_explicit) +
                            "), or every new key would be due at once");
            const pos where_ov = overlap_explicit ? at.overlap : at.key_lifetime;
            if (rot.overlap >= kl)
                r.error(where_ov, "rotation.overlap",
                        "overlap (" + shown(rot.overlap, overlap_explicit) +
                            ") must be shorter than keyLifetime (" + shown(kl, lifetime_explicit) +
                            ")");
        }
        if (rot.max_age > 0 && rot.overlap >= rot.max_age)
            r.error(overlap_explicit ? at.overlap : at.max_age, "rotation.overlap",
                    "overlap (" + shown(rot.overlap, overlap_explicit) +
                        ") must be shorter than maxAge (" + format_duration(rot.max_age) + ")");
        if (rot.overlap > 0 && rot.overlap < 5 * k_minute)
            r.warning(at.overlap, "rotation.overlap",
                      "overlap " + format_duration(rot.overlap) +
                          " is under 5 minutes: Apigee caches keys for up to 180 s, so clients "
                          "may be refused after the old key is revoked");
    }
    return p;
}

// Reads a whole file into `text`; false (and a diagnostic) when it cannot.
bool read_file(const fs::path& path, std::string& text, std::vector<diagnostic>& out) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        out.push_back(
            {diagnostic::severity::error, path.string(), 0, 0, "", "cannot read: is a directory"});
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int err = errno;
        out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                       std::string("cannot read: ") + std::strerror(err ? err : ENOENT)});
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        out.push_back({diagnostic::severity::error, path.string(), 0, 0, "", "cannot read"});
        return false;
    }
    text = ss.str();
    return true;
}

// Finds the first alias (`*name`) in a YAML stream. Config files have no use
// for anchors and aliases, and aliases are how a small file expands into an
// enormous tree ("billion laughs"): they are refused before loading.
class alias_finder : public YAML::EventHandler {
  public:
    std::optional<YAML::Mark> alias;
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
        if (!alias) alias = mark;
    }
    // Also the first scalar (value or key) that is not UTF-8: YAML requires
    // it, yaml-cpp does not check (raw bytes, or an escape such as "\uD800"),
    // and such text cannot go into an audit record or metric label.
    std::optional<YAML::Mark> not_utf8;
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string& value) override {
        if (!not_utf8 && !valid_utf8(value)) not_utf8 = mark;
    }
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

constexpr std::size_t k_max_file_bytes = 1 << 20;

// The first tab in a line's indentation, outside JSON (which may indent with
// tabs): YAML forbids tabs there, and yaml-cpp's own message does not say so.
std::optional<pos> tab_in_indentation(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && (text[first] == '{' || text[first] == '[')) return {};
    int line = 1;
    bool indent = true;
    int column = 1;
    for (char ch : text) {
        if (ch == '\n') {
            ++line;
            column = 1;
            indent = true;
            continue;
        }
        if (indent && ch == '\t') return pos{line, column};
        if (ch != ' ') indent = false;
        ++column;
    }
    return {};
}

// yaml-cpp's message, with a hint for the traps people fall into.
std::string yaml_error_message(const std::string& text, const YAML::Mark& m,
                               const std::string& msg) {
    std::string out = "YAML syntax error: " + msg;
    if (msg.find("anchor") != std::string::npos && m.pos >= 0 &&
        static_cast<std::size_t>(m.pos) < text.size()) {
        // An unquoted glob such as *@example.com reads as an alias.
        std::size_t at = static_cast<std::size_t>(m.pos);
        const auto star = text.find('*', at);
        const auto eol = text.find('\n', at);
        if (star != std::string::npos && (eol == std::string::npos || star < eol)) at = star;
        std::size_t end = at;
        while (end < text.size() && text[end] != '\n' && text[end] != ',' && text[end] != ']' &&
               text[end] != '}' && text[end] != ' ' && text[end] != '\r')
            ++end;
        const std::string word = text.substr(at, std::min<std::size_t>(end - at, 60));
        if (!word.empty() && word[0] == '*')
            out = "YAML syntax error: " + word +
                  " reads as a YAML alias because it starts with *; quote it: \"" + word + "\"";
    }
    return out;
}

std::optional<std::vector<YAML::Node>> parse_all(const fs::path& path, const std::string& text,
                                                 std::vector<diagnostic>& out) {
    try {
        if (text.size() > k_max_file_bytes) {
            out.push_back(
                {diagnostic::severity::error, path.string(), 0, 0, "", "file is larger than 1 MB"});
            return std::nullopt;
        }
        if (text.find('\0') != std::string::npos) {
            out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                           "file contains NUL bytes: not a YAML or JSON text"});
            return std::nullopt;
        }
        if (const auto tab = tab_in_indentation(text)) {
            out.push_back({diagnostic::severity::error, path.string(), tab->line, tab->column, "",
                           "tab character in indentation: YAML does not allow tabs there; "
                           "indent with spaces"});
            return std::nullopt;
        }
        {
            std::istringstream in(text);
            YAML::Parser parser(in);
            alias_finder finder;
            // Bounded: yaml-cpp has been seen to report documents forever on odd input.
            int documents = 0;
            while (!finder.alias && !finder.not_utf8 && parser.HandleNextDocument(finder)) {
                if (++documents > 1000) {
                    out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                                   "more than 1000 YAML documents in one file"});
                    return std::nullopt;
                }
            }
            if (finder.alias) {
                const pos p = pos_of(*finder.alias);
                out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                               "YAML aliases (*name) are not supported in keyrotd files"});
                return std::nullopt;
            }
            if (finder.not_utf8) {
                const pos p = pos_of(*finder.not_utf8);
                out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                               "text that is not valid UTF-8 (YAML and JSON files must be UTF-8)"});
                return std::nullopt;
            }
        }
        return YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
        const pos p = pos_of(e.mark);
        out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                       yaml_error_message(text, e.mark, e.msg)});
    } catch (const YAML::Exception& e) {
        const pos p = pos_of(e.mark);
        out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                       "cannot parse: " + e.msg});
    }
    return std::nullopt;
}

void load_policy_file(const fs::path& path, std::vector<policy>& out, std::vector<pos>& name_at,
                      std::vector<diagnostic>& diags) {
    std::string text;
    if (!read_file(path, text, diags)) return;
    auto docs = parse_all(path, text, diags);
    if (!docs) return;
    reader r(path.string(), diags);
    auto one = [&](const YAML::Node& n) {
        pos at;
        if (auto p = read_policy(r, n, at)) {
            out.push_back(std::move(*p));
            name_at.push_back(at);
        }
    };
    for (const auto& doc : *docs) {
        if (doc.IsNull()) continue;  // an empty document between "---"
        if (doc.IsSequence()) {
            for (std::size_t i = 0; i < doc.size(); ++i) one(doc[i]);
        } else {
            one(doc);
        }
    }
}

bool policy_extension(const fs::path& p) {
    const std::string ext = lower(p.extension().string());
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// In a policy directory, files that are not policies by their name: JSON
// Schemas (`*.schema.json`, kept beside the policies for editors) and a keyrotd
// config (`keyrotd*.yaml|yml|json`, as in /etc/keyrotd/ or the repo's policies/).
bool not_a_policy(const fs::path& p) {
    const std::string name = lower(p.filename().string());
    return name.ends_with(".schema.json") || name.starts_with("keyrotd");
}

policies_result load_policies_impl(const fs::path& path, std::string_view field,
                                   std::optional<pos> field_at, const std::string& cfg_file) {
    policies_result res;
    auto where = [&](diagnostic d) {
        if (field_at) {  // report against the config line that points here
            d.file = cfg_file;
            d.line = field_at->line;
            d.column = field_at->column;
            d.field = std::string(field);
        }
        res.diagnostics.push_back(std::move(d));
    };
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        where({diagnostic::severity::error, path.string(), 0, 0, "",
               "cannot read " + quote(path.string()) + ": " +
                   (ec ? ec.message() : std::string("No such file or directory"))});
        return res;
    }
    std::vector<fs::path> files;
    if (fs::is_directory(st)) {
        fs::directory_iterator it(path, ec), end;
        if (ec) {
            where({diagnostic::severity::error, path.string(), 0, 0, "",
                   "cannot read directory " + quote(path.string()) + ": " + ec.message()});
            return res;
        }
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            const fs::path& f = it->path();
            // Dot-files are skipped: Kubernetes ConfigMap mounts hold "..data" and
            // timestamped dot-directories next to the real files.
            if (f.filename().string().starts_with(".") || !policy_extension(f) || not_a_policy(f))
                continue;
            std::error_code ec2;
            if (fs::is_regular_file(f, ec2)) files.push_back(f);
        }
        if (ec) {
            where({diagnostic::severity::error, path.string(), 0, 0, "",
                   "cannot list directory " + quote(path.string()) + ": " + ec.message()});
            return res;
        }
        std::sort(files.begin(), files.end());
    } else {
        files.push_back(path);
    }

    std::vector<pos> name_at;
    for (const auto& f : files) load_policy_file(f, res.policies, name_at, res.diagnostics);

    // Duplicate names: report the later one, naming where the first lives.
    std::map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < res.policies.size(); ++i) {
        const policy& p = res.policies[i];
        if (p.name.empty()) continue;
        const auto [it, inserted] = seen.emplace(p.name, i);
        if (inserted) continue;
        const policy& first = res.policies[it->second];
        const pos fp = name_at[it->second];
        res.diagnostics.push_back(
            {diagnostic::severity::error, p.source, name_at[i].line, name_at[i].column, "name",
             "duplicate policy name " + quote(p.name) + " (first defined at " + first.source + ":" +
                 std::to_string(fp.line) + ":" + std::to_string(fp.column) + ")"});
    }
    if (res.policies.empty() && !has_errors(res.diagnostics)) {
        where({diagnostic::severity::error, path.string(), 0, 0, "",
               fs::is_directory(st) ? "no policies found in " + quote(path.string()) +
                                          " (looked for *.yaml, *.yml, *.json)"
                                    : "no policies found in " + quote(path.string())});
    }
    return res;
}

// ---------------------------------------------------------------------------
// Config

bool ipv4(std::string_view s, int* first_octet = nullptr) {
    int parts = 0;
    std::size_t i = 0;
    while (i <= s.size()) {
        const std::size_t dot = std::min(s.find('.', i), s.size());
        const std::string_view part = s.substr(i, dot - i);
        if (part.empty() || part.size() > 3 ||
            part.find_first_not_of("0123456789") != std::string_view::npos)
            return false;
        const int v = std::stoi(std::string(part));
        if (v > 255) return false;
        if (parts == 0 && first_octet) *first_octet = v;
        ++parts;
        i = dot + 1;
    }
    return parts == 4;
}

bool ipv6(std::string_view s) {
    // Loose: hex digits, ':' and '.', at least two colons. The resolver has
    // the last word; this catches typos.
    return std::count(s.begin(), s.end(), ':') >= 2 &&
           s.find_first_not_of("0123456789abcdefABCDEF:.") == std::string_view::npos;
}

bool hostname(std::string_view s) {
    if (s.empty() || s.size() > 253 || s.front() == '-' || s.front() == '.') return false;
    return s.find_first_not_of(
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
           std::string_view::npos;
}

bool port(std::string_view s, bool allow_zero) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos)
        return false;
    const int v = std::stoi(std::string(s));
    return v <= 65535 && (allow_zero || v > 0);
}

struct host_port {
    std::string host;  // without brackets
    std::string port;  // may be empty
    bool bracketed = false;
};

// "host", "host:port", "[v6]", "[v6]:port". nullopt when malformed.
std::optional<host_port> split_host_port(std::string_view s) {
    host_port hp;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        hp.host = std::string(s.substr(1, close - 1));
        hp.bracketed = true;
        const std::string_view rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return std::nullopt;
            hp.port = std::string(rest.substr(1));
            if (hp.port.empty()) return std::nullopt;
        }
        if (!ipv6(hp.host)) return std::nullopt;
        return hp;
    }
    const auto colon = s.rfind(':');
    if (colon != std::string_view::npos) {
        if (s.find(':') != colon) return std::nullopt;  // bare IPv6 needs brackets
        hp.host = std::string(s.substr(0, colon));
        hp.port = std::string(s.substr(colon + 1));
        if (hp.port.empty()) return std::nullopt;
    } else {
        hp.host = std::string(s);
    }
    return hp;
}

bool loopback(const host_port& hp) {
    if (hp.bracketed) return hp.host == "::1" || lower(hp.host) == "0:0:0:0:0:0:0:1";
    int first = -1;
    if (ipv4(hp.host, &first)) return first == 127;
    return lower(hp.host) == "localhost";
}

// nullopt when fine; the reason otherwise.
std::optional<std::string> url_error(std::string_view url) {
    std::string_view rest;
    bool https = false;
    const std::string l = lower(url);
    if (l.starts_with("https://")) {
        https = true;
        rest = url.substr(8);
    } else if (l.starts_with("http://")) {
        rest = url.substr(7);
    } else {
        return "must start with https:// (or http:// for a loopback host), got " + quote(url);
    }
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != std::string_view::npos)
        return "must not carry credentials (user@host); use apigee.auth";
    const auto hp = split_host_port(authority);
    if (!hp || hp->host.empty() || (!hp->bracketed && !hostname(hp->host)) ||
        (!hp->port.empty() && !port(hp->port, false)))
        return "bad host or port in " + quote(url);
    if (!https && !loopback(*hp))
        return "plain http:// is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), "
               "got " +
               quote(hp->host) + "; use https://";
    return std::nullopt;
}

std::optional<std::string> listen_error(std::string_view s) {
    const auto hp = split_host_port(s);
    if (!hp || hp->port.empty() || !port(hp->port, true) ||
        (!hp->bracketed && !hp->host.empty() && !ipv4(hp->host) && !hostname(hp->host)) ||
        (!hp->bracketed && hp->host.empty()))
        return "bad listen address " + quote(s) +
               ": expected HOST:PORT, e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464 (port 0 "
               "picks a free one)";
    return std::nullopt;
}

std::string resolve(const fs::path& base_dir, const std::string& p) {
    if (p.empty()) return p;
    const fs::path path(p);
    if (path.is_absolute()) return p;
    return (base_dir / path).lexically_normal().string();
}

void read_auth(reader& r, const field_ref& f, auth_config& a,
               std::map<std::string, std::pair<int, int>>& positions) {
    auto m = r.map(f.value, f.at(), "apigee.auth", config_table());
    if (!m) return;
    auto str = [&](const char* name, std::string& dst) {
        if (const auto* g = get(*m, name)) {
            const pos p = g->at();
            positions[std::string("apigee.auth.") + name] = {p.line, p.column};
            if (auto s = r.string(*g, std::string("apigee.auth.") + name)) dst = *s;
        }
    };
    str("method", a.method);
    str("path", a.path);
    str("env", a.env);
    str("userEnv", a.user_env);
    str("passwordEnv", a.password_env);
    const auto* mf = get(*m, "method");
    const pos at = mf ? mf->at() : f.at();

    struct need {
        const char* field;
        const std::string* value;
    };
    std::vector<need> needed;
    if (a.method == "token-file")
        needed = {{"path", &a.path}};
    else if (a.method == "token-env")
        needed = {{"env", &a.env}};
    else if (a.method == "basic")
        needed = {{"userEnv", &a.user_env}, {"passwordEnv", &a.password_env}};
    else if (a.method != "google" && a.method != "none") {
        r.error(at, "apigee.auth.method",
                "unknown auth method " + quote(a.method) +
                    ": use google, token-file, token-env, basic or none");
        return;
    }
    for (const auto& n : needed)
        if (n.value->empty())
            r.error(at, std::string("apigee.auth.") + n.field,
                    "auth method " + a.method + " needs " + n.field);
    // A sub-field the method does not use is most likely a mistake (wrong method).
    for (const char* name : {"path", "env", "userEnv", "passwordEnv"}) {
        const auto* g = get(*m, name);
        if (!g) continue;
        // google takes an optional key file (else GOOGLE_APPLICATION_CREDENTIALS,
        // $CREDENTIALS_DIRECTORY/sa-key.json, then the metadata server).
        const bool optional = a.method == "google" && std::string_view(name) == "path";
        const bool used = optional || std::any_of(needed.begin(), needed.end(), [&](const need& n) {
                              return std::string_view(n.field) == name;
                          });
        if (!used)
            r.error(pos_of(g->key.Mark()), std::string("apigee.auth.") + name,
                    std::string("not used by auth method ") + a.method);
    }
}

// A YAML node as JSON for notify::parse_config: a plain scalar that is an
// integer or true/false becomes a number or a boolean, everything else a
// string (durations stay strings). Records where each path was written, so
// errors about it can name the line ("notify.webhooks[0].url").
nlohmann::json yaml_to_json(const YAML::Node& n, const std::string& path,
                            std::map<std::string, std::pair<int, int>>& positions) {
    const pos p = pos_of(n.Mark());
    if (p.line) positions.emplace(path, std::make_pair(p.line, p.column));
    if (n.IsMap()) {
        nlohmann::json out = nlohmann::json::object();
        for (auto it = n.begin(); it != n.end(); ++it) {
            const YAML::Node key = it->first;
            if (!key.IsScalar()) continue;  // reported by parse_config as a bad shape
            const std::string sub = path + "." + key.Scalar();
            const pos kp = pos_of(key.Mark());
            if (kp.line) positions.emplace(sub, std::make_pair(kp.line, kp.column));
            out[key.Scalar()] = yaml_to_json(it->second, sub, positions);
        }
        return out;
    }
    if (n.IsSequence()) {
        nlohmann::json out = nlohmann::json::array();
        for (std::size_t i = 0; i < n.size(); ++i)
            out.push_back(yaml_to_json(n[i], path + "[" + std::to_string(i) + "]", positions));
        return out;
    }
    if (!n.IsScalar()) return nullptr;
    const std::string& s = n.Scalar();
    if (n.Tag() != "!") {
        long long v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return v;
        const std::string l = lower(s);
        if (l == "true") return true;
        if (l == "false") return false;
    }
    return s;
}

// `policies_ok` turns false when the policies path cannot be trusted (then
// the loader does not go looking for policies and report noise about them).
void read_config(reader& r, const YAML::Node& root, config& c, pos& policies_at,
                 bool& policies_ok) {
    auto m = r.map(root, pos_of(root.Mark()), "", config_table());
    if (!m) {
        policies_ok = false;
        return;
    }
    if (const auto* f = get(*m, "apigee")) {
        if (auto am = r.map(f->value, f->at(), "apigee", config_table())) {
            auto& a = c.apigee;
            if (const auto* g = get(*am, "url")) {
                if (auto s = r.string(*g, "apigee.url")) {
                    a.url = *s;
                    if (auto why = url_error(*s)) r.error(g->at(), "apigee.url", *why);
                }
            }
            if (const auto* g = get(*am, "auth")) read_auth(r, *g, a.auth, c.positions);
            if (const auto* g = get(*am, "caFile")) {
                const pos p = g->at();
                c.positions["apigee.caFile"] = {p.line, p.column};
                if (auto s = r.string(*g, "apigee.caFile")) a.ca_file = *s;
            }
            if (const auto* g = get(*am, "timeout")) {
                if (auto d = r.duration(*g, "apigee.timeout", false)) {
                    if (**d <= 0)
                        r.error(g->at(), "apigee.timeout", "must be greater than 0");
                    else
                        a.timeout = **d;
                }
            }
            if (const auto* g = get(*am, "maxConcurrency")) {
                if (auto v = r.integer(*g, "apigee.maxConcurrency")) {
                    if (*v < 1 || *v > 1024)
                        r.error(g->at(), "apigee.maxConcurrency",
                                "must be between 1 and 1024, got " + std::to_string(*v));
                    else
                        a.max_concurrency = static_cast<int>(*v);
                }
            }
            if (const auto* g = get(*am, "requestsPerSecond")) {
                if (auto v = r.number(*g, "apigee.requestsPerSecond")) {
                    if (*v <= 0)
                        r.error(g->at(), "apigee.requestsPerSecond",
                                "must be greater than 0, got " + g->value.Scalar());
                    else
                        a.requests_per_second = *v;
                }
            }
        }
    }
    if (const auto* f = get(*m, "listen")) {
        if (auto s = r.string(*f, "listen")) {
            c.listen = *s;
            if (auto why = listen_error(*s)) r.error(f->at(), "listen", *why);
        }
    }
    if (const auto* f = get(*m, "interval")) {
        if (auto d = r.duration(*f, "interval", false)) {
            if (**d <= 0)
                r.error(f->at(), "interval", "must be greater than 0");
            else
                c.interval = **d;
        }
    }
    if (const auto* f = get(*m, "stateDir")) {
        if (auto s = r.string(*f, "stateDir")) {
            if (s->empty())
                r.error(f->at(), "stateDir", "must not be empty");
            else
                c.state_dir = *s;
        }
    }
    if (const auto* f = get(*m, "policies")) {
        policies_at = f->at();
        policies_ok = false;
        if (auto s = r.string(*f, "policies")) {
            if (s->empty()) {
                r.error(f->at(), "policies", "must not be empty: a file or a directory");
            } else {
                c.policies_path = *s;
                policies_ok = true;
            }
        }
    }
    if (const auto* f = get(*m, "log")) {
        if (auto lm = r.map(f->value, f->at(), "log", config_table())) {
            if (const auto* g = get(*lm, "level")) {
                if (auto s = r.string(*g, "log.level")) {
                    static const std::vector<std::string> levels = {
                        "trace", "debug", "info", "warn", "error", "critical", "off"};
                    if (std::find(levels.begin(), levels.end(), *s) == levels.end())
                        r.error(g->at(), "log.level",
                                "unknown level " + quote(*s) +
                                    ": use trace, debug, info, warn, error, critical or off");
                    else
                        c.log_level = *s;
                }
            }
            if (const auto* g = get(*lm, "format")) {
                if (auto s = r.string(*g, "log.format")) {
                    if (*s != "text" && *s != "json")
                        r.error(g->at(), "log.format",
                                "unknown format " + quote(*s) + ": use text or json");
                    else
                        c.log_format = *s;
                }
            }
        }
    }
    if (const auto* f = get(*m, "metrics")) {
        if (auto mm = r.map(f->value, f->at(), "metrics", config_table()))
            if (const auto* g = get(*mm, "perKey"))
                if (auto b = r.boolean(*g, "metrics.perKey")) c.metrics_per_key = *b;
    }
    if (const auto* f = get(*m, "notify")) {
        // Unknown top-level fields here, with their line and a typo hint; the
        // rest (webhooks) is checked by notify::parse_config from the JSON.
        if (r.map(f->value, f->at(), "notify", config_table())) {
            c.positions["notify"] = {f->at().line, f->at().column};
            if (!f->value.IsNull()) {
                auto nj = yaml_to_json(f->value, "notify", c.positions);
                if (const auto bad = first_bad_utf8(nj, "notify"); !bad.empty())
                    r.error(f->at(), bad, "is not valid UTF-8");
                else
                    c.notify_json = nj.dump();
            }
        }
    }
}

diagnostic about_field(const config& c, const std::string& field, std::string message,
                       diagnostic::severity level = diagnostic::severity::error) {
    diagnostic d{level, c.source, 0, 0, field, std::move(message)};
    if (auto it = c.positions.find(field); it != c.positions.end()) {
        d.line = it->second.first;
        d.column = it->second.second;
    }
    return d;
}

// notify.webhooks[*].caFile, secretFiles and ed25519KeyFile, and
// notify.emails[*].caFile, passwordFile, subjectFile and bodyFile, relative to
// the config file's directory, as apigee.caFile.
void resolve_notify_files(const fs::path& dir, config& c) {
    if (c.notify_json.empty()) return;
    auto j = nlohmann::json::parse(c.notify_json);
    if (!j.is_object()) return;
    auto fix = [&](nlohmann::json& v) {
        if (v.is_string() && !v.get<std::string>().empty()) v = resolve(dir, v.get<std::string>());
    };
    if (j.contains("emails") && j["emails"].is_array())
        for (auto& m : j["emails"]) {
            if (!m.is_object()) continue;
            for (const char* name : {"caFile", "passwordFile", "subjectFile", "bodyFile"})
                if (m.contains(name)) fix(m[name]);
        }
    if (!j.contains("webhooks") || !j["webhooks"].is_array()) {
        c.notify_json = j.dump();
        return;
    }
    for (auto& w : j["webhooks"]) {
        if (!w.is_object()) continue;
        if (w.contains("caFile")) fix(w["caFile"]);
        for (const char* name : {"secretFiles", "ed25519KeyFile"}) {
            if (!w.contains(name)) continue;
            auto& v = w[name];
            if (v.is_array())
                for (auto& e : v) fix(e);
            else
                fix(v);
        }
    }
    c.notify_json = j.dump();
}

// A file the config names must be there and readable now: finding out at the
// first Apigee call (or, for caFile, only in `once`) is too late.
void check_named_files(const config& c, std::vector<diagnostic>& out) {
    auto check = [&](const std::string& field, const std::string& path, const char* what) {
        if (path.empty()) return;
        std::error_code ec;
        std::string why;
        if (fs::is_directory(path, ec)) {
            why = "is a directory";
        } else {
            const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                why = std::strerror(errno);
            else
                ::close(fd);
        }
        if (!why.empty())
            out.push_back(
                about_field(c, field, std::string(what) + " " + quote(path) + ": " + why));
    };
    check("apigee.caFile", c.apigee.ca_file, "cannot read CA file");
    // notify: the webhooks' CA files and signing keys (read again at start-up
    // by webhook_sink::create; a missing one is a configuration error here).
    if (!c.notify_json.empty()) {
        const auto j = nlohmann::json::parse(c.notify_json);
        // notify.emails: CA, password and template files (read by email_sink::create).
        if (j.is_object() && j.contains("emails") && j["emails"].is_array()) {
            const auto& mails = j["emails"];
            for (std::size_t i = 0; i < mails.size(); ++i) {
                if (!mails[i].is_object()) continue;
                const std::string w = "notify.emails[" + std::to_string(i) + "].";
                for (const auto& [name, what] :
                     {std::pair{"caFile", "cannot read CA file"},
                      {"passwordFile", "cannot read password file"},
                      {"subjectFile", "cannot read template file"},
                      {"bodyFile", "cannot read template file"}})
                    if (mails[i].contains(name) && mails[i][name].is_string())
                        check(w + name, mails[i][name].get<std::string>(), what);
            }
        }
        if (j.is_object() && j.contains("webhooks") && j["webhooks"].is_array()) {
            const auto& hooks = j["webhooks"];
            for (std::size_t i = 0; i < hooks.size(); ++i) {
                if (!hooks[i].is_object()) continue;
                const std::string w = "notify.webhooks[" + std::to_string(i) + "].";
                if (hooks[i].contains("caFile") && hooks[i]["caFile"].is_string())
                    check(w + "caFile", hooks[i]["caFile"].get<std::string>(),
                          "cannot read CA file");
                for (const char* name : {"secretFiles", "ed25519KeyFile"}) {
                    if (!hooks[i].contains(name)) continue;
                    const auto& v = hooks[i][name];
                    if (v.is_string())
                        check(w + name, v.get<std::string>(), "cannot read signing key file");
                    if (!v.is_array()) continue;
                    for (std::size_t k = 0; k < v.size(); ++k)
                        if (v[k].is_string())
                            check(w + name + "[" + std::to_string(k) + "]", v[k].get<std::string>(),
                                  "cannot read signing key file");
                }
            }
        }
    }
    if (c.apigee.auth.method == "token-file")
        check("apigee.auth.path", c.apigee.auth.path, "cannot read token file");
    else if (c.apigee.auth.method == "google")
        check("apigee.auth.path", c.apigee.auth.path, "cannot read service-account key file");
}

}  // namespace

std::vector<diagnostic> missing_credentials(const config& c) {
    std::vector<diagnostic> out;
    auto need = [&](const std::string& field, const std::string& var) {
        if (var.empty()) return;
        const char* v = std::getenv(var.c_str());
        if (v == nullptr || *v == '\0')
            out.push_back(about_field(c, field,
                                      "environment variable " + var + " (auth method " +
                                          c.apigee.auth.method + ") is " +
                                          (v == nullptr ? "not set" : "empty")));
    };
    if (c.apigee.auth.method == "token-env") need("apigee.auth.env", c.apigee.auth.env);
    if (c.apigee.auth.method == "basic") {
        need("apigee.auth.userEnv", c.apigee.auth.user_env);
        need("apigee.auth.passwordEnv", c.apigee.auth.password_env);
    }
    return out;
}

std::string to_string(const diagnostic& d) {
    std::string out = d.file;
    if (d.line > 0) {
        out += ":" + std::to_string(d.line);
        if (d.column > 0) out += ":" + std::to_string(d.column);
    }
    out += d.level == diagnostic::severity::error ? ": error: " : ": warning: ";
    if (!d.field.empty()) out += d.field + ": ";
    out += d.message;
    return out;
}

bool has_errors(const std::vector<diagnostic>& ds) {
    return std::any_of(ds.begin(), ds.end(),
                       [](const diagnostic& d) { return d.level == diagnostic::severity::error; });
}

const std::vector<std::string>& config_fields() {
    static const std::vector<std::string> f = flatten(config_table());
    return f;
}

const std::vector<std::string>& policy_fields() {
    static const std::vector<std::string> f = flatten(policy_table());
    return f;
}

load_result load_config(const std::filesystem::path& file) {
    load_result res;
    config c;
    c.source = file.string();
    std::string text;
    if (!read_file(file, text, res.diagnostics)) return res;
    auto docs = parse_all(file, text, res.diagnostics);
    if (!docs) return res;
    reader r(file.string(), res.diagnostics);
    std::size_t real_docs = 0;
    pos policies_at;
    bool policies_ok = true;
    for (const auto& d : *docs) {
        if (d.IsNull()) continue;
        if (++real_docs > 1) {
            r.error(pos_of(d.Mark()), "", "the config file holds one document; found another");
            break;
        }
        read_config(r, d, c, policies_at, policies_ok);
    }
    // Policy problems are reported alongside config problems, so one
    // `keyrotd validate` lists everything.
    if (!policies_ok) return res;

    std::error_code ec;
    fs::path dir = fs::absolute(file, ec).parent_path();
    if (ec) dir = file.parent_path();
    c.policies_path = resolve(dir, c.policies_path);
    c.state_dir = resolve(dir, c.state_dir);
    if (!c.apigee.ca_file.empty()) c.apigee.ca_file = resolve(dir, c.apigee.ca_file);
    if (!c.apigee.auth.path.empty()) c.apigee.auth.path = resolve(dir, c.apigee.auth.path);
    resolve_notify_files(dir, c);
    check_named_files(c, res.diagnostics);

    auto pr = load_policies_impl(c.policies_path, "policies",
                                 policies_at.line ? std::optional<pos>(policies_at) : std::nullopt,
                                 c.source);
    res.diagnostics.insert(res.diagnostics.end(), pr.diagnostics.begin(), pr.diagnostics.end());
    c.policies = std::move(pr.policies);
    if (!has_errors(res.diagnostics)) res.cfg = std::move(c);
    return res;
}

policies_result load_policies(const std::filesystem::path& path) {
    return load_policies_impl(path, "", std::nullopt, "");
}

}  // namespace keyrot::policy
