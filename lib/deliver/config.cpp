#include "deliver/config.hpp"

#include <algorithm>
#include <set>

#include "http/rules.hpp"

namespace keyrot::deliver {

using json = nlohmann::json;

namespace {

error field_error(const std::string& field, const std::string& why) {
    error e;  // (not fields.hpp's make_error: the config fuzzer builds this file without Asio)
    e.what = error::kind::config;
    e.message = field + ": " + why;
    return e;
}

// Reads the fields of one object, remembering which were seen so that unknown
// keys can be reported.
class reader {
  public:
    reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

    std::optional<error> string(const char* key, std::string& out, bool required) {
        seen_.insert(key);
        const auto it = j_.find(key);
        if (it == j_.end()) {
            if (required) return field_error(field(key), "is required");
            return std::nullopt;
        }
        if (!it->is_string()) return field_error(field(key), "must be a string");
        out = it->get<std::string>();
        if (out.empty()) return field_error(field(key), "must not be empty");
        return std::nullopt;
    }

    std::optional<error> string_map(const char* key, std::map<std::string, std::string>& out) {
        seen_.insert(key);
        const auto it = j_.find(key);
        if (it == j_.end()) return std::nullopt;
        if (!it->is_object()) return field_error(field(key), "must be a map of strings");
        for (const auto& [k, v] : it->items()) {
            if (k.empty()) return field_error(field(key), "has an empty key");
            if (!v.is_string()) return field_error(field(key) + "." + k, "must be a string");
            out[k] = v.get<std::string>();
        }
        return std::nullopt;
    }

    std::optional<error> unknown_keys() const {
        for (const auto& [k, v] : j_.items())
            if (!seen_.count(k)) return field_error(field(k), "unknown field");
        return std::nullopt;
    }

    std::string field(const std::string& key) const { return where_ + "." + key; }

  private:
    const json& j_;
    std::string where_;
    std::set<std::string> seen_;
};

#define DELIVER_TRY(expr)                 \
    do {                                  \
        if (auto e_ = (expr)) return *e_; \
    } while (0)

std::optional<error> check_template_field(const std::string& field, const std::string& tmpl,
                                          const std::vector<attribute_rule>& rules) {
    auto ok = check_template(tmpl, rules);
    if (!ok) return field_error(field, ok.err().message);
    return std::nullopt;
}

std::optional<error> check_labels(const std::string& field,
                                  const std::map<std::string, std::string>& labels) {
    // "app.kubernetes.io/managed-by": fields.hpp's k_managed_by_label.
    if (labels.count("app.kubernetes.io/managed-by") || labels.count("managed-by"))
        return field_error(field, "must not set the managed-by label (keyrotd sets it)");
    return std::nullopt;
}

// Google's label rules: keys [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63}.
std::optional<error> check_google_labels(const std::string& field,
                                         const std::map<std::string, std::string>& labels) {
    const auto ok_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    };
    for (const auto& [k, v] : labels) {
        if (k.size() > 63 || !(k[0] >= 'a' && k[0] <= 'z') ||
            !std::all_of(k.begin(), k.end(), ok_char))
            return field_error(field + "." + k,
                               "is not a Google label key ([a-z][a-z0-9_-]{0,62})");
        if (v.size() > 63 || !std::all_of(v.begin(), v.end(), ok_char))
            return field_error(field + "." + k, "is not a Google label value ([a-z0-9_-]{0,63})");
    }
    return std::nullopt;
}

// Kubernetes label values: at most 63, alphanumeric at both ends, [-_.A-Za-z0-9] between.
std::optional<error> check_kube_labels(const std::string& field,
                                       const std::map<std::string, std::string>& labels) {
    const auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    for (const auto& [k, v] : labels) {
        const bool ok = v.empty() || (v.size() <= 63 && alnum(v.front()) && alnum(v.back()) &&
                                      std::all_of(v.begin(), v.end(), [&](char c) {
                                          return alnum(c) || c == '-' || c == '_' || c == '.';
                                      }));
        if (!ok) return field_error(field + "." + k, "is not a Kubernetes label value");
    }
    return std::nullopt;
}

result<target_config> parse_kube(const json& j, const std::string& where,
                                 const std::vector<attribute_rule>& rules) {
    reader r(j, where);
    kubernetes_secret_config c;
    std::string kind;
    DELIVER_TRY(r.string("kind", kind, true));
    DELIVER_TRY(r.string("namespace", c.namespace_, true));
    if (!is_dns_label(c.namespace_))
        return field_error(r.field("namespace"),
                           "must be a literal namespace name (RFC 1123 label; no placeholders: "
                           "RBAC grants keyrotd only the namespaces configured)");
    DELIVER_TRY(r.string("name", c.name, true));
    DELIVER_TRY(check_template_field(r.field("name"), c.name, rules));
    DELIVER_TRY(r.string_map("annotations", c.annotations));
    DELIVER_TRY(r.string_map("labels", c.labels));
    DELIVER_TRY(check_labels(r.field("labels"), c.labels));
    DELIVER_TRY(check_kube_labels(r.field("labels"), c.labels));
    DELIVER_TRY(r.unknown_keys());
    return target_config{std::move(c)};
}

result<target_config> parse_vault(const json& j, const std::string& where,
                                  const std::vector<attribute_rule>& rules) {
    reader r(j, where);
    vault_config c;
    std::string kind;
    DELIVER_TRY(r.string("kind", kind, true));
    DELIVER_TRY(r.string("address", c.address, true));
    if (auto u = http::parse_url(c.address); !u)
        return field_error(r.field("address"), u.err().message);
    DELIVER_TRY(r.string("mount", c.mount, false));
    if (auto why = illegal_name(c.mount, name_kind::vault_path); !why.empty())
        return field_error(r.field("mount"), "\"" + c.mount + "\" " + why);
    DELIVER_TRY(r.string("path", c.path, true));
    DELIVER_TRY(check_template_field(r.field("path"), c.path, rules));
    DELIVER_TRY(r.string("tokenFile", c.token_file, false));
    DELIVER_TRY(r.string("kubernetesRole", c.kubernetes_role, false));
    DELIVER_TRY(r.string("kubernetesAuthMount", c.kubernetes_mount, false));
    if (auto why = illegal_name(c.kubernetes_mount, name_kind::vault_path); !why.empty())
        return field_error(r.field("kubernetesAuthMount"), "\"" + c.kubernetes_mount + "\" " + why);
    DELIVER_TRY(r.string("caFile", c.ca_file, false));
    if (c.token_file.empty() == c.kubernetes_role.empty())
        return field_error(where, "needs exactly one of tokenFile and kubernetesRole");
    if (!c.token_file.empty() && j.contains("kubernetesAuthMount"))
        return field_error(r.field("kubernetesAuthMount"), "is used only with kubernetesRole");
    DELIVER_TRY(r.unknown_keys());
    return target_config{std::move(c)};
}

bool is_project(const std::string& p) {
    if (p.empty() || p.size() > 30) return false;
    for (const char c : p)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return p.back() != '-' && p.front() != '-';
}

result<target_config> parse_secret_manager(const json& j, const std::string& where,
                                           const std::vector<attribute_rule>& rules) {
    reader r(j, where);
    secret_manager_config c;
    std::string kind;
    DELIVER_TRY(r.string("kind", kind, true));
    DELIVER_TRY(r.string("project", c.project, true));
    if (!is_project(c.project))
        return field_error(r.field("project"),
                           "must be a literal project id or number ([a-z0-9-], at most 30)");
    DELIVER_TRY(r.string("secret", c.secret, true));
    DELIVER_TRY(check_template_field(r.field("secret"), c.secret, rules));
    DELIVER_TRY(r.string_map("labels", c.labels));
    DELIVER_TRY(check_labels(r.field("labels"), c.labels));
    DELIVER_TRY(check_google_labels(r.field("labels"), c.labels));
    DELIVER_TRY(r.unknown_keys());
    return target_config{std::move(c)};
}

result<std::vector<attribute_rule>> parse_rules(const json& j) {
    std::vector<attribute_rule> out;
    const auto one = [&](const json& o, const std::string& where) -> std::optional<error> {
        if (!o.is_object()) return field_error(where, "must be an object {attribute, prefix}");
        reader r(o, where);
        attribute_rule rule;
        if (auto e = r.string("attribute", rule.attribute, true)) return e;
        if (auto e = r.string("prefix", rule.prefix, true)) return e;
        if (auto e = r.unknown_keys()) return e;
        for (const auto& seen : out)
            if (seen.attribute == rule.attribute)
                return field_error(r.field("attribute"), rule.attribute + " is listed twice");
        out.push_back(std::move(rule));
        return std::nullopt;
    };
    if (j.is_array()) {
        for (std::size_t i = 0; i < j.size(); ++i)
            if (auto e = one(j[i], "attributeTargets[" + std::to_string(i) + "]")) return *e;
    } else if (auto e = one(j, "attributeTargets")) {
        return *e;
    }
    return out;
}

std::string place_of(const target_config& t) {
    if (const auto* k = std::get_if<kubernetes_secret_config>(&t))
        return "kubernetesSecret " + k->namespace_ + "/" + k->name;
    if (const auto* v = std::get_if<vault_config>(&t))
        return "vault " + v->address + " " + v->mount + "/" + v->path;
    const auto& s = std::get<secret_manager_config>(t);
    return "secretManager " + s.project + "/" + s.secret;
}

#undef DELIVER_TRY

}  // namespace

