// Internal: the /v1 management API. serve_api() runs one call: route, auth,
// faults, the org, the body, then the handler the route table names, then the
// bookkeeping the hooks report (requests, availability, lost markers, write
// spans). Handlers are grouped by resource (api_org.cpp, api_developers.cpp,
// api_apps.cpp, api_keys.cpp, api_products.cpp, api_appgroups.cpp); they throw api_error
// (util.hpp) for an error reply, and a call that throws skips the bookkeeping
// and the latency: its error is answered at once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "state.hpp"
#include "util.hpp"

namespace keyrot::emulator {

// One /v1 call, as its handler sees it.
struct call {
    const std::vector<std::string>& seg;  // decoded path segments after "v1"
    const std::multimap<std::string, std::string>& query;
    const std::optional<std::string>& action;  // ?action=
    organization& org;
    const json& body;                 // the request's object, or {} (GET, DELETE, ?action=)
    millis t;                         // the emulator clock when the call arrived
    const std::string& record_route;  // how the histories name this call
    millis list_delay_ms = 0;         // set by a list page: its extra latency

    std::optional<std::string> q(const char* name) const;
    bool q_bool(const char* name) const;  // present and "true", "1" or empty
};

using handler = response (*)(state& st, call& ctx);

// `seg`: decoded path segments after "v1"; `query`: decoded parameters.
response serve_api(state& st, const request& req, const std::vector<std::string>& seg,
                   const std::multimap<std::string, std::string>& query);

// Lookups that answer 404 (or 400 for an unknown product) when missing.
developer& find_dev(organization& org, const std::string& email);
developer_app& find_app(organization& org, const std::string& email, const std::string& name);
app_group& find_group(organization& org, const std::string& name);
// The app of a path …/developers/D/apps/A/…, …/appgroups/G/apps/A/… or (Edge)
// …/companies/C/apps/A/…, and its key. (Edge: D may be the developerId.)
developer_app& find_owner_app(organization& org, const std::vector<std::string>& seg);
app_key owner_key(const organization& org, const std::vector<std::string>& seg);
credential& find_key(developer_app& app, const std::string& consumer_key);
// The status a product starts with on a key: pending for manual approval.
std::string product_status(const organization& org, const std::string& name);
// Product names of a request (names or {"apiproduct"} objects), deduplicated.
std::vector<std::string> product_names(const organization& org, const json& j);
// A generated key (as "generate key pair" and app creation make one).
credential new_credential(state& st, const organization& org,
                          const std::vector<std::string>& products,
                          std::optional<millis> expires_in_ms,
                          const std::vector<std::string>& scopes, millis t);
// ?action=approve|revoke as a status.
std::string parse_action(const std::optional<std::string>& action);
// The body's attributes, checked against the limits, when it has them.
std::optional<std::vector<attribute>> body_attributes(const json& body);

// Handlers, one per route (routes.cpp).
response org_get(state& st, call& ctx);
response apps_list(state& st, call& ctx);
response app_by_id(state& st, call& ctx);
response devs_list(state& st, call& ctx);
response dev_create(state& st, call& ctx);
response dev_get(state& st, call& ctx);
response dev_post(state& st, call& ctx);
response dev_apps_list(state& st, call& ctx);
response dev_app_create(state& st, call& ctx);
response app_get(state& st, call& ctx);
response app_post(state& st, call& ctx);
response app_put(state& st, call& ctx);
response app_delete(state& st, call& ctx);
response key_create(state& st, call& ctx);
response key_get(state& st, call& ctx);
response key_post(state& st, call& ctx);
response key_put(state& st, call& ctx);
response key_delete(state& st, call& ctx);
response key_product_post(state& st, call& ctx);
response key_product_delete(state& st, call& ctx);
response groups_list(state& st, call& ctx);
response group_get(state& st, call& ctx);
response group_apps_list(state& st, call& ctx);
response group_app_get(state& st, call& ctx);
response group_key_post(state& st, call& ctx);
response products_list(state& st, call& ctx);
// Edge flavor (api_edge.cpp).
response edge_apps_list(state& st, call& ctx);
response edge_devs_list(state& st, call& ctx);
response edge_dev_apps_list(state& st, call& ctx);
response companies_list(state& st, call& ctx);
response company_get(state& st, call& ctx);
response company_apps_list(state& st, call& ctx);
response edge_key_create(state& st, call& ctx);
response key_attributes_post(state& st, call& ctx);
response product_create(state& st, call& ctx);
response product_get(state& st, call& ctx);

}  // namespace keyrot::emulator
