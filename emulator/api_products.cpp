// API products: list, create, read.
#include "api.hpp"
#include "views.hpp"

namespace keyrot::emulator {

response products_list(state&, call& ctx) {
    const bool expand = ctx.q_bool("expand");
    json list = json::array();
    for (const auto& [_, p] : ctx.org.products)
        list.push_back(expand ? product_json(p) : json{{"name", p.name}});
    return json_response({{"apiProduct", std::move(list)}});
}

response product_create(state& st, call& ctx) {
    organization& org = ctx.org;
    const json& body = ctx.body;
    api_product p;
    p.name = string_field(body, "name");
    if (p.name.empty() || p.name.find('/') != std::string::npos)
        fail(400, "product name is required");
    if (org.products.count(p.name)) fail(409, "API product " + p.name + " already exists");
    p.display_name = string_field(body, "displayName", p.name);
    p.approval_type = string_field(body, "approvalType", "auto");
    if (p.approval_type != "auto" && p.approval_type != "manual")
        fail(400, "approvalType must be auto or manual");
    if (auto at = body_attributes(body)) p.attributes = std::move(*at);
    p.created_at = p.last_modified_at = ctx.t;
    const auto& stored = org.products[p.name] = std::move(p);
    return json_response(product_json(stored), st.edge ? 201 : 200);  // Edge: 201
}

response product_get(state&, call& ctx) {
    const auto& name = ctx.seg[3];
    auto it = ctx.org.products.find(name);
    if (it == ctx.org.products.end()) fail(404, "API product " + name + " not found");
    return json_response(product_json(it->second));
}

}  // namespace keyrot::emulator
