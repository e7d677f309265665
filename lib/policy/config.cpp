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

#include "common/host_port.hpp"
#include "common/text.hpp"
#include "deliver/config.hpp"
#include "policy/reader.hpp"

namespace keyrot::policy {
namespace detail {

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

// "host", "host:port", "[v6]", "[v6]:port", the bracketed part an IPv6 address.
std::optional<host_port> split_authority(std::string_view s) {
    auto hp = split_host_port(s);
    if (hp && hp->bracketed && !ipv6(hp->host)) return std::nullopt;
    return hp;
}

bool loopback(const host_port& hp) {
    if (hp.bracketed) return hp.host == "::1" || ascii_lower(hp.host) == "0:0:0:0:0:0:0:1";
    int first = -1;
    if (ipv4(hp.host, &first)) return first == 127;
    return ascii_lower(hp.host) == "localhost";
}

// nullopt when fine; the reason otherwise.
std::optional<std::string> url_error(std::string_view url) {
    std::string_view rest;
    bool https = false;
    const std::string l = ascii_lower(url);
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
    const auto hp = split_authority(authority);
    if (!hp || hp->host.empty() || (!hp->bracketed && !hostname(hp->host)) ||
        (!hp->port.empty() && !parse_port(hp->port)))
        return "bad host or port in " + quote(url);
    if (!https && !loopback(*hp))
        return "plain http:// is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), "
               "got " +
               quote(hp->host) + "; use https://";
    return std::nullopt;
}

std::optional<std::string> listen_error(std::string_view s) {
    const auto hp = split_authority(s);
    if (!hp || hp->port.empty() || !parse_port(hp->port, true) ||
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
    std::optional<std::string> method_name;  // set when given as a string
    if (const auto* g = get(*m, "method")) {
        positions["apigee.auth.method"] = {g->at().line, g->at().column};
        method_name = r.string(*g, "apigee.auth.method");
    }
    str("path", a.path);
    str("env", a.env);
    str("userEnv", a.user_env);
    str("passwordEnv", a.password_env);
    str("tokenUrl", a.token_url);
    str("user", a.user);
    str("passwordFile", a.password_file);
    str("mfaSeedFile", a.mfa_seed_file);
    str("passcodeFile", a.passcode_file);
    const auto* mf = get(*m, "method");
    const pos at = mf ? mf->at() : f.at();
    if (method_name) {
        const auto parsed = parse_auth_method(*method_name);
        if (!parsed) {
            r.error(at, "apigee.auth.method",
                    "unknown auth method " + quote(*method_name) +
                        ": use google, token-file, token-env, basic, edge-oauth or none");
            return;
        }
        a.method = *parsed;
    }
    const std::string method(to_string(a.method));

    struct need {
        const char* field;
        const std::string* value;
    };
    std::vector<need> needed;
    // Fields a method takes without needing them.
    std::vector<std::string_view> optional;
    switch (a.method) {
        case auth_method::token_file:
            needed = {{"path", &a.path}};
            break;
        case auth_method::token_env:
            needed = {{"env", &a.env}};
            break;
        case auth_method::basic:
            needed = {{"userEnv", &a.user_env}, {"passwordEnv", &a.password_env}};
            break;
        case auth_method::google:
            // An optional key file (else GOOGLE_APPLICATION_CREDENTIALS,
            // $CREDENTIALS_DIRECTORY/sa-key.json, then the metadata server).
            optional = {"path"};
            break;
        case auth_method::edge_oauth:
            // A SAML zone's passcode, or user and password (and an MFA seed).
            optional = {"tokenUrl", "passcodeFile"};
            if (a.passcode_file.empty()) {
                needed = {{"passwordFile", &a.password_file}};
                optional.insert(optional.end(), {"user", "userEnv", "mfaSeedFile"});
                if (a.user.empty() == a.user_env.empty())
                    r.error(at, "apigee.auth.user",
                            a.user.empty() ? "auth method edge-oauth needs the user name: user "
                                             "(or userEnv, a variable holding it), or "
                                             "passcodeFile for a SAML zone"
                                           : "give user or userEnv, not both");
            }
            if (!a.token_url.empty()) {
                if (auto why = url_error(a.token_url)) {
                    const auto* g = get(*m, "tokenUrl");
                    r.error(g ? g->at() : at, "apigee.auth.tokenUrl", *why);
                }
            }
            break;
        case auth_method::none:
            break;
    }
    for (const auto& n : needed)
        if (n.value->empty())
            r.error(at, std::string("apigee.auth.") + n.field,
                    "auth method " + method + " needs " + n.field);
    // A sub-field the method does not use is most likely a mistake (wrong method).
    for (const char* name : {"path", "env", "userEnv", "passwordEnv", "tokenUrl", "user",
                             "passwordFile", "mfaSeedFile", "passcodeFile"}) {
        const auto* g = get(*m, name);
        if (!g) continue;
        const bool used = std::find(optional.begin(), optional.end(), name) != optional.end() ||
                          std::any_of(needed.begin(), needed.end(), [&](const need& n) {
                              return std::string_view(n.field) == name;
                          });
        if (!used)
            r.error(pos_of(g->key.Mark()), std::string("apigee.auth.") + name,
                    "not used by auth method " + method +
                        (a.method == auth_method::edge_oauth && !a.passcode_file.empty()
                             ? " with passcodeFile (a SAML zone's passcode replaces the user, "
                               "password and MFA code)"
                             : ""));
    }
}

// apigee.edge: {cloud, appListRows}, only with flavor edge; fills the
// defaults (Public Cloud when the url is Public Cloud's).
void read_edge(reader& r, const field_ref* f, apigee_config& a, bool url_given) {
    const auto host_of = [](const std::string& url) {
        const auto b = url.find("://");
        const std::string rest = b == std::string::npos ? url : url.substr(b + 3);
        return ascii_lower(rest.substr(0, rest.find_first_of(":/?#")));
    };
    const bool public_url = !url_given || host_of(a.url) == host_of(std::string(k_edge_public_url));
    a.edge_private_cloud = a.edge() && !public_url;
    std::optional<long long> rows;
    pos rows_at;
    if (f) {
        if (!a.edge()) {
            r.error(f->at(), "apigee.edge",
                    "only with apigee.flavor: edge (this config's flavor is " + a.flavor + ")");
            return;
        }
        auto em = r.map(f->value, f->at(), "apigee.edge", config_table());
        if (!em) return;
        if (const auto* g = get(*em, "cloud")) {
            if (auto s = r.string(*g, "apigee.edge.cloud")) {
                if (*s == "public" || *s == "private")
                    a.edge_private_cloud = *s == "private";
                else
                    r.error(g->at(), "apigee.edge.cloud",
                            "unknown cloud " + quote(*s) + ": use public or private");
            }
        }
        if (const auto* g = get(*em, "appListRows")) {
            rows = r.integer(*g, "apigee.edge.appListRows");
            rows_at = g->at();
        }
    }
    if (!a.edge()) return;
    const int cap = a.edge_private_cloud ? 10000 : 1000;
    a.app_list_rows = cap;
    if (rows) {
        if (*rows < 2 || *rows > cap)
            r.error(rows_at, "apigee.edge.appListRows",
                    "must be between 2 and " + std::to_string(cap) + " on Edge " +
                        (a.edge_private_cloud ? "Private" : "Public") +
                        " Cloud (the org app list's `rows` limit), got " + std::to_string(*rows));
        else
            a.app_list_rows = static_cast<int>(*rows);
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
        const std::string l = ascii_lower(s);
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
            if (const auto* g = get(*am, "flavor")) {
                c.positions["apigee.flavor"] = {g->at().line, g->at().column};
                if (auto s = r.string(*g, "apigee.flavor")) {
                    if (*s == "x" || *s == "edge")
                        a.flavor = *s;
                    else
                        r.error(g->at(), "apigee.flavor",
                                "unknown flavor " + quote(*s) +
                                    ": use x (Apigee X and hybrid) or edge (Apigee Edge, Public "
                                    "or Private Cloud)");
                }
            }
            bool url_given = false;
            if (const auto* g = get(*am, "url")) {
                if (auto s = r.string(*g, "apigee.url")) {
                    a.url = *s;
                    url_given = true;
                    if (auto why = url_error(*s)) r.error(g->at(), "apigee.url", *why);
                }
            }
            if (a.edge() && !url_given) a.url = std::string(k_edge_public_url);
            read_edge(r, get(*am, "edge"), a, url_given);
            if (const auto* g = get(*am, "auth")) read_auth(r, *g, a.auth, c.positions);
            if (const auto* g = get(*am, "caFile")) {
                const pos p = g->at();
                c.positions["apigee.caFile"] = {p.line, p.column};
                if (auto s = r.string(*g, "apigee.caFile")) a.ca_file = *s;
            }
            if (const auto* g = get(*am, "timeout")) {
                if (auto d = r.duration(*g, "apigee.timeout", false)) {
                    if (**d <= milliseconds(0))
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
            if (**d <= milliseconds(0))
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
                for (const auto& [name, what] : {std::pair{"caFile", "cannot read CA file"},
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
    if (c.apigee.auth.method == auth_method::edge_oauth) {
        check("apigee.auth.passwordFile", c.apigee.auth.password_file, "cannot read password file");
        check("apigee.auth.mfaSeedFile", c.apigee.auth.mfa_seed_file, "cannot read MFA seed file");
        check("apigee.auth.passcodeFile", c.apigee.auth.passcode_file, "cannot read passcode file");
    }
    if (c.apigee.auth.method == auth_method::token_file)
        check("apigee.auth.path", c.apigee.auth.path, "cannot read token file");
    else if (c.apigee.auth.method == auth_method::google)
        check("apigee.auth.path", c.apigee.auth.path, "cannot read service-account key file");
}

// Auth methods the flavor cannot use.
void flavor_auth_refusals(const config& c, std::vector<diagnostic>& out) {
    const auto& a = c.apigee;
    if (!a.edge() && a.auth.method == auth_method::edge_oauth)
        out.push_back(about_field(c, "apigee.auth.method",
                                  "edge-oauth logs in to Apigee Edge's login server: only with "
                                  "apigee.flavor: edge (Apigee X and hybrid take Google tokens: "
                                  "use google)"));
    if (a.edge() && a.auth.method == auth_method::google)
        out.push_back(about_field(
            c, c.positions.count("apigee.auth.method") ? "apigee.auth.method" : "apigee.flavor",
            "Apigee Edge does not take Google OAuth tokens: use basic or edge-oauth (or "
            "token-file / token-env with an Edge access token); google is the default method, "
            "so flavor edge needs apigee.auth"));
    if (a.edge() && a.auth.method == auth_method::edge_oauth && a.auth.token_url.empty() &&
        a.edge_private_cloud)
        out.push_back(about_field(c, "apigee.auth.tokenUrl",
                                  "edge-oauth on Edge Private Cloud needs tokenUrl: your SSO "
                                  "server's /oauth/token (login.apigee.com serves Public Cloud "
                                  "only)"));
}

}  // namespace detail

using namespace detail;

std::vector<diagnostic> missing_credentials(const config& c) {
    std::vector<diagnostic> out;
    auto need = [&](const std::string& field, const std::string& var) {
        if (var.empty()) return;
        const char* v = std::getenv(var.c_str());
        if (v == nullptr || *v == '\0')
            out.push_back(about_field(c, field,
                                      "environment variable " + var + " (auth method " +
                                          std::string(to_string(c.apigee.auth.method)) + ") is " +
                                          (v == nullptr ? "not set" : "empty")));
    };
    if (c.apigee.auth.method == auth_method::token_env) need("apigee.auth.env", c.apigee.auth.env);
    if (c.apigee.auth.method == auth_method::edge_oauth)
        need("apigee.auth.userEnv", c.apigee.auth.user_env);
    if (c.apigee.auth.method == auth_method::basic) {
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
    for (auto* f :
         {&c.apigee.auth.password_file, &c.apigee.auth.mfa_seed_file, &c.apigee.auth.passcode_file})
        if (!f->empty()) *f = resolve(dir, *f);
    flavor_auth_refusals(c, res.diagnostics);
    resolve_notify_files(dir, c);
    check_named_files(c, res.diagnostics);

    auto pr = load_policies_impl(c.policies_path, "policies",
                                 policies_at.line ? std::optional<pos>(policies_at) : std::nullopt,
                                 c.source);
    res.diagnostics.insert(res.diagnostics.end(), pr.diagnostics.begin(), pr.diagnostics.end());
    c.policies = std::move(pr.policies);
    const auto refused = flavor_refusals(c.apigee.flavor, c.policies);
    res.diagnostics.insert(res.diagnostics.end(), refused.begin(), refused.end());
    if (!has_errors(res.diagnostics)) res.cfg = std::move(c);
    return res;
}

policies_result load_policies(const std::filesystem::path& path) {
    auto pr = load_policies_impl(path, "", std::nullopt, "");
    const auto refused = flavor_refusals("x", pr.policies);
    pr.diagnostics.insert(pr.diagnostics.end(), refused.begin(), refused.end());
    return pr;
}

std::vector<diagnostic> flavor_refusals(const std::string& flavor,
                                        const std::vector<policy>& policies) {
    std::vector<diagnostic> out;
    const bool edge = flavor == "edge";
    for (const auto& p : policies) {
        auto refuse = [&](const std::string& field, std::string message) {
            diagnostic d{diagnostic::severity::error, p.source, 0, 0, field, std::move(message)};
            if (auto it = p.positions.find(field); it != p.positions.end()) {
                d.line = it->second.first;
                d.column = it->second.second;
            }
            out.push_back(std::move(d));
        };
        const auto& rot = p.rotation;
        if (!edge && rot.method == rotation_method::generate && !p.match.app_groups.empty())
            refuse("rotation.method",
                   "generate cannot rotate team (AppGroup) apps, which match.appGroups "
                   "selects: Apigee has no generate-key call for them; use import, or "
                   "a separate policy for the teams");
        if (edge && rot.method == rotation_method::generate && !p.match.app_groups.empty())
            refuse("rotation.method",
                   "policy " + quote(p.name) +
                       " matches company apps (match.appGroups) with method generate: Edge's "
                       "reference has no generate-key call for company apps (a POST on a "
                       "company app only approves or revokes it); rotate them with method: "
                       "import, keyLifetime: never and a maxAge, or a separate policy for "
                       "the companies");
        if (edge && rot.method == rotation_method::import_key && rot.key_lifetime)
            refuse(
                p.positions.count("rotation.method") ? "rotation.method" : "rotation.keyLifetime",
                "policy " + quote(p.name) +
                    ": method import with a keyLifetime cannot work on Apigee Edge: Edge "
                    "cannot set an expiry on an imported key (keys/create takes consumerKey "
                    "and consumerSecret only); use method: generate (import is the default "
                    "method), or keyLifetime: never with a maxAge");
    }
    return out;
}

}  // namespace keyrot::policy
