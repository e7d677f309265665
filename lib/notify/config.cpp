#include "notify/config.hpp"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "http/rules.hpp"
#include "policy/config.hpp"  // glob_match, glob_match_icase, glob_error

namespace keyrot::notify {
namespace {

using json = nlohmann::json;

struct checker {
    std::vector<std::string> problems;
    void add(const std::string& where, const std::string& what) {
        problems.push_back(where + ": " + what);
    }

    // Walks an object's fields, refusing unknown ones.
    void fields(const json& j, const std::string& where, const std::set<std::string>& known) {
        for (const auto& [k, v] : j.items())
            if (!known.count(k)) add(where + "." + k, "unknown field");
    }

    std::optional<millis> duration(const json& v, const std::string& where, bool allow_zero) {
        if (!v.is_string()) {
            add(where, "must be a duration such as \"3d\" or \"15s\"");
            return std::nullopt;
        }
        auto d = parse_duration(v.get<std::string>());
        if (!d) {
            add(where, "not a duration: \"" + v.get<std::string>() + "\"");
            return std::nullopt;
        }
        if (*d == 0 && !allow_zero) {
            add(where, "must be more than 0");
            return std::nullopt;
        }
        return d;
    }

    std::vector<std::string> strings(const json& v, const std::string& where) {
        std::vector<std::string> out;
        if (v.is_string()) {
            out.push_back(v.get<std::string>());
            return out;
        }
        if (!v.is_array()) {
            add(where, "must be a list of strings");
            return out;
        }
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_string() || v[i].get<std::string>().empty())
                add(where + "[" + std::to_string(i) + "]", "must be a non-empty string");
            else
                out.push_back(v[i].get<std::string>());
        }
        return out;
    }
};

bool good_name(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
}

void parse_webhook(checker& ck, const json& w, const std::string& where, webhook_config& out) {
    if (!w.is_object()) {
        ck.add(where, "must be an object");
        return;
    }
    ck.fields(w, where,
              {"name", "url", "caFile", "secretFiles", "ed25519KeyFile", "events", "policies",
               "developers", "apps", "timeout"});
    if (!w.contains("name") || !w["name"].is_string() || !good_name(w["name"].get<std::string>()))
        ck.add(where + ".name", "required: 1 to 64 characters of A-Z a-z 0-9 - _ .");
    else
        out.name = w["name"].get<std::string>();

    if (!w.contains("url") || !w["url"].is_string()) {
        ck.add(where + ".url", "required: https://host[:port]/path");
    } else {
        out.url = w["url"].get<std::string>();
        auto u = http::parse_url(out.url);
        if (!u) ck.add(where + ".url", u.err().message);
    }
    if (w.contains("caFile")) {
        if (!w["caFile"].is_string() || w["caFile"].get<std::string>().empty())
            ck.add(where + ".caFile", "must be a file name");
        else
            out.ca_file = w["caFile"].get<std::string>();
    }
    if (w.contains("secretFiles"))
        for (auto& s : ck.strings(w["secretFiles"], where + ".secretFiles"))
            out.secret_files.emplace_back(s);
    if (w.contains("ed25519KeyFile"))
        for (auto& s : ck.strings(w["ed25519KeyFile"], where + ".ed25519KeyFile"))
            out.ed25519_key_files.emplace_back(s);
    if (out.secret_files.empty() && out.ed25519_key_files.empty())
        ck.add(where, "needs secretFiles or ed25519KeyFile: webhooks are always signed");

    if (w.contains("events")) {
        out.filter.events = ck.strings(w["events"], where + ".events");
        for (const auto& e : out.filter.events)
            if (!parse_event_type(e)) {
                std::string known;
                for (auto n : event_type_names())
                    known += (known.empty() ? "" : ", ") + std::string(n);
                ck.add(where + ".events",
                       "unknown event type \"" + e + "\" (known: " + known + ")");
            }
    }
    if (w.contains("policies"))
        out.filter.policies = ck.strings(w["policies"], where + ".policies");
    for (const char* field : {"developers", "apps"}) {
        if (!w.contains(field)) continue;
        auto globs = ck.strings(w[field], where + "." + field);
        for (const auto& g : globs)
            if (auto why = policy::glob_error(g))
                ck.add(where + "." + field, "bad glob \"" + g + "\": " + *why);
        (std::string(field) == "developers" ? out.filter.developers : out.filter.apps) =
            std::move(globs);
    }
    if (w.contains("timeout"))
        if (auto d = ck.duration(w["timeout"], where + ".timeout", false)) {
            if (*d > 5 * k_minute)
                ck.add(where + ".timeout", "at most 5m");
            else
                out.timeout = *d;
        }
}

}  // namespace

