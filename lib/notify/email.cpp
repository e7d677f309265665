#include "notify/email.hpp"

#include <date/date.h>
#include <openssl/evp.h>

#include <algorithm>
#include <locale>
#include <nlohmann/json.hpp>

namespace keyrot::notify {
namespace {

// Template tags: {{name}}, {{#name}}, {{^name}}, {{/name}}.
struct tag {
    std::size_t begin = std::string_view::npos;  // of "{{"
    std::size_t end = 0;                         // after "}}"
    char kind = 0;                               // 0, '#', '^', '/'
    std::string_view name;
};

tag next_tag(std::string_view t, std::size_t from) {
    tag out;
    const auto b = t.find("{{", from);
    if (b == std::string_view::npos) return out;
    const auto e = t.find("}}", b + 2);
    if (e == std::string_view::npos) {
        out.begin = b;
        out.end = t.size();
        out.kind = '!';  // unterminated
        return out;
    }
    out.begin = b;
    out.end = e + 2;
    std::string_view inner = t.substr(b + 2, e - b - 2);
    if (!inner.empty() && (inner[0] == '#' || inner[0] == '^' || inner[0] == '/')) {
        out.kind = inner[0];
        inner.remove_prefix(1);
    }
    out.name = inner;
    return out;
}

// Where the section opened by a tag ending at `from` closes: the matching
// {{/name}} (same-name sections may nest). npos when it does not.
tag find_close(std::string_view t, std::size_t from, std::string_view name) {
    int depth = 0;
    for (tag g = next_tag(t, from); g.begin != std::string_view::npos; g = next_tag(t, g.end)) {
        if (g.kind == '!') break;
        if (g.name != name) continue;
        if (g.kind == '#' || g.kind == '^') ++depth;
        if (g.kind == '/' && depth-- == 0) return g;
    }
    return tag{};
}

void render_into(std::string_view t, const email_values& v, std::string& out) {
    std::size_t pos = 0;
    while (pos < t.size()) {
        tag g = next_tag(t, pos);
        if (g.begin == std::string_view::npos || g.kind == '!') {
            out.append(t.substr(pos));
            return;
        }
        out.append(t.substr(pos, g.begin - pos));
        const auto it = v.find(std::string(g.name));
        const bool set = it != v.end() && !it->second.empty();
        if (g.kind == 0) {
            if (set) out += it->second;
            pos = g.end;
        } else if (g.kind == '#' || g.kind == '^') {
            const tag close = find_close(t, g.end, g.name);
            if (close.begin == std::string_view::npos) {
                out.append(t.substr(g.begin));  // template_error() refuses this
                return;
            }
            if (set == (g.kind == '#')) render_into(t.substr(g.end, close.begin - g.end), v, out);
            pos = close.end;
        } else {
            pos = g.end;  // a stray close: template_error() refuses it
        }
    }
}

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()),
                                  static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

bool ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 128; });
}

// One line: CR, LF and other controls become spaces.
std::string one_line(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 32 || c == 127) c = ' ';
    return out;
}

// Lines end in CRLF (a lone CR or LF becomes CRLF).
std::string crlf(std::string_view s) {
    std::string out;
    out.reserve(s.size() + s.size() / 40);
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r') {
            out += "\r\n";
            if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
        } else if (s[i] == '\n') {
            out += "\r\n";
        } else {
            out += s[i];
        }
    }
    if (!out.ends_with("\r\n")) out += "\r\n";
    return out;
}

// 7bit needs ASCII and lines of at most 998 characters (RFC 5322).
bool fits_7bit(std::string_view s) {
    std::size_t line = 0;
    for (char c : s) {
        if (static_cast<unsigned char>(c) >= 128) return false;
        line = (c == '\n' || c == '\r') ? 0 : line + 1;
        if (line > 998) return false;
    }
    return true;
}

std::string summary(const email_values& v, std::string_view type) {
    auto get = [&](const char* k) {
        const auto it = v.find(k);
        return it == v.end() ? std::string() : it->second;
    };
    const std::string app = get("app");
    const std::string key = get("key");
    if (type == "key.rotated") {
        std::string s = "A new API key for app " + app + " is ready";
        if (!get("replacesRevokedAt").empty())
            s += "; the old key stops working at " + get("replacesRevokedAt");
        return s;
    }
    if (type == "key.expiring")
        return "API key " + key + " of app " + app + " stops working at " + get("expiresAt");
    if (type == "key.revoked") return "API key " + key + " of app " + app + " has been revoked";
    if (type == "key.deleted") return "API key " + key + " of app " + app + " has been deleted";
    if (type == "rotation.failed") return "The API key of app " + app + " could not be rotated";
    if (type == "app.stranded") return "App " + app + " needs attention: its keys are at risk";
    return "Notification about app " + app;
}

}  // namespace

