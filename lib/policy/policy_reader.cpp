// One policy from its YAML node (docs/rotation.md, "Policies"), every field
// checked against the tables in reader.hpp.
#include <date/tz.h>
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
#include "policy/reader.hpp"

namespace keyrot::policy::detail {

namespace {

// A zone of the system's time zone database (/usr/share/zoneinfo, Debian
// package tzdata), loaded on first use; null with the reason when not found.
const date::time_zone* find_zone(const std::string& name, std::string& why) {
    try {
        return date::locate_zone(name);
    } catch (const std::exception& e) {
        why = e.what();
        if (why.size() > 160) why = why.substr(0, 160) + "...";
        return nullptr;
    }
}

}  // namespace

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
        (is_end ? w.end : w.start) = *minutes;
        if (!is_end) start_at = t->at();
    }
    if (times_ok && w.start >= w.end) {
        const auto* e = get(*m, "end");
        const auto h = std::chrono::floor<std::chrono::hours>(w.start);
        const auto min = (w.start - h).count();
        r.error(e ? e->at() : start_at, path + ".end",
                "window must end after it starts (start " + std::to_string(h.count()) + ":" +
                    (min < 10 ? "0" : "") + std::to_string(min) +
                    "); windows over midnight are not "
                    "supported: use 00:00-24:00 or two policies");
    }
    if (const auto* tz = get(*m, "timezone")) {
        if (auto s = r.string(*tz, path + ".timezone")) {
            if (auto off = parse_offset(*s)) {
                w.timezone = *s;
                w.utc_offset = *off;
            } else if (s->find('/') != std::string::npos ||
                       (s->size() >= 3 && std::isalpha(static_cast<unsigned char>((*s)[0])))) {
                std::string why;
                if (const date::time_zone* z = find_zone(*s, why)) {
                    w.timezone = *s;
                    w.zone = z;
                } else {
                    r.error(tz->at(), path + ".timezone",
                            "unknown time zone " + quote(*s) + " (" + why +
                                "): use a name from the IANA time zone database such as "
                                "\"Europe/Berlin\", \"UTC\" or a fixed offset like \"+02:00\"");
                }
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
            if (const auto* g = get(*mm, "appGroups"))
                p.match.app_groups = r.globs(*g, "match.appGroups");
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
                    if (const auto* h = get(*ex, "appGroups"))
                        p.match.exclude.app_groups = r.globs(*h, "match.exclude.appGroups");
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
            lifetime_explicit =
                dur("keyLifetime", true, [&](std::optional<milliseconds> d, pos p0) {
                    at.key_lifetime = p0;
                    p.positions["rotation.keyLifetime"] = {p0.line, p0.column};
                    rot.key_lifetime = d;
                    if (d && *d == milliseconds(0)) {
                        r.error(
                            p0, "rotation.keyLifetime",
                            "must be greater than 0 (or \"never\" for keys that do not expire)");
                        durations_ok = false;
                    }
                });
            rotate_before_explicit =
                dur("rotateBefore", false, [&](std::optional<milliseconds> d, pos p0) {
                    at.rotate_before = p0;
                    rot.rotate_before = *d;
                });
            dur("maxAge", false, [&](std::optional<milliseconds> d, pos p0) {
                at.max_age = p0;
                if (*d > milliseconds(0))
                    rot.max_age = *d;
                else
                    rot.max_age.reset();
            });
            overlap_explicit = dur("overlap", false, [&](std::optional<milliseconds> d, pos p0) {
                at.overlap = p0;
                rot.overlap = *d;
            });
            dur("deleteRevokedAfter", false, [&](std::optional<milliseconds> d, pos) {
                if (*d > milliseconds(0))
                    rot.delete_revoked_after = *d;
                else
                    rot.delete_revoked_after.reset();
            });
            if (const auto* g = get(*rm, "revoke"))
                if (auto b = r.boolean(*g, "rotation.revoke")) rot.revoke = *b;
            if (const auto* g = get(*rm, "method")) {
                if (auto s = r.string(*g, "rotation.method")) {
                    // What the flavor cannot do (team apps with generate on X,
                    // import on Edge): flavor_refusals(), which knows the flavor.
                    p.positions["rotation.method"] = {g->at().line, g->at().column};
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
        const auto shown = [](milliseconds d, bool explicit_) {
            return format_duration(d) + (explicit_ ? "" : ", the default");
        };
        if (rot.key_lifetime) {
            const milliseconds kl = *rot.key_lifetime;
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
        if (rot.max_age && rot.overlap >= *rot.max_age)
            r.error(overlap_explicit ? at.overlap : at.max_age, "rotation.overlap",
                    "overlap (" + shown(rot.overlap, overlap_explicit) +
                        ") must be shorter than maxAge (" + format_duration(*rot.max_age) + ")");
        if (rot.overlap > milliseconds(0) && rot.overlap < 5 * k_minute)
            r.warning(at.overlap, "rotation.overlap",
                      "overlap " + format_duration(rot.overlap) +
                          " is under 5 minutes: Apigee caches keys for up to 180 s, so clients "
                          "may be refused after the old key is revoked");
    }
    return p;
}

// Reads a whole file into `text`; false (and a diagnostic) when it cannot.
}  // namespace keyrot::policy::detail
