// Developers: list (and its reading), create, read, update, set status, and
// a developer's apps.
#include "api.hpp"
#include "views.hpp"

namespace keyrot::emulator {

response devs_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const bool expand = ctx.q_bool("expand");
    std::int64_t count = 1000;
    if (auto c = ctx.q("count")) {
        auto v = parse_int(*c);
        if (!v || *v < 0) fail(400, "count must be a non-negative integer");
        if (*v > 0) count = *v;
    }
    auto it = org.developers.begin();
    if (auto sk = ctx.q("startKey"); sk && !sk->empty())
        it = org.developers.lower_bound(ascii_lower(*sk));
    json list = json::array();
    // developer-list-emails: "expand is not valid with count or startKey".
    const bool paged = ctx.q("count").has_value() || ctx.q("startKey").has_value();
    const bool expanded = expand && !(st.profile.developer_list_emails && paged);
    for (; it != org.developers.end() && static_cast<std::int64_t>(list.size()) < count; ++it) {
        if (expanded)
            list.push_back(developer_json(org, it->second));
        else
            list.push_back({{"email", it->second.email}, {"developerId", it->second.developer_id}});
    }
    return json_response({{"developer", std::move(list)}});
}

response dev_create(state& st, call& ctx) {
    organization& org = ctx.org;
    const json& body = ctx.body;
    const millis t = ctx.t;
    developer d;
    d.email = string_field(body, "email");
    if (!valid_email(d.email)) fail(400, "invalid developer email");
    if (org.developers.count(ascii_lower(d.email)))
        fail(409, "developer " + d.email + " already exists");
    d.first_name = string_field(body, "firstName");
    d.last_name = string_field(body, "lastName");
    d.user_name = string_field(body, "userName");
    if (auto a = body_attributes(body)) d.attributes = std::move(*a);
    d.developer_id = uuid(st.id_rng);
    d.created_at = d.last_modified_at = t;
    auto& stored = org.developers[ascii_lower(d.email)] = std::move(d);
    return json_response(developer_json(org, stored), st.edge ? 201 : 200);  // Edge: 201
}

response dev_get(state&, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    return json_response(developer_json(org, find_dev(org, seg[3])));
}

response dev_post(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const auto& action = ctx.action;
    const millis t = ctx.t;
    developer& d = find_dev(org, seg[3]);
    if (action) {
        if (*action != "active" && *action != "inactive")
            fail(400, "action must be active or inactive");
        auto lo = ascii_lower(d.email);
        std::vector<std::pair<app_key, int>> before;
        for (auto it = org.apps.lower_bound({lo, ""});
             it != org.apps.end() && it->first.first == lo; ++it)
            before.emplace_back(it->first, st.usable_keys(org, it->first));
        d.status = *action;
        d.last_modified_at = t;
        for (const auto& [k, n] : before) st.record_availability(org.name, k, n, ctx.record_route);
        return no_content();
    } else {
        // Update developer: replaces the fields given, attributes replaced.
        if (body.contains("firstName")) d.first_name = string_field(body, "firstName");
        if (body.contains("lastName")) d.last_name = string_field(body, "lastName");
        if (body.contains("userName")) d.user_name = string_field(body, "userName");
        if (auto a = body_attributes(body)) d.attributes = std::move(*a);
        d.last_modified_at = t;
        return json_response(developer_json(org, d));
    }
}

response dev_apps_list(state&, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto lo = ascii_lower(find_dev(org, seg[3]).email);
    const bool expand = ctx.q_bool("expand");
    json list = json::array();
    for (auto it = org.apps.lower_bound({lo, ""}); it != org.apps.end() && it->first.first == lo;
         ++it) {
        if (expand)
            list.push_back(app_json(org, it->first, it->second, true, nullptr, false));
        else
            list.push_back({{"appId", it->second.app_id}, {"name", it->second.name}});
    }
    return json_response({{"app", std::move(list)}});
}

}  // namespace keyrot::emulator
