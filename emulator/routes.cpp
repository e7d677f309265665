#include "routes.hpp"

#include <string_view>

namespace keyrot::emulator {

namespace {

struct route {
    const char* method;
    const char* pattern;
    handler fn;
    // The pattern is a path of its own for this method only: other methods
    // fall through to the next pattern that matches (POST …/keys/create
    // creates a key; GET …/keys/create reads the key named "create").
    bool this_method_only = false;
};

// Rows of one pattern stay together, in the order their Allow header lists them.
const route k_routes[] = {
    {"GET", "/v1/organizations/{org}", org_get},
    {"GET", "/v1/organizations/{org}/apps", apps_list},
    {"GET", "/v1/organizations/{org}/apps/{appId}", app_by_id},
    {"GET", "/v1/organizations/{org}/apiproducts", products_list},
    {"POST", "/v1/organizations/{org}/apiproducts", product_create},
    {"GET", "/v1/organizations/{org}/apiproducts/{product}", product_get},
    {"GET", "/v1/organizations/{org}/appgroups", groups_list},
    {"GET", "/v1/organizations/{org}/appgroups/{group}", group_get},
    {"GET", "/v1/organizations/{org}/appgroups/{group}/apps", group_apps_list},
    {"GET", "/v1/organizations/{org}/appgroups/{group}/apps/{app}", group_app_get},
    {"POST", "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys", key_create},
    {"GET", "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys/{key}", key_get},
    {"POST", "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys/{key}", group_key_post},
    {"DELETE", "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys/{key}", key_delete},
    {"POST",
     "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_post},
    {"DELETE",
     "/v1/organizations/{org}/appgroups/{group}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_delete},
    {"GET", "/v1/organizations/{org}/developers", devs_list},
    {"POST", "/v1/organizations/{org}/developers", dev_create},
    {"GET", "/v1/organizations/{org}/developers/{developer}", dev_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}", dev_post},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps", dev_apps_list},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps", dev_app_create},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_post},
    {"PUT", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_put},
    {"DELETE", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_delete},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys", key_create},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/create", key_create,
     true},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_post},
    {"PUT", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_put},
    {"DELETE", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_delete},
    {"POST",
     "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_post},
    {"DELETE",
     "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_delete},
};

// The Edge flavor (docs/emulator.md, "Edge flavor"): developer and company
// apps take the same calls; keys are created only by …/keys/create.
const route k_edge_routes[] = {
    {"GET", "/v1/organizations/{org}", org_get},
    {"GET", "/v1/organizations/{org}/apps", edge_apps_list},
    {"GET", "/v1/organizations/{org}/apps/{appId}", app_by_id},
    {"GET", "/v1/organizations/{org}/apiproducts", products_list},
    {"POST", "/v1/organizations/{org}/apiproducts", product_create},
    {"GET", "/v1/organizations/{org}/apiproducts/{product}", product_get},
    {"GET", "/v1/organizations/{org}/companies", companies_list},
    {"GET", "/v1/organizations/{org}/companies/{company}", company_get},
    {"GET", "/v1/organizations/{org}/companies/{company}/apps", company_apps_list},
    {"GET", "/v1/organizations/{org}/companies/{company}/apps/{app}", app_get},
    {"POST", "/v1/organizations/{org}/companies/{company}/apps/{app}", app_post},
    {"PUT", "/v1/organizations/{org}/companies/{company}/apps/{app}", app_put},
    {"DELETE", "/v1/organizations/{org}/companies/{company}/apps/{app}", app_delete},
    {"POST", "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/create", edge_key_create,
     true},
    {"GET", "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}", key_get},
    {"POST", "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}", key_post},
    {"DELETE", "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}", key_delete},
    {"POST", "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}/attributes",
     key_attributes_post},
    {"POST",
     "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_post},
    {"DELETE",
     "/v1/organizations/{org}/companies/{company}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_delete},
    {"GET", "/v1/organizations/{org}/developers", edge_devs_list},
    {"POST", "/v1/organizations/{org}/developers", dev_create},
    {"GET", "/v1/organizations/{org}/developers/{developer}", dev_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}", dev_post},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps", edge_dev_apps_list},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps", dev_app_create},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_post},
    {"PUT", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_put},
    {"DELETE", "/v1/organizations/{org}/developers/{developer}/apps/{app}", app_delete},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/create",
     edge_key_create, true},
    {"GET", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_get},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_post},
    {"DELETE", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}", key_delete},
    {"POST", "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}/attributes",
     key_attributes_post},
    {"POST",
     "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_post},
    {"DELETE",
     "/v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}/apiproducts/{product}",
     key_product_delete},
};

// A pattern's segments after "/v1/", split once.
std::vector<std::string_view> split_pattern(std::string_view p) {
    std::vector<std::string_view> out;
    p.remove_prefix(std::string_view("/v1/").size());
    while (true) {
        auto slash = p.find('/');
        out.push_back(p.substr(0, slash));
        if (slash == std::string_view::npos) break;
        p.remove_prefix(slash + 1);
    }
    return out;
}

bool matches(const std::vector<std::string_view>& pattern, const std::vector<std::string>& seg) {
    if (pattern.size() != seg.size()) return false;
    for (std::size_t i = 0; i < seg.size(); ++i)
        if (pattern[i].front() != '{' && pattern[i] != seg[i]) return false;
    return true;
}

}  // namespace

route_match match_route(const std::string& method, const std::vector<std::string>& seg,
                        bool has_action, bool edge) {
    static const auto x_patterns = [] {
        std::vector<std::vector<std::string_view>> p;
        for (const auto& r : k_routes) p.push_back(split_pattern(r.pattern));
        return p;
    }();
    static const auto edge_patterns = [] {
        std::vector<std::vector<std::string_view>> p;
        for (const auto& r : k_edge_routes) p.push_back(split_pattern(r.pattern));
        return p;
    }();
    const auto& patterns = edge ? edge_patterns : x_patterns;
    const route* routes = edge ? k_edge_routes : k_routes;
    const std::size_t n = edge ? std::size(k_edge_routes) : std::size(k_routes);
    route_match m;
    const route* path = nullptr;  // the first route of the pattern the path has
    for (std::size_t i = 0; i < n && !m.fn; ++i) {
        if (!matches(patterns[i], seg)) continue;
        if (routes[i].method == method) {
            m.fn = routes[i].fn;
            path = &routes[i];
        } else if (!path && !routes[i].this_method_only) {
            path = &routes[i];
        }
    }
    if (!path) {
        m.templ = method + " (unmatched)";
        return m;
    }
    m.templ = method + " " + path->pattern + (has_action ? "?action" : "");
    for (std::size_t i = 0; i < n; ++i) {
        const route& r = routes[i];
        if (std::string_view(r.pattern) != path->pattern) continue;
        if (!m.allow.empty()) m.allow += ", ";
        m.allow += r.method;
    }
    m.wrong_method = !m.fn;
    return m;
}

}  // namespace keyrot::emulator
