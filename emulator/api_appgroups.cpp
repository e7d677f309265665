// Teams (Apigee X AppGroups) and their apps: list and read, and the key
// update that differs from a developer key's (docs/apigee-api.md, "Team
// (AppGroup) apps"). Creating, reading and deleting a team app's key and the
// products on it are the developer-key handlers (api_keys.cpp).
#include <algorithm>

#include "api.hpp"
#include "faults.hpp"
#include "views.hpp"

namespace keyrot::emulator {

namespace {

// Google's JSON front end refuses a field its message does not define.
void only_fields(const json& body, std::initializer_list<const char*> known) {
    for (const auto& [name, _] : body.items())
        if (std::none_of(known.begin(), known.end(), [&](const char* k) { return name == k; }))
            fail(400, "Invalid JSON payload received. Unknown name \"" + name +
                          "\": Cannot find field.");
}

std::int64_t page_size_of(const call& ctx) {
    std::int64_t size = 1000;
    if (auto ps = ctx.q("pageSize")) {
        auto v = parse_int(*ps);
        if (!v) fail(400, "pageSize must be an integer");
        if (*v > 0) size = std::min<std::int64_t>(*v, 1000);
    }
    return size;
}

}  // namespace

// GET /appgroups?pageSize&pageToken: {"appGroups": [...], "nextPageToken"}.
response groups_list(state&, call& ctx) {
    organization& org = ctx.org;
    const std::int64_t size = page_size_of(ctx);
    auto it = org.app_groups.begin();
    if (auto tok = ctx.q("pageToken"); tok && !tok->empty()) {
        auto after = from_hex(*tok);
        if (!after) fail(400, "invalid pageToken");
        it = org.app_groups.upper_bound(*after);
    }
    json list = json::array();
    std::string next;
    for (; it != org.app_groups.end(); ++it) {
        if (static_cast<std::int64_t>(list.size()) == size) break;
        list.push_back(app_group_json(org, it->second));
        next = std::next(it) == org.app_groups.end() ? "" : to_hex(it->first);
    }
    json out = {{"appGroups", std::move(list)}};
    if (!next.empty()) out["nextPageToken"] = next;
    return json_response(out);
}

response group_get(state&, call& ctx) {
    return json_response(app_group_json(ctx.org, find_group(ctx.org, ctx.seg[3])));
}

// GET /appgroups/G/apps?pageSize&pageToken: {"appGroupApps": [...], "nextPageToken"}.
response group_apps_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const std::string& group = find_group(org, ctx.seg[3]).name;
    const std::int64_t size = page_size_of(ctx);
    const std::string first = k_team_prefix + group;
    auto it = org.apps.lower_bound({first, ""});
    if (auto tok = ctx.q("pageToken"); tok && !tok->empty()) {
        auto after = from_hex(*tok);
        if (!after) fail(400, "invalid pageToken");
        it = org.apps.upper_bound({first, *after});
    }
    json list = json::array();
    std::string next;
    for (; it != org.apps.end() && it->first.first == first; ++it) {
        if (static_cast<std::int64_t>(list.size()) == size) break;
        list.push_back(app_json(org, it->first, it->second, true, nullptr, false));
        auto peek = std::next(it);
        next = peek == org.apps.end() || peek->first.first != first ? "" : to_hex(it->first.second);
    }
    json out = {{"appGroupApps", std::move(list)}};
    if (!next.empty()) out["nextPageToken"] = next;
    return hostile_response(st.fault, std::move(out), true);
}

response group_app_get(state& st, call& ctx) {
    auto& a = find_owner_app(ctx.org, ctx.seg);
    return hostile_response(
        st.fault, app_json(ctx.org, owner_key(ctx.org, ctx.seg), a, true, nullptr, false), false);
}

// POST /appgroups/G/apps/A/keys/K: either {"action": "approve"|"revoke"} alone,
// or {"apiProducts": [...], "appGroupAppKey": {"attributes", "scopes"}}:
// products appended, attributes replaced by those sent (strict: wiped when
// none are sent), scopes replaced when sent. No ?action= parameter.
response group_key_post(state& st, call& ctx) {
    organization& org = ctx.org;
    const json& body = ctx.body;
    if (ctx.action)
        fail(400,
             "Invalid JSON payload received. Unknown name \"action\": Cannot bind query "
             "parameter. Field 'action' could not be found in request message.");
    auto& a = find_owner_app(org, ctx.seg);
    auto& c = find_key(a, ctx.seg[7]);
    only_fields(body, {"action", "apiProducts", "appGroupAppKey"});
    if (const json* act = field(body, "action")) {
        if (body.size() != 1)
            fail(400, "the status can be updated only via action: send action alone");
        const std::string v = act->is_string() ? act->get<std::string>() : "";
        if (v != "approve" && v != "revoke") fail(400, "action must be approve or revoke");
        c.status = v == "approve" ? "approved" : "revoked";
        a.last_modified_at = ctx.t;
        return json_response(credential_json(c));
    }
    std::vector<std::string> add;
    if (const json* p = field(body, "apiProducts")) add = product_names(org, *p);
    const json* key = field(body, "appGroupAppKey");
    if (key != nullptr && !key->is_object()) fail(400, "appGroupAppKey must be an object");
    if (key != nullptr)
        only_fields(*key, {"apiProducts", "attributes", "consumerKey", "consumerSecret",
                           "expiresAt", "expiresInSeconds", "issuedAt", "scopes", "status"});
    std::size_t total = c.products.size();
    for (const auto& p : add)
        if (std::none_of(c.products.begin(), c.products.end(),
                         [&](const key_product& kp) { return kp.name == p; }))
            ++total;
    if (total > k_max_products_per_key) fail(400, "at most 50 API products per key");
    std::optional<std::vector<attribute>> attrs;
    if (key != nullptr) attrs = body_attributes(*key);
    std::optional<std::vector<std::string>> scopes;
    if (key != nullptr)
        if (const json* s = field(*key, "scopes")) scopes = parse_string_list(*s, "scopes");
    for (const auto& p : add)
        if (std::none_of(c.products.begin(), c.products.end(),
                         [&](const key_product& kp) { return kp.name == p; }))
            c.products.push_back({p, product_status(org, p)});
    if (attrs)
        c.attributes = std::move(*attrs);
    else if (st.profile.update_wipes_attributes)
        c.attributes.clear();
    if (scopes) c.scopes = std::move(*scopes);
    a.last_modified_at = ctx.t;
    return json_response(credential_json(c));
}

}  // namespace keyrot::emulator
