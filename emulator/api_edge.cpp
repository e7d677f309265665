// The calls only the Edge flavor serves, or serves its own way
// (docs/emulator.md, "Edge flavor"): lists paged by an inclusive startKey
// (developers and companies by count, org apps by rows, ordered by appId),
// companies and their apps, keys/create (no expiry), and a key's attributes.
// The other Edge calls are the X handlers, which answer Edge JSON when
// edge_json() is set (views.cpp, util.cpp).
#include <algorithm>

#include "api.hpp"
#include "faults.hpp"
#include "views.hpp"

namespace keyrot::emulator {

namespace {

// `count` of a developer or company list: default and maximum 1000.
std::int64_t count_of(const call& ctx) {
    std::int64_t count = 1000;
    if (auto c = ctx.q("count")) {
        auto v = parse_int(*c);
        if (!v || *v < 0) fail(400, "count must be a non-negative integer");
        if (*v > 0) count = std::min<std::int64_t>(*v, 1000);
    }
    return count;
}

// developer-list-emails (strict): "expand is not valid with count or startKey":
// such a list is the plain one.
bool expanded(const state& st, const call& ctx) {
    const bool paged = ctx.q("count").has_value() || ctx.q("startKey").has_value();
    return ctx.q_bool("expand") && !(st.profile.developer_list_emails && paged);
}

}  // namespace

// GET /developers?expand&count&startKey: {"developer": [...]} expanded, else
// a JSON array of emails. startKey (an email) is included.
response edge_devs_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const std::int64_t count = count_of(ctx);
    auto it = org.developers.begin();
    if (auto sk = ctx.q("startKey"); sk && !sk->empty())
        it = org.developers.lower_bound(ascii_lower(*sk));
    const bool expand = expanded(st, ctx);
    json list = json::array();
    for (; it != org.developers.end() && static_cast<std::int64_t>(list.size()) < count; ++it) {
        if (expand)
            list.push_back(developer_json(org, it->second));
        else
            list.push_back(it->second.email);
    }
    if (!expand) return json_response(list);
    json out = json::object();
    out["developer"] = std::move(list);
    return json_response(out);
}

namespace {

// The apps of one owner (`first`: the app map's owner part), as
// GET /developers/D/apps and /companies/C/apps answer: count (at most 100 on
// Public Cloud), startKey (an app name, included), expand → {"app": [...]},
// else an array of names (strict: names whenever count or startKey is given).
response owner_apps(const state& st, const call& ctx, const std::string& first) {
    const organization& org = ctx.org;
    const std::int64_t cap = st.private_cloud ? 10000 : 100;
    std::int64_t count = cap;
    if (auto c = ctx.q("count")) {
        auto v = parse_int(*c);
        if (!v || *v < 0) fail(400, "count must be a non-negative integer");
        if (*v > 0) count = std::min(*v, cap);
    }
    auto it = org.apps.lower_bound({first, ""});
    if (auto sk = ctx.q("startKey"); sk && !sk->empty()) it = org.apps.lower_bound({first, *sk});
    const bool expand = expanded(st, ctx);
    json list = json::array();
    for (; it != org.apps.end() && it->first.first == first &&
           static_cast<std::int64_t>(list.size()) < count;
         ++it) {
        if (expand)
            list.push_back(app_json(org, it->first, it->second, true, nullptr, false));
        else
            list.push_back(it->second.name);
    }
    if (!expand) return json_response(list);
    json out = json::object();
    out["app"] = std::move(list);
    return json_response(out);
}

}  // namespace

// GET /developers/D/apps?expand&count&startKey.
response edge_dev_apps_list(state& st, call& ctx) {
    return owner_apps(st, ctx, ascii_lower(find_dev(ctx.org, ctx.seg[3]).email));
}

// GET /companies/C/apps?expand&count&startKey ("count: required if you specify startKey").
response company_apps_list(state& st, call& ctx) {
    const std::string first = k_team_prefix + find_group(ctx.org, ctx.seg[3]).name;
    if (ctx.q("startKey") && !ctx.q("count")) fail(400, "count is required with startKey");
    return owner_apps(st, ctx, first);
}

// GET /companies?expand&count&startKey: {"company": [...]} expanded, else an
// array of names; startKey (a name) is included.
response companies_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const std::int64_t count = count_of(ctx);
    auto it = org.app_groups.begin();
    if (auto sk = ctx.q("startKey"); sk && !sk->empty()) {
        // company-startkey-exclusive: the reference's example leaves the
        // startKey company out (the developer and app lists include theirs).
        it = st.profile.company_startkey_exclusive ? org.app_groups.upper_bound(*sk)
                                                   : org.app_groups.lower_bound(*sk);
    }
    const bool expand = expanded(st, ctx);
    json list = json::array();
    for (; it != org.app_groups.end() && static_cast<std::int64_t>(list.size()) < count; ++it) {
        if (expand)
            list.push_back(company_json(org, it->second));
        else
            list.push_back(it->second.name);
    }
    if (!expand) return json_response(list);
    json out = json::object();
    out["company"] = std::move(list);
    return json_response(out);
}

