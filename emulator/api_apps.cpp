// Developer apps: create, read, "generate key pair" (and its trap), approve
// or revoke, update, delete.
#include "api.hpp"
#include "faults.hpp"
#include "views.hpp"

namespace keyrot::emulator {

response dev_app_create(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const millis t = ctx.t;
    const std::string owner = ascii_lower(find_dev(org, seg[3]).email);
    developer_app a;
    a.name = string_field(body, "name");
    if (a.name.empty()) fail(400, "app name is required");
    if (a.name.find('/') != std::string::npos || a.name.size() > 1024)
        fail(400, "invalid app name");
    app_key k{owner, a.name};
    if (org.apps.count(k)) fail(409, "app " + a.name + " already exists");
    std::vector<std::string> products;
    if (const json* p = field(body, "apiProducts")) products = product_names(org, *p);
    if (auto at = body_attributes(body)) a.attributes = std::move(*at);
    a.callback_url = string_field(body, "callbackUrl");
    if (const json* s = field(body, "scopes")) a.scopes = parse_string_list(*s, "scopes");
    a.app_family = string_field(body, "appFamily");
    if (const json* e = field(body, "keyExpiresIn")) {
        auto v = json_int64(*e);
        if (!v) fail(400, "keyExpiresIn must be an int64");
        a.key_expires_in = expires_in_field(*v);
    }
    a.app_id = uuid(st.id_rng);
    a.created_at = a.last_modified_at = t;
    a.credentials.push_back(new_credential(st, org, products, a.key_expires_in, a.scopes, t));
    org.key_index[a.credentials.back().consumer_key] = k;
    org.app_id_index[a.app_id] = k;
    auto [it, _] = org.apps.emplace(k, std::move(a));
    // Edge answers a create with 201 Created.
    return json_response(app_json(org, k, it->second, true, nullptr, false), st.edge ? 201 : 200);
}

response app_get(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(org, seg);
    return hostile_response(st.fault, app_json(org, owner_key(org, seg), a, true, nullptr, false),
                            false);
}

response app_post(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const auto& action = ctx.action;
    const millis t = ctx.t;
    auto& a = find_owner_app(org, seg);
    const app_key k = owner_key(org, seg);
    if (action) {
        a.status = parse_action(action);
        a.last_modified_at = t;
        return no_content();
    }
    // company-post-action-only: Edge's reference documents POST on a company
    // app as approve/revoke only (?action= required), no "generate key".
    if (st.edge && st.profile.company_post_action_only && seg[2] == "companies")
        fail(400, "POST on a company app takes ?action=approve|revoke");
    // Generate a key pair. The trap: attributes and callbackUrl are
    // replaced by the body's, and what the body leaves out is deleted.
    std::vector<std::string> products;
    if (const json* p = field(body, "apiProducts")) products = product_names(org, *p);
    std::vector<attribute> attrs;
    if (auto at = body_attributes(body)) attrs = std::move(*at);
    std::vector<std::string> scopes;
    if (const json* s = field(body, "scopes")) scopes = parse_string_list(*s, "scopes");
    std::optional<millis> expires_in;
    if (const json* e = field(body, "keyExpiresIn")) {
        auto v = json_int64(*e);
        if (!v) fail(400, "keyExpiresIn must be an int64");
        expires_in = expires_in_field(*v);
    }
    std::string callback = string_field(body, "callbackUrl");
    if (const json* f = field(body, "appFamily")) {
        if (!f->is_string()) fail(400, "appFamily must be a string");
        a.app_family = f->get<std::string>();
    }
    auto cred = new_credential(st, org, products, expires_in, scopes, t);
    if (st.fault.generate_wipes_app) {
        // A client (or a person between our read and this call) that
        // sent nothing back: the app loses what the body left out.
        attrs.clear();
        callback.clear();
    }
    a.attributes = std::move(attrs);
    a.callback_url = std::move(callback);
    a.last_modified_at = t;
    org.key_index[cred.consumer_key] = k;
    a.credentials.push_back(std::move(cred));
    return json_response(app_json(org, k, a, true, nullptr, false));
}

response app_put(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const millis t = ctx.t;
    // Update developer app: attributes, callbackUrl, appFamily and
    // keyExpiresIn are replaced; name, scopes, status and credentials are not.
    auto& a = find_owner_app(org, seg);
    const app_key k = owner_key(org, seg);
    std::vector<attribute> attrs;
    if (auto at = body_attributes(body)) attrs = std::move(*at);
    std::string callback = string_field(body, "callbackUrl");
    std::string family = string_field(body, "appFamily");
    if (const json* e = field(body, "keyExpiresIn")) {
        auto v = json_int64(*e);
        if (!v) fail(400, "keyExpiresIn must be an int64");
        a.key_expires_in = expires_in_field(*v);
    }
    a.attributes = std::move(attrs);
    a.callback_url = std::move(callback);
    a.app_family = std::move(family);
    a.last_modified_at = t;
    // put-generates: on Apigee X, naming API products in an app update
    // "automatically generates an API key" for them.
    if (const json* p = field(body, "apiProducts"); p != nullptr && st.profile.put_generates) {
        auto cred = new_credential(st, org, product_names(org, *p), a.key_expires_in, a.scopes, t);
        org.key_index[cred.consumer_key] = k;
        a.credentials.push_back(std::move(cred));
    }
    return json_response(app_json(org, k, a, true, nullptr, false));
}

response app_delete(state&, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(org, seg);
    const app_key k = owner_key(org, seg);
    json out = app_json(org, k, a, true, nullptr, false);
    for (const auto& c : a.credentials) org.key_index.erase(c.consumer_key);
    org.app_id_index.erase(a.app_id);
    org.apps.erase(k);
    return json_response(out);
}

}  // namespace keyrot::emulator