bool matches(const sink_filter& f, const event& e) {
    auto any = [](const std::vector<std::string>& list, auto&& pred) {
        return list.empty() || std::any_of(list.begin(), list.end(), pred);
    };
    const auto type = to_string(e.f.type);
    return any(f.events, [&](const std::string& t) { return t == type; }) &&
           any(f.policies, [&](const std::string& p) { return p == e.f.policy; }) &&
           any(f.developers,
               [&](const std::string& g) {
                   return !e.f.developer.empty() && policy::glob_match_icase(g, e.f.developer);
               }) &&
           any(f.apps, [&](const std::string& g) { return policy::glob_match(g, e.f.app); });
}

result<config> parse_config(const nlohmann::json& section) {
    config c;
    if (section.is_null()) return c;
    checker ck;
    if (!section.is_object()) {
        ck.add("notify", "must be a map");
    } else {
        ck.fields(section, "notify",
                  {"expiringAt", "maxAge", "outboxMax", "webhooks", "email", "emails"});
        // Issue 11 asks for email; until it is built, configuring it must not
        // look as if it worked.
        for (const char* k : {"email", "emails"})
            if (section.contains(k))
                ck.add(std::string("notify.") + k,
                       "email notifications are not implemented yet (issue 11): remove this "
                       "section; webhooks work");
        if (section.contains("expiringAt")) {
            const auto& v = section["expiringAt"];
            if (!v.is_array()) {
                ck.add("notify.expiringAt", "must be a list of durations such as [30d, 7d, 1d]");
            } else {
                for (std::size_t i = 0; i < v.size(); ++i)
                    if (auto d = ck.duration(v[i], "notify.expiringAt[" + std::to_string(i) + "]",
                                             false))
                        c.expiring_at.push_back(*d);
                std::sort(c.expiring_at.begin(), c.expiring_at.end(), std::greater<>());
                c.expiring_at.erase(std::unique(c.expiring_at.begin(), c.expiring_at.end()),
                                    c.expiring_at.end());
            }
        }
        if (section.contains("maxAge"))
            if (auto d = ck.duration(section["maxAge"], "notify.maxAge", false)) c.max_age = *d;
        if (section.contains("outboxMax")) {
            const auto& v = section["outboxMax"];
            if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
                v.get<std::int64_t>() > 10'000'000)
                ck.add("notify.outboxMax", "must be a whole number from 1 to 10000000");
            else
                c.outbox_max = static_cast<std::size_t>(v.get<std::int64_t>());
        }
        if (section.contains("webhooks")) {
            const auto& v = section["webhooks"];
            if (!v.is_array()) {
                ck.add("notify.webhooks", "must be a list");
            } else {
                std::set<std::string> names;
                for (std::size_t i = 0; i < v.size(); ++i) {
                    const std::string where = "notify.webhooks[" + std::to_string(i) + "]";
                    webhook_config w;
                    parse_webhook(ck, v[i], where, w);
                    if (!w.name.empty() && !names.insert(w.name).second)
                        ck.add(where + ".name", "\"" + w.name + "\" is used twice");
                    c.webhooks.push_back(std::move(w));
                }
            }
        }
    }
    if (!ck.problems.empty()) {
        error e;
        e.what = error::kind::config;
        for (const auto& p : ck.problems) e.message += (e.message.empty() ? "" : "; ") + p;
        return e;
    }
    return c;
}

}  // namespace keyrot::notify
