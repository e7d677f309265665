// Keys of a developer app: create (custom key), read, update, approve or
// revoke, replace scopes, delete, and the products on a key. Create, read,
// delete and the products on a key serve team apps too (the update is
// group_key_post, api_appgroups.cpp).
#include <algorithm>

#include "api.hpp"
#include "views.hpp"

namespace keyrot::emulator {

response key_create(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const millis t = ctx.t;
    auto& a = find_owner_app(org, seg);
    const app_key k = owner_key(org, seg);
    credential c;
    c.consumer_key = string_field(body, "consumerKey");
    if (c.consumer_key.empty()) fail(400, "consumerKey is required");
    c.consumer_secret = string_field(body, "consumerSecret");
    if (c.consumer_secret.empty()) c.consumer_secret = random_string(st.id_rng, 64);
    if (!valid_key_chars(c.consumer_key) || !valid_key_chars(c.consumer_secret))
        fail(400,
             "consumer key and secret may hold only letters, digits, '_' and '-', at most "
             "2 KB each");
    if (auto at = body_attributes(body)) c.attributes = std::move(*at);
    if (const json* s = field(body, "scopes")) c.scopes = parse_string_list(*s, "scopes");
    if (st.profile.create_scopes && !c.scopes.empty())
        fail(400,
             "scopes must already be defined for an API product associated with the key; "
             "the new key has none");
    millis expires_s = 0;  // none given: the key never expires (as 0 or -1)
    if (const json* e = field(body, "expiresInSeconds")) {
        auto v = json_int64(*e);
        if (!v) fail(400, "expiresInSeconds must be an int64");
        expires_s = *v;
    }
    if (org.key_index.count(c.consumer_key))
        fail(409, "the consumer key already exists in this organization");
    c.issued_at = t;
    if (expires_s > 0) c.expires_at = t + expires_s * 1000;
    org.key_index[c.consumer_key] = k;
    a.credentials.push_back(std::move(c));
    a.last_modified_at = t;
    return json_response(credential_json(a.credentials.back()));
}

response key_get(state&, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(org, seg);
    return json_response(credential_json(find_key(a, seg[7])));
}

response key_post(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    const auto& action = ctx.action;
    auto& a = find_owner_app(org, seg);
    auto& c = find_key(a, seg[7]);
    if (action) {
        c.status = parse_action(action);
        return no_content();
    }
    std::vector<std::string> add;
    if (const json* p = field(body, "apiProducts")) add = product_names(org, *p);
    std::optional<std::vector<attribute>> attrs = body_attributes(body);
    std::size_t total = c.products.size();
    for (const auto& p : add)
        if (std::none_of(c.products.begin(), c.products.end(),
                         [&](const key_product& kp) { return kp.name == p; }))
            ++total;
    if (total > k_max_products_per_key) fail(400, "at most 50 API products per key");
    for (const auto& p : add)
        if (std::none_of(c.products.begin(), c.products.end(),
                         [&](const key_product& kp) { return kp.name == p; }))
            c.products.push_back({p, product_status(org, p)});
    if (attrs)
        c.attributes = std::move(*attrs);
    else if (st.profile.update_wipes_attributes)
        c.attributes.clear();  // "replaces the existing attributes with those specified"
    if (const json* s = field(body, "scopes")) c.scopes = parse_string_list(*s, "scopes");
    return json_response(credential_json(c));
}

response key_put(state& st, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    const json& body = ctx.body;
    auto& a = find_owner_app(org, seg);
    auto& c = find_key(a, seg[7]);
    std::vector<std::string> scopes;
    if (const json* s = field(body, "scopes")) scopes = parse_string_list(*s, "scopes");
    c.scopes = std::move(scopes);
    // Strict: a replace is a replace of the key as sent, attributes included.
    if (st.profile.update_wipes_attributes) {
        auto attrs = body_attributes(body);
        c.attributes = attrs ? std::move(*attrs) : std::vector<attribute>{};
    }
    return json_response(credential_json(c));
}

response key_delete(state&, call& ctx) {
    organization& org = ctx.org;
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(org, seg);
    auto& c = find_key(a, seg[7]);
    json out = credential_json(c);
    org.key_index.erase(c.consumer_key);
    a.credentials.erase(a.credentials.begin() + (&c - a.credentials.data()));
    return json_response(out);
}

namespace {

// The product P of …/keys/K/apiproducts/P on its key (404 when not on it).
std::vector<key_product>::iterator find_key_product(credential& c, const std::string& name) {
    auto it = std::find_if(c.products.begin(), c.products.end(),
                           [&](const key_product& kp) { return kp.name == name; });
    if (it == c.products.end()) fail(404, "API product " + name + " is not on this key");
    return it;
}

}  // namespace

response key_product_post(state&, call& ctx) {
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(ctx.org, seg);
    auto& c = find_key(a, seg[7]);
    auto it = find_key_product(c, seg[9]);
    if (!ctx.action) fail(400, "action=approve|revoke is required");
    it->status = parse_action(ctx.action);
    return no_content();
}

response key_product_delete(state&, call& ctx) {
    const auto& seg = ctx.seg;
    auto& a = find_owner_app(ctx.org, seg);
    auto& c = find_key(a, seg[7]);
    c.products.erase(find_key_product(c, seg[9]));
    return json_response(credential_json(c));
}

}  // namespace keyrot::emulator