std::string kind_name(const target_config& t) {
    switch (t.index()) {
        case 0:
            return "kubernetesSecret";
        case 1:
            return "vault";
        default:
            return "secretManager";
    }
}

result<config> parse_config(const json& policy) {
    config out;
    if (!policy.is_object()) return field_error("policy", "must be an object");
    if (auto it = policy.find("attributeTargets"); it != policy.end()) {
        auto rules = parse_rules(*it);
        if (!rules) return rules.err();
        out.attribute_rules = std::move(*rules);
    }
    const auto it = policy.find("deliver");
    if (it == policy.end()) return out;
    if (!it->is_array()) return field_error("deliver", "must be a list of targets");
    std::set<std::string> places;
    for (std::size_t i = 0; i < it->size(); ++i) {
        const json& t = (*it)[i];
        const std::string where = "deliver[" + std::to_string(i) + "]";
        if (!t.is_object()) return field_error(where, "must be an object");
        const auto k = t.find("kind");
        if (k == t.end()) return field_error(where + ".kind", "is required");
        if (!k->is_string()) return field_error(where + ".kind", "must be a string");
        const std::string kind = k->get<std::string>();
        result<target_config> parsed = field_error(where, "unset");
        if (kind == "kubernetesSecret")
            parsed = parse_kube(t, where, out.attribute_rules);
        else if (kind == "vault")
            parsed = parse_vault(t, where, out.attribute_rules);
        else if (kind == "secretManager")
            parsed = parse_secret_manager(t, where, out.attribute_rules);
        else
            return field_error(where + ".kind", "\"" + kind +
                                                    "\" is not one of kubernetesSecret, vault, "
                                                    "secretManager");
        if (!parsed) return parsed.err();
        if (!places.insert(place_of(*parsed)).second)
            return field_error(
                where, "names the same place as an earlier target (" + place_of(*parsed) + ")");
        out.targets.push_back(std::move(*parsed));
    }
    return out;
}

}  // namespace keyrot::deliver
