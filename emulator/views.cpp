#include "views.hpp"

namespace keyrot::emulator {

json attrs_json(const std::vector<attribute>& attrs) {
    json a = json::array();
    for (const auto& at : attrs) a.push_back({{"name", at.name}, {"value", at.value}});
    return a;
}

json time_json(millis v) { return edge_json() ? json(v) : json(std::to_string(v)); }

// Edge shows empty lists ("attributes": []); Google's mapping leaves them out.
void put_list(json& j, const char* name, const std::vector<std::string>& v) {
    if (!v.empty() || edge_json()) j[name] = v;
}
void put_str(json& j, const char* name, const std::string& v) {
    if (!v.empty()) j[name] = v;
}
void put_attrs(json& j, const std::vector<attribute>& attrs) {
    if (!attrs.empty() || edge_json()) j["attributes"] = attrs_json(attrs);
}

json credential_json(const credential& c) {
    json j = {{"consumerKey", c.consumer_key},
              {"consumerSecret", c.consumer_secret},
              {"status", c.status},
              {"issuedAt", time_json(c.issued_at)},
              {"expiresAt", time_json(c.expires_at.value_or(-1))}};
    put_attrs(j, c.attributes);
    put_list(j, "scopes", c.scopes);
    if (!c.products.empty() || edge_json()) {
        json p = json::array();
        for (const auto& kp : c.products)
            p.push_back({{"apiproduct", kp.name}, {"status", kp.status}});
        j["apiProducts"] = std::move(p);
    }
    return j;
}

json developer_json(const organization& org, const developer& d) {
    json j = {{"email", d.email},
              {"developerId", d.developer_id},
              {"organizationName", org.name},
              {"status", d.status},
              {"createdAt", time_json(d.created_at)},
              {"lastModifiedAt", time_json(d.last_modified_at)}};
    put_str(j, "firstName", d.first_name);
    put_str(j, "lastName", d.last_name);
    put_str(j, "userName", d.user_name);
    put_attrs(j, d.attributes);
    std::vector<std::string> apps;
    auto lo = ascii_lower(d.email);
    for (auto it = org.apps.lower_bound({lo, ""}); it != org.apps.end() && it->first.first == lo;
         ++it)
        apps.push_back(it->first.second);
    put_list(j, "apps", apps);
    if (edge_json()) j["companies"] = json::array();
    return j;
}

json app_json(const organization& org, const app_key& k, const developer_app& a, bool creds,
              const std::string* key_status, bool with_email) {
    json j = {{"appId", a.app_id},
              {"name", a.name},
              {"status", a.status},
              {"createdAt", time_json(a.created_at)},
              {"lastModifiedAt", time_json(a.last_modified_at)}};
    if (!a.app_group.empty() && edge_json()) {
        j["companyName"] = a.app_group;  // an Edge company app: no developer fields
    } else if (!a.app_group.empty()) {
        j["appGroup"] = a.app_group;  // a team app: no developer fields at all
    } else {
        const developer& d = org.developers.at(k.first);
        j["developerId"] = d.developer_id;
        if (with_email && !edge_json()) j["developerEmail"] = d.email;  // Edge: developerId only
    }
    put_attrs(j, a.attributes);
    put_str(j, "callbackUrl", a.callback_url);
    put_list(j, "scopes", a.scopes);
    put_str(j, "appFamily", a.app_family);
    // In milliseconds on a developer app, in seconds on a team app (the
    // AppGroupApp message).
    // (An Edge app has no keyExpiresIn: it is a parameter of the calls only.)
    if (a.key_expires_in && !edge_json())
        j["keyExpiresIn"] =
            std::to_string(a.app_group.empty() ? *a.key_expires_in : *a.key_expires_in / 1000);
    if (creds) {
        json cs = json::array();
        for (const auto& c : a.credentials)
            if (!key_status || *key_status == "all" || c.status == *key_status)
                cs.push_back(credential_json(c));
        if (!cs.empty() || edge_json()) j["credentials"] = std::move(cs);
    }
    return j;
}

json app_group_json(const organization& org, const app_group& g) {
    json j = {{"name", g.name},
              {"appGroupId", g.app_group_id},
              {"displayName", g.display_name},
              {"organization", org.name},
              {"status", g.status},
              {"createdAt", std::to_string(g.created_at)},
              {"lastModifiedAt", std::to_string(g.last_modified_at)}};
    put_attrs(j, g.attributes);
    return j;
}

json company_json(const organization& org, const app_group& g) {
    json j = {{"name", g.name},
              {"displayName", g.display_name},
              {"organization", org.name},
              {"status", g.status},
              {"createdAt", time_json(g.created_at)},
              {"lastModifiedAt", time_json(g.last_modified_at)}};
    put_attrs(j, g.attributes);
    std::vector<std::string> apps;
    const std::string first = k_team_prefix + g.name;
    for (auto it = org.apps.lower_bound({first, ""});
         it != org.apps.end() && it->first.first == first; ++it)
        apps.push_back(it->first.second);
    put_list(j, "apps", apps);
    return j;
}

json product_json(const api_product& p) {
    json j = {{"name", p.name},
              {"displayName", p.display_name},
              {"approvalType", p.approval_type},
              {"createdAt", time_json(p.created_at)},
              {"lastModifiedAt", time_json(p.last_modified_at)}};
    put_attrs(j, p.attributes);
    return j;
}

}  // namespace keyrot::emulator