const email_template& default_email_template() {
    static const email_template t = {
        "[keyrotd {{organization}}] {{summary}}",
        "Hello,\n"
        "\n"
        "{{summary}}.\n"
        "\n"
        "  Organization: {{organization}}\n"
        "  App:          {{app}}\n"
        "{{#developer}}  Developer:    {{developer}}\n{{/developer}}"
        "{{#team}}  Team:         {{team}}\n{{/team}}"
        "{{#policy}}  Policy:       {{policy}}\n{{/policy}}"
        "\n"
        "{{#isRotated}}Your app has a new API key, {{key}}"
        "{{#replaces}}; it replaces the key {{replaces}}{{/replaces}}.\n"
        "{{#expiresAt}}The new key expires: {{expiresAt}}.\n{{/expiresAt}}"
        "{{#replacesRevokedAt}}The old key {{replaces}} will be revoked at {{replacesRevokedAt}}:\n"
        "switch your systems to the new key before then.\n{{/replacesRevokedAt}}"
        "{{/isRotated}}"
        "{{#isExpiring}}The key {{key}} stops working at {{expiresAt}} "
        "(warning {{leadTime}} ahead).\n{{/isExpiring}}"
        "{{#isRevoked}}The key {{key}} has been revoked: calls made with it fail.\n{{/isRevoked}}"
        "{{#isDeleted}}The key {{key}} has been deleted.\n{{/isDeleted}}"
        "{{#isFailed}}The key {{key}} could not be rotated: {{reason}}\n{{/isFailed}}"
        "{{#isStranded}}{{reason}}\n{{/isStranded}}"
        "\n"
        "{{#portalUrl}}Your app's keys are in the developer portal: {{portalUrl}}\n\n{{/portalUrl}}"
        "Keys are named by fingerprint (the first 16 hex digits of the SHA-256 of the\n"
        "consumer key); this message never contains a key or secret.\n"
        "\n"
        "-- \n"
        "keyrotd, event {{id}} at {{timestamp}}\n",
    };
    return t;
}

const std::vector<std::string>& email_template_names() {
    static const std::vector<std::string> names = {"id",        "type",
                                                   "timestamp", "organization",
                                                   "developer", "developerStatus",
                                                   "team",      "owner",
                                                   "app",       "policy",
                                                   "key",       "replaces",
                                                   "expiresAt", "replacesRevokedAt",
                                                   "leadTime",  "reason",
                                                   "summary",   "portalUrl",
                                                   "isRotated", "isExpiring",
                                                   "isRevoked", "isDeleted",
                                                   "isFailed",  "isStranded"};
    return names;
}

std::optional<std::string> template_error(std::string_view t) {
    const auto& names = email_template_names();
    std::vector<std::string_view> open;
    for (tag g = next_tag(t, 0); g.begin != std::string_view::npos; g = next_tag(t, g.end)) {
        if (g.kind == '!') return "a {{ without }}";
        if (std::find(names.begin(), names.end(), g.name) == names.end()) {
            std::string known;
            for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
            return "unknown name {{" + std::string(g.name) + "}} (known: " + known + ")";
        }
        if (g.kind == '#' || g.kind == '^') {
            open.push_back(g.name);
        } else if (g.kind == '/') {
            if (open.empty() || open.back() != g.name)
                return "{{/" + std::string(g.name) + "}} closes no open section";
            open.pop_back();
        }
    }
    if (!open.empty()) return "section {{#" + std::string(open.back()) + "}} is not closed";
    return std::nullopt;
}

result<email_values> email_facts(std::string_view body, const std::string& portal_url) {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string() ||
        !j.contains("data") || !j["data"].is_object())
        return error{error::kind::protocol, 0, "", "not an event payload"};
    email_values v;
    const std::string type = j["type"].get<std::string>();
    v["type"] = type;
    if (j.contains("timestamp") && j["timestamp"].is_string())
        v["timestamp"] = j["timestamp"].get<std::string>();
    for (const auto& [k, val] : j["data"].items())
        if (val.is_string()) v[k] = val.get<std::string>();
    v["owner"] = v.count("developer") ? v["developer"] : v["team"];
    v["portalUrl"] = portal_url;
    v["isRotated"] = type == "key.rotated" ? "yes" : "";
    v["isExpiring"] = type == "key.expiring" ? "yes" : "";
    v["isRevoked"] = type == "key.revoked" ? "yes" : "";
    v["isDeleted"] = type == "key.deleted" ? "yes" : "";
    v["isFailed"] = type == "rotation.failed" ? "yes" : "";
    v["isStranded"] = type == "app.stranded" ? "yes" : "";
    v["summary"] = summary(v, type);
    return v;
}

std::string render_template(std::string_view text, const email_values& values) {
    std::string out;
    render_into(text, values, out);
    return out;
}

std::string rfc5322_date(sys_ms ts) {
    // The C locale's day and month names, as RFC 5322 spells them.
    return date::format(std::locale::classic(), "%a, %d %b %Y %T +0000",
                        std::chrono::floor<std::chrono::seconds>(ts));
}

std::string compose_message(const email_message& m, sys_ms date) {
    std::string subject = one_line(m.subject);
    if (!ascii(subject)) subject = "=?UTF-8?B?" + base64(subject) + "?=";
    std::string to;
    for (const auto& a : m.to) to += (to.empty() ? "" : ", ") + one_line(a);
    std::string h;
    h += "Date: " + rfc5322_date(date) + "\r\n";
    h += "From: " + one_line(m.from) + "\r\n";
    if (!to.empty()) h += "To: " + to + "\r\n";
    h += "Subject: " + subject + "\r\n";
    h += "Message-ID: <" + one_line(m.message_id) + ">\r\n";
    for (const auto& [k, val] : m.extra_headers) h += one_line(k) + ": " + one_line(val) + "\r\n";
    h += "MIME-Version: 1.0\r\n";
    h += "Content-Type: text/plain; charset=utf-8\r\n";
    if (fits_7bit(m.body)) {
        h += "Content-Transfer-Encoding: 7bit\r\n\r\n";
        return h + crlf(m.body);
    }
    h += "Content-Transfer-Encoding: base64\r\n\r\n";
    const std::string b = base64(crlf(m.body));
    std::string wrapped;
    for (std::size_t i = 0; i < b.size(); i += 76) wrapped += b.substr(i, 76) + "\r\n";
    return h + wrapped;
}

}  // namespace keyrot::notify
