#include "deliver/naming.hpp"

#include <algorithm>

namespace keyrot::deliver {

namespace {

error config_error(std::string message) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(message);
    return e;
}

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

const attribute_rule* find_rule(const std::vector<attribute_rule>& rules, std::string_view name) {
    for (const auto& r : rules)
        if (r.attribute == name) return &r;
    return nullptr;
}

// One placeholder or literal run of a template.
struct piece {
    bool placeholder = false;
    std::string text;  // literal text, or the placeholder's inside ("app", "attr:NAME")
};

result<std::vector<piece>> split(std::string_view tmpl) {
    std::vector<piece> out;
    std::string lit;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        const char c = tmpl[i];
        if (c == '{' && i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
            lit += '{';
            ++i;
        } else if (c == '}' && i + 1 < tmpl.size() && tmpl[i + 1] == '}') {
            lit += '}';
            ++i;
        } else if (c == '}') {
            return config_error("unbalanced '}' (write '}}' for a literal brace)");
        } else if (c == '{') {
            const auto end = tmpl.find('}', i);
            if (end == std::string_view::npos) return config_error("unclosed '{'");
            if (!lit.empty()) out.push_back({false, std::move(lit)});
            lit.clear();
            out.push_back({true, std::string(tmpl.substr(i + 1, end - i - 1))});
            i = end;
        } else {
            lit += c;
        }
    }
    if (!lit.empty()) out.push_back({false, std::move(lit)});
    return out;
}

constexpr std::string_view k_attr = "attr:";

result<void> check_placeholder(const std::string& p, const std::vector<attribute_rule>& rules) {
    if (p == "org" || p == "developer" || p == "team" || p == "app") return ok_t{};
    if (p.rfind(k_attr, 0) == 0) {
        const std::string name = p.substr(k_attr.size());
        if (name.empty()) return config_error("{attr:} names no attribute");
        if (!find_rule(rules, name))
            return config_error("{attr:" + name + "}: attribute " + name +
                                " is not in attributeTargets (an app attribute may name a "
                                "target only inside an allowed prefix)");
        return ok_t{};
    }
    return config_error("unknown placeholder {" + p +
                        "} (known: {org} {developer} {team} {app} {attr:NAME})");
}

std::string attribute_value(const app& a, std::string_view name) {
    for (const auto& at : a.attributes)
        if (at.name == name) return at.value;
    return {};
}

// An attribute value is one plain segment: no separators, no traversal.
std::string illegal_attribute_value(std::string_view v) {
    if (v == "." || v == "..") return "is '.' or '..'";
    if (v.size() > 253) return "is longer than 253 characters";
    for (const char c : v)
        if (!(alnum(c) || c == '.' || c == '_' || c == '-'))
            return "has a character outside [A-Za-z0-9._-]";
    return {};
}

}  // namespace

std::string why_not_applied(std::string_view tmpl, const app& a) {
    auto pieces = split(tmpl);
    if (!pieces) return {};
    for (const auto& p : *pieces) {
        if (!p.placeholder) continue;
        if (p.text == "team" && a.app_group.empty())
            return "uses {team}, and app " + a.name + " is a developer's app, not a team's";
        if (p.text.rfind(k_attr, 0) == 0 &&
            attribute_value(a, p.text.substr(k_attr.size())).empty())
            return "uses {" + p.text + "}, and app " + a.name + " does not have that attribute";
    }
    return {};
}

bool is_dns_label(std::string_view s) {
    if (s.empty() || s.size() > 63) return false;
    if (!lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '-'; });
}

std::string illegal_name(std::string_view name, name_kind kind) {
    if (name.empty()) return "is empty";
    switch (kind) {
        case name_kind::kubernetes_name: {
            if (name.size() > 253) return "is longer than 253 characters";
            std::size_t start = 0;
            while (true) {
                const auto dot = name.find('.', start);
                const auto label = name.substr(
                    start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
                if (label.empty() || !lower_alnum(label.front()) || !lower_alnum(label.back()) ||
                    !std::all_of(label.begin(), label.end(),
                                 [](char c) { return lower_alnum(c) || c == '-'; }))
                    return "is not a Kubernetes object name (RFC 1123 subdomain: lower-case "
                           "letters, digits, '-' and '.', starting and ending alphanumeric)";
                if (dot == std::string_view::npos) break;
                start = dot + 1;
            }
            return {};
        }
        case name_kind::vault_path: {
            if (name.size() > 512) return "is longer than 512 characters";
            std::size_t start = 0;
            while (true) {
                const auto slash = name.find('/', start);
                const auto seg =
                    name.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                       : slash - start);
                if (seg.empty()) return "has an empty path segment (or a leading/trailing '/')";
                if (seg == "." || seg == "..") return "has a '.' or '..' path segment";
                for (const char c : seg)
                    if (!(alnum(c) || c == '.' || c == '_' || c == '-' || c == '@' || c == '+'))
                        return "has a character outside [A-Za-z0-9._@+-/]";
                if (slash == std::string_view::npos) break;
                start = slash + 1;
            }
            return {};
        }
        case name_kind::secret_manager_id:
            if (name.size() > 255) return "is longer than 255 characters";
            for (const char c : name)
                if (!(alnum(c) || c == '_' || c == '-'))
                    return "is not a Secret Manager secret id ([A-Za-z0-9_-]{1,255})";
            return {};
    }
    return "has an unknown kind";
}

result<void> check_template(std::string_view tmpl, const std::vector<attribute_rule>& rules) {
    if (tmpl.empty()) return config_error("is empty");
    auto pieces = split(tmpl);
    if (!pieces) return pieces.err();
    for (const auto& p : *pieces)
        if (p.placeholder) {
            auto ok = check_placeholder(p.text, rules);
            if (!ok) return ok.err();
        }
    return ok_t{};
}

result<std::optional<std::string>> render_name(std::string_view tmpl, const app& a,
                                               const std::vector<attribute_rule>& rules,
                                               name_kind kind) {
    auto pieces = split(tmpl);
    if (!pieces) return pieces.err();
    std::string out;
    for (const auto& p : *pieces) {
        if (!p.placeholder) {
            out += p.text;
            continue;
        }
        auto ok = check_placeholder(p.text, rules);
        if (!ok) return ok.err();
        if (p.text == "org") {
            out += a.organization;
        } else if (p.text == "developer") {
            out += a.app_group.empty() ? a.developer_email : a.app_group;
        } else if (p.text == "team") {
            if (a.app_group.empty()) return std::optional<std::string>{};  // a developer's app
            out += a.app_group;
        } else if (p.text == "app") {
            out += a.name;
        } else {
            const std::string name = p.text.substr(k_attr.size());
            const std::string v = attribute_value(a, name);
            if (v.empty()) return std::optional<std::string>{};
            const attribute_rule* rule = find_rule(rules, name);
            if (rule->prefix.empty() || v.rfind(rule->prefix, 0) != 0)
                return config_error("attribute " + name + " = \"" + v +
                                    "\" is outside the allowed prefix \"" + rule->prefix + "\"");
            if (auto why = illegal_attribute_value(v); !why.empty())
                return config_error("attribute " + name + " = \"" + v + "\" " + why);
            out += v;
        }
    }
    if (auto why = illegal_name(out, kind); !why.empty())
        return config_error("target name \"" + out + "\" (from \"" + std::string(tmpl) + "\") " +
                            why);
    return std::optional<std::string>{std::move(out)};
}

}  // namespace keyrot::deliver
