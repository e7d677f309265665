// Names of delivery targets, templated from the app (pure; tests/unit/deliver_test.cpp).
//
// A template is literal text with placeholders:
//   {org}        the organisation
//   {developer}  the developer's e-mail, or the team (AppGroup) for a team app
//                (AppGroup names cannot hold '@', so the two never meet)
//   {team}       the team (AppGroup) of a team app; a developer's app has none:
//                the target does not apply to it (as an absent attribute)
//   {app}        the app's name
//   {attr:NAME}  the value of the app attribute NAME
// "{{" and "}}" are literal braces. Values are substituted unchanged (never
// lower-cased or mangled: two apps must never map to one place); a name that
// comes out illegal for its kind is refused for that app.
//
// App attributes are written by app owners, so an attribute may appear in a
// template only when the operator allowed it (attribute_rule), and its value
// must start with the rule's prefix and be one plain name segment
// ([A-Za-z0-9._-], not "." or ".."): an app owner can point keyrotd only at
// places inside that prefix, never at another team's secret.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/model.hpp"
#include "common/result.hpp"

namespace keyrot::deliver {

struct attribute_rule {
    std::string attribute;  // the app attribute's name, e.g. keyrotd_target
    std::string prefix;     // its value must start with this (not empty)
    friend bool operator==(const attribute_rule&, const attribute_rule&) = default;
};

enum class name_kind {
    kubernetes_name,    // RFC 1123 subdomain, <= 253 (a Secret's name)
    vault_path,         // segments [A-Za-z0-9._@+-], no empty, "." or ".." segment
    secret_manager_id,  // [A-Za-z0-9_-]{1,255}
};

// Config time: placeholders known, braces balanced, every {attr:NAME} allowed
// by `rules`. Error (kind config) names what is wrong, not where (the caller adds the field).
result<void> check_template(std::string_view tmpl, const std::vector<attribute_rule>& rules);

// Run time. nullopt: the template uses an attribute the app does not have (or
// has empty), or {team} and the app is a developer's: the target does not
// apply to this app (why_not_applied says why). Error (kind config): the
// value breaks its rule or the name is illegal for `kind`; the message names
// the template, the attribute and the rendered name (none of them secret).
result<std::optional<std::string>> render_name(std::string_view tmpl, const app& a,
                                               const std::vector<attribute_rule>& rules,
                                               name_kind kind);

// Why render_name gave nullopt for `a` ("uses {team}, and app X is a
// developer's app, not a team's"); "" when it did not.
std::string why_not_applied(std::string_view tmpl, const app& a);

// The checks render_name applies to a finished name ("" when legal, else why).
std::string illegal_name(std::string_view name, name_kind kind);
// RFC 1123 label (a namespace): [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63.
bool is_dns_label(std::string_view s);

}  // namespace keyrot::deliver
