// The organization and its org-wide app list (pages, filters, the readings
// that change them) and apps by id.
#include <algorithm>
#include <iterator>

#include "api.hpp"
#include "faults.hpp"
#include "views.hpp"

namespace keyrot::emulator {

response org_get(state&, call& ctx) {
    const organization& org = ctx.org;
    return json_response({{"name", org.name},
                          {"displayName", org.name},
                          {"runtimeType", "CLOUD"},
                          {"state", "ACTIVE"}});
}

response apps_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const bool expand = ctx.q_bool("expand");
    const bool include_cred = expand || ctx.q_bool("includeCred");
    std::string status = ctx.q("status").value_or("approved");
    std::string key_status = ctx.q("keyStatus").value_or("approved");
    for (const auto& s : {status, key_status})
        if (s != "approved" && s != "revoked" && s != "all")
            fail(400, "status and keyStatus must be approved, revoked or all");
    std::int64_t page_size = 1000;
    if (auto ps = ctx.q("pageSize")) {
        auto v = parse_int(*ps);
        if (!v) fail(400, "pageSize must be an integer");
        if (*v > 0) page_size = std::min<std::int64_t>(*v, 1000);
    }
    if (st.profile.page_100) page_size = std::min<std::int64_t>(page_size, 100);
    auto start = org.apps.begin();
    if (auto tok = ctx.q("pageToken"); tok && !tok->empty()) {
        auto raw = from_hex(*tok);
        auto sep = raw ? raw->find('\x1f') : std::string::npos;
        if (sep == std::string::npos) fail(400, "invalid pageToken");
        start = org.apps.upper_bound({raw->substr(0, sep), raw->substr(sep + 1)});
    }
    // keystatus-whole-apps: keyStatus selects the apps that have a key
    // of that status, and such an app comes with all of its keys.
    const bool whole = st.profile.keystatus_whole_apps && key_status != "all";
    auto matches = [&](const developer_app& a) {
        if (status != "all" && a.status != status) return false;
        if (!whole) return true;
        return std::any_of(a.credentials.begin(), a.credentials.end(),
                           [&](const credential& c) { return c.status == key_status; });
    };
    const std::string all_keys = "all";
    const std::string* shown = whole ? &all_keys : &key_status;
    std::int64_t total = 0;
    for (const auto& [k, a] : org.apps)
        if (matches(a)) ++total;
    json list = json::array();
    std::string next;
    for (auto it = start; it != org.apps.end(); ++it) {
        if (!matches(it->second)) continue;
        if (static_cast<std::int64_t>(list.size()) == page_size) {
            // More remain: the token names the last app returned.
            break;
        }
        if (expand) {
            list.push_back(app_json(org, it->first, it->second, true, shown, true));
        } else {
            json j = {{"appId", it->second.app_id}};
            if (include_cred) {
                json full = app_json(org, it->first, it->second, true, shown, true);
                if (full.contains("credentials")) j["credentials"] = full["credentials"];
            }
            list.push_back(std::move(j));
        }
        next = to_hex(it->first.first + '\x1f' + it->first.second);
        auto peek = std::next(it);
        while (peek != org.apps.end() && !matches(peek->second)) ++peek;
        if (peek == org.apps.end()) next.clear();
    }
    const auto listed = static_cast<std::int64_t>(list.size());
    json out = {{"app", std::move(list)}, {"totalSize", total}};
    if (!next.empty()) out["nextPageToken"] = next;
    ctx.list_delay_ms = listed * st.list_latency_per_app_us / 1000;
    return hostile_response(st.fault, std::move(out), true);
}

response app_by_id(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto it = org.app_id_index.find(seg[3]);
    if (it == org.app_id_index.end()) fail(404, "app " + seg[3] + " not found");
    const auto& a = org.apps.at(it->second);
    return hostile_response(st.fault, app_json(org, it->second, a, true, nullptr, true), false);
}

}  // namespace keyrot::emulator
