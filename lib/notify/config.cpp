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

    std::optional<milliseconds> duration(const json& v, const std::string& where, bool allow_zero) {
        if (!v.is_string()) {
            add(where, "must be a duration such as \"3d\" or \"15s\"");
            return std::nullopt;
        }
        auto d = parse_duration(v.get<std::string>());
        if (!d) {
            add(where, "not a duration: \"" + v.get<std::string>() + "\"");
            return std::nullopt;
        }
        if (*d == milliseconds(0) && !allow_zero) {
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

// events, policies, developers, apps: the filter every sink kind shares.
void parse_filter(checker& ck, const json& w, const std::string& where, sink_filter& out) {
    if (w.contains("events")) {
        out.events = ck.strings(w["events"], where + ".events");
        for (const auto& e : out.events)
            if (!parse_event_type(e)) {
                std::string known;
                for (auto n : event_type_names())
                    known += (known.empty() ? "" : ", ") + std::string(n);
                ck.add(where + ".events",
                       "unknown event type \"" + e + "\" (known: " + known + ")");
            }
    }
    if (w.contains("policies")) out.policies = ck.strings(w["policies"], where + ".policies");
    for (const char* field : {"developers", "apps"}) {
        if (!w.contains(field)) continue;
        auto globs = ck.strings(w[field], where + "." + field);
        for (const auto& g : globs)
            if (auto why = policy::glob_error(g))
                ck.add(where + "." + field, "bad glob \"" + g + "\": " + *why);
        (std::string(field) == "developers" ? out.developers : out.apps) = std::move(globs);
    }
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

    parse_filter(ck, w, where, out.filter);
    if (w.contains("timeout"))
        if (auto d = ck.duration(w["timeout"], where + ".timeout", false)) {
            if (*d > 5 * k_minute)
                ck.add(where + ".timeout", "at most 5m");
            else
                out.timeout = *d;
        }
}

// "smtp://host[:port]" or "smtps://host[:port]" (a trailing "/" allowed): the
// host and port are checked by http::parse_url's rules; plain SMTP is refused
// here unless tls: none, which only a loopback host may have.
void parse_smtp_url(checker& ck, const std::string& where, email_config& out) {
    std::string rest;
    if (out.url.starts_with("smtp://")) {
        rest = out.url.substr(7);
    } else if (out.url.starts_with("smtps://")) {
        rest = out.url.substr(8);
        out.tls = smtp_tls::implicit;
    } else {
        ck.add(where, "must start with smtp:// (STARTTLS) or smtps://");
        return;
    }
    if (rest.ends_with("/")) rest.pop_back();
    if (rest.empty() || rest.find_first_of("/?#@") != std::string::npos) {
        ck.add(where,
               "must be smtp://host[:port] or smtps://host[:port], without user, path or query");
        return;
    }
    auto u = http::parse_url("https://" + rest);
    if (!u) {
        ck.add(where, u.err().message);
        return;
    }
    out.host = u->host;
    out.host_is_loopback = u->host_is_loopback;
}

void parse_email(checker& ck, const json& w, const std::string& where, email_config& out) {
    if (!w.is_object()) {
        ck.add(where, "must be an object");
        return;
    }
    ck.fields(w, where,
              {"name", "url", "tls", "caFile", "username", "passwordFile", "from", "toDeveloper",
               "to", "portalUrl", "subjectFile", "bodyFile", "events", "policies", "developers",
               "apps", "timeout", "password"});
    if (w.contains("password"))
        ck.add(where + ".password", "put the SMTP password in a file and name it in passwordFile");
    if (!w.contains("name") || !w["name"].is_string() || !good_name(w["name"].get<std::string>()))
        ck.add(where + ".name", "required: 1 to 64 characters of A-Z a-z 0-9 - _ .");
    else
        out.name = w["name"].get<std::string>();

    if (!w.contains("url") || !w["url"].is_string()) {
        ck.add(where + ".url", "required: smtp://host[:port] (STARTTLS) or smtps://host[:port]");
    } else {
        out.url = w["url"].get<std::string>();
        parse_smtp_url(ck, where + ".url", out);
    }
    if (w.contains("tls")) {
        if (!w["tls"].is_string() || w["tls"].get<std::string>() != "none") {
            ck.add(where + ".tls", "the only setting is \"none\" (plain SMTP to a loopback host)");
        } else if (out.tls == smtp_tls::implicit) {
            ck.add(where + ".tls", "\"none\" contradicts smtps://");
        } else {
            out.tls = smtp_tls::none;
            if (!out.host.empty() && !out.host_is_loopback)
                ck.add(where + ".tls",
                       "plain SMTP is allowed only to a loopback host, not " + out.host);
        }
    }
    auto text = [&](const char* field, std::string& into) {
        if (!w.contains(field)) return;
        if (!w[field].is_string() || w[field].get<std::string>().empty())
            ck.add(where + "." + field, "must be a non-empty string");
        else
            into = w[field].get<std::string>();
    };
    text("caFile", out.ca_file);
    text("username", out.username);
    std::string s;
    text("passwordFile", s);
    out.password_file = s;
    if (out.username.empty() != out.password_file.empty())
        ck.add(where, "username and passwordFile go together");
    text("subjectFile", s = "");
    out.subject_file = s;
    text("bodyFile", s = "");
    out.body_file = s;
    text("portalUrl", out.portal_url);
    if (!out.portal_url.empty() && !out.portal_url.starts_with("https://") &&
        !out.portal_url.starts_with("http://"))
        ck.add(where + ".portalUrl", "must be an http:// or https:// URL");
    if (out.portal_url.find_first_of("\r\n") != std::string::npos)
        ck.add(where + ".portalUrl", "must be one line");

    if (!w.contains("from") || !w["from"].is_string() ||
        mailbox_address(w["from"].get<std::string>()).empty())
        ck.add(where + ".from",
               "required: an address such as keyrotd@example.com or "
               "\"keyrotd <keyrotd@example.com>\"");
    else
        out.from = w["from"].get<std::string>();
    if (w.contains("toDeveloper")) {
        if (!w["toDeveloper"].is_boolean())
            ck.add(where + ".toDeveloper", "must be true or false");
        else
            out.to_developer = w["toDeveloper"].get<bool>();
    }
    if (w.contains("to"))
        for (auto& a : ck.strings(w["to"], where + ".to")) {
            if (mailbox_address(a) != a)
                ck.add(where + ".to", "not a bare address: \"" + a + "\"");
            else
                out.to.push_back(std::move(a));
        }
    if (!out.to_developer && out.to.empty())
        ck.add(where, "no recipient: set toDeveloper: true or list addresses in to");

    parse_filter(ck, w, where, out.filter);
    if (w.contains("timeout"))
        if (auto d = ck.duration(w["timeout"], where + ".timeout", false)) {
            if (*d > 5 * k_minute)
                ck.add(where + ".timeout", "at most 5m");
            else
                out.timeout = *d;
        }
}

}  // namespace

std::string mailbox_address(const std::string& text) {
    std::string a = text;
    const auto lt = text.find('<');
    if (lt != std::string::npos) {
        if (!text.ends_with(">")) return "";
        a = text.substr(lt + 1, text.size() - lt - 2);
        const std::string display = text.substr(0, lt);
        if (display.find_first_of("<>\r\n", 0) != std::string::npos ||
            display.find('\0') != std::string::npos)
            return "";
    }
    if (a.empty() || a.size() > 254) return "";
    for (char c : a)
        if (c == '\r' || c == '\n' || c == '\0' || c == ' ' || c == '\t' || c == '<' || c == '>' ||
            c == ',' || c == '"')
            return "";
    const auto at = a.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == a.size() ||
        a.find('@', at + 1) != std::string::npos)
        return "";
    return a;
}

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
        if (section.contains("email")) ck.add("notify.email", "use emails: a list of email sinks");
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
        if (section.contains("emails")) {
            const auto& v = section["emails"];
            if (!v.is_array()) {
                ck.add("notify.emails", "must be a list");
            } else {
                std::set<std::string> names;
                for (const auto& w : c.webhooks) names.insert(w.name);
                for (std::size_t i = 0; i < v.size(); ++i) {
                    const std::string where = "notify.emails[" + std::to_string(i) + "]";
                    email_config m;
                    parse_email(ck, v[i], where, m);
                    // Sinks share the outbox's per-sink state: one name, one sink.
                    if (!m.name.empty() && !names.insert(m.name).second)
                        ck.add(where + ".name", "\"" + m.name + "\" is used twice");
                    c.emails.push_back(std::move(m));
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