response company_get(state&, call& ctx) {
    return json_response(company_json(ctx.org, find_group(ctx.org, ctx.seg[3])));
}

// GET /apps?expand&rows&startKey&status&apptype: the org's apps ordered by
// appId, from startKey (an appId, included) on, at most `rows` (default and
// maximum 1000; 10000 with --private-cloud). Expanded: {"app": [full apps
// with every credential]}; else a JSON array of appIds.
response edge_apps_list(state& st, call& ctx) {
    organization& org = ctx.org;
    const std::int64_t cap = st.private_cloud ? 10000 : 1000;
    std::int64_t rows = cap;
    if (ctx.q("startKey") && !ctx.q("rows")) fail(400, "rows is required with startKey");
    if (auto r = ctx.q("rows")) {
        auto v = parse_int(*r);
        if (!v || *v < 0) fail(400, "rows must be a non-negative integer");
        if (*v > 0) rows = std::min(*v, cap);
    }
    const std::string status = ctx.q("status").value_or("");
    if (!status.empty() && status != "approved" && status != "revoked")
        fail(400, "status must be approved or revoked");
    const std::string type = ctx.q("apptype").value_or("");
    if (!type.empty() && type != "developer" && type != "company")
        fail(400, "apptype must be developer or company");
    std::vector<std::pair<std::string, const app_key*>> ids;
    ids.reserve(org.apps.size());
    for (const auto& [k, a] : org.apps) {
        if (!status.empty() && a.status != status) continue;
        if (!type.empty() && (type == "company") != !a.app_group.empty()) continue;
        ids.emplace_back(a.app_id, &k);
    }
    std::sort(ids.begin(), ids.end());
    auto it = ids.begin();
    if (auto sk = ctx.q("startKey"); sk && !sk->empty())
        it = std::lower_bound(ids.begin(), ids.end(), std::make_pair(*sk, (const app_key*)nullptr));
    const bool expand = ctx.q_bool("expand");
    json list = json::array();
    for (; it != ids.end() && static_cast<std::int64_t>(list.size()) < rows; ++it) {
        if (expand)
            list.push_back(
                app_json(org, *it->second, org.apps.at(*it->second), true, nullptr, false));
        else
            list.push_back(it->first);
    }
    ctx.list_delay_ms = static_cast<std::int64_t>(list.size()) * st.list_latency_per_app_us / 1000;
    if (!expand) return json_response(list);
    json out = json::object();
    out["app"] = std::move(list);
    return hostile_response(st.fault, std::move(out), true);
}

// POST …/apps/A/keys/create {"consumerKey", "consumerSecret"}: a key that never
// expires (expiresAt -1), approved, with no products. Edge cannot set an
// expiry here: an expiry field is ignored, or a 400 under create-expiry.
response edge_key_create(state& st, call& ctx) {
    organization& org = ctx.org;
    const json& body = ctx.body;
    auto& a = find_owner_app(org, ctx.seg);
    const app_key k = owner_key(org, ctx.seg);
    credential c;
    c.consumer_key = string_field(body, "consumerKey");
    c.consumer_secret = string_field(body, "consumerSecret");
    if (c.consumer_key.empty() || c.consumer_secret.empty())
        fail(400, "consumerKey and consumerSecret are required");
    if (!valid_key_chars(c.consumer_key) || !valid_key_chars(c.consumer_secret))
        fail(400,
             "consumer key and secret may hold only letters, digits, '_' and '-', at most "
             "2 KB each");
    for (const char* f : {"expiresAt", "expiresInSeconds", "keyExpiresIn", "expiresIn"})
        if (field(body, f) != nullptr && st.profile.create_expiry)
            fail(400, std::string("an imported key cannot have an expiry (") + f + ")");
    if (org.key_index.count(c.consumer_key))
        fail(409, "the consumer key already exists in this organization",
             "keymanagement.service.KeyAlreadyExists");
    c.issued_at = ctx.t;
    c.expires_at.reset();  // never
    org.key_index[c.consumer_key] = k;
    a.credentials.push_back(std::move(c));
    a.last_modified_at = ctx.t;
    return json_response(credential_json(a.credentials.back()), 201);  // Edge: 201 Created
}

// POST …/keys/K/attributes {"attribute": [...]}: replaces the key's attributes.
response key_attributes_post(state&, call& ctx) {
    auto& a = find_owner_app(ctx.org, ctx.seg);
    auto& c = find_key(a, ctx.seg[7]);
    const json* list = field(ctx.body, "attribute");
    if (list == nullptr) fail(400, "attribute is required");
    c.attributes = parse_attributes(*list, "key");
    a.last_modified_at = ctx.t;
    json out = json::object();
    out["attribute"] = attrs_json(c.attributes);
    return json_response(out);
}

}  // namespace keyrot::emulator
