#include "apigee/json.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/fingerprint.hpp"

namespace keyrot::apigee {

using json = nlohmann::json;

namespace {

// Thrown only inside this file and caught by every parse_* entry point.
struct bad_field {
    std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
    throw bad_field{where + ": " + what};
}

const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string where_of(const std::string& ctx, const char* name) {
    return ctx.empty() ? name : ctx + "." + name;
}

std::string get_string(const json& obj, const char* name, const std::string& ctx) {
    const json* v = field(obj, name);
    if (!v) return {};
    if (!v->is_string()) fail(where_of(ctx, name), "expected a string");
    return v->get<std::string>();
}

std::int64_t to_int64(const json& v, const std::string& where) {
    std::int64_t out = 0;
    if (v.is_number_integer() && !v.is_number_unsigned()) {
        out = v.get<std::int64_t>();
    } else if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            fail(where, "number out of range");
        out = static_cast<std::int64_t>(u);
    } else if (v.is_number_float()) {
        double d = v.get<double>();
        if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18)
            fail(where, "expected an integer");
        out = static_cast<std::int64_t>(d);
    } else if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s.empty()) return 0;
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        if (ec != std::errc{} || ptr != s.data() + s.size())
            fail(where, "expected an integer string");
    } else {
        fail(where, "expected an integer (number or string)");
    }
    if (out < -1) fail(where, "negative value other than -1");
    return out;
}

std::int64_t get_int64(const json& obj, const char* name, const std::string& ctx,
                       std::int64_t dflt) {
    const json* v = field(obj, name);
    if (!v) return dflt;
    if (v->is_string() && v->get_ref<const std::string&>().empty()) return dflt;
    return to_int64(*v, where_of(ctx, name));
}

// A time or span where -1 (and an absent or empty field) means never: empty.
std::optional<std::int64_t> get_or_never(const json& obj, const char* name,
                                         const std::string& ctx) {
    const std::int64_t v = get_int64(obj, name, ctx, -1);
    if (v == -1) return std::nullopt;
    return v;
}

std::vector<std::string> get_strings(const json& obj, const char* name, const std::string& ctx) {
    std::vector<std::string> out;
    const json* v = field(obj, name);
    if (!v) return out;
    if (!v->is_array()) fail(where_of(ctx, name), "expected an array");
    for (const auto& e : *v) {
        if (!e.is_string()) fail(where_of(ctx, name), "expected an array of strings");
        out.push_back(e.get<std::string>());
    }
    return out;
}

std::vector<attribute> get_attributes(const json& obj, const std::string& ctx) {
    std::vector<attribute> out;
    const json* v = field(obj, "attributes");
    if (!v) return out;
    auto where = where_of(ctx, "attributes");
    if (!v->is_array()) fail(where, "expected an array");
    for (const auto& e : *v) {
        if (!e.is_object()) fail(where, "expected an array of {name, value}");
        attribute a{get_string(e, "name", where), get_string(e, "value", where)};
        out.push_back(std::move(a));
    }
    return out;
}

void require_object(const json& v, const std::string& where) {
    if (!v.is_object()) fail(where.empty() ? "document" : where, "expected an object");
}

credential credential_from(const json& j, const std::string& ctx) {
    require_object(j, ctx);
    credential c;
    c.consumer_key = secret(get_string(j, "consumerKey", ctx));
    c.consumer_secret = secret(get_string(j, "consumerSecret", ctx));
    if (!c.consumer_key.empty()) c.fingerprint = fingerprint(c.consumer_key);
    c.status = parse_approval(get_string(j, "status", ctx));
    c.issued_at = as_sys_ms(get_int64(j, "issuedAt", ctx, 0));
    if (const auto at = get_or_never(j, "expiresAt", ctx)) c.expires_at = as_sys_ms(*at);
    c.attributes = get_attributes(j, ctx);
    c.scopes = get_strings(j, "scopes", ctx);
    if (const json* p = field(j, "apiProducts")) {
        auto where = where_of(ctx, "apiProducts");
        if (!p->is_array()) fail(where, "expected an array");
        for (const auto& e : *p) {
            if (e.is_string()) {
                c.products.push_back({e.get<std::string>(), approval::unknown});
            } else if (e.is_object()) {
                c.products.push_back({get_string(e, "apiproduct", where),
                                      parse_approval(get_string(e, "status", where))});
            } else {
                fail(where, "expected names or {apiproduct, status}");
            }
        }
    }
    return c;
}

app app_from(const json& j, const std::string& org, const std::string& ctx, bool edge = false) {
    require_object(j, ctx);
    app a;
    a.organization = org;
    a.name = get_string(j, "name", ctx);
    a.app_id = get_string(j, "appId", ctx);
    a.developer_id = get_string(j, "developerId", ctx);
    a.developer_email = get_string(j, "developerEmail", ctx);
    // Edge: a company app is the team app (apigee.flavor: edge).
    a.app_group = get_string(j, edge ? "companyName" : "appGroup", ctx);
    if (auto s = get_string(j, "status", ctx); !s.empty()) a.status = parse_approval(s);
    a.callback_url = get_string(j, "callbackUrl", ctx);
    a.app_family = get_string(j, "appFamily", ctx);
    a.attributes = get_attributes(j, ctx);
    a.scopes = get_strings(j, "scopes", ctx);
    if (const json* p = field(j, "apiProducts")) {
        auto where = where_of(ctx, "apiProducts");
        if (!p->is_array()) fail(where, "expected an array");
        for (const auto& e : *p) {
            if (e.is_string())
                a.api_products.push_back(e.get<std::string>());
            else if (e.is_object())
                a.api_products.push_back(get_string(e, "apiproduct", where));
            else
                fail(where, "expected names");
        }
    }
    if (auto in = get_or_never(j, "keyExpiresIn", ctx)) {
        // In seconds on a team app (AppGroupApp), in milliseconds on a developer app.
        if (!edge && !a.app_group.empty()) {
            if (*in > std::numeric_limits<std::int64_t>::max() / 1000)
                fail(where_of(ctx, "keyExpiresIn"), "out of range");
            *in *= 1000;
        }
        a.key_expires_in = milliseconds(*in);
    }
    a.created_at = as_sys_ms(get_int64(j, "createdAt", ctx, 0));
    a.last_modified_at = as_sys_ms(get_int64(j, "lastModifiedAt", ctx, 0));
    if (const json* cs = field(j, "credentials")) {
        auto where = where_of(ctx, "credentials");
        if (!cs->is_array()) fail(where, "expected an array");
        std::size_t i = 0;
        for (const auto& e : *cs) {
            a.credentials.push_back(credential_from(e, where + "[" + std::to_string(i++) + "]"));
        }
    }
    return a;
}

error protocol_error(std::string msg) {
    error e;
    e.what = error::kind::protocol;
    e.message = std::move(msg);
    return e;
}

// Parses and runs `f` on the document; every failure becomes a protocol error.
template <typename F>
auto with_document(std::string_view body, const char* what, F&& f)
    -> result<decltype(f(std::declval<const json&>()))> {
    if (body.size() > k_max_json_bytes)
        return protocol_error(std::string(what) + ": document too large");
    try {
        json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) return protocol_error(std::string(what) + ": not valid JSON");
        return f(doc);
    } catch (const bad_field& b) {
        return protocol_error(std::string(what) + ": " + b.message);
    } catch (const std::exception& ex) {
        return protocol_error(std::string(what) + ": " + ex.what());
    }
}

json attributes_json(const std::vector<attribute>& attrs) {
    json out = json::array();
    for (const auto& a : attrs) out.push_back({{"name", a.name}, {"value", a.value}});
    return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

result<app> parse_app(std::string_view body, const std::string& organization) {
    return with_document(body, "app", [&](const json& d) { return app_from(d, organization, ""); });
}

result<credential> parse_credential(std::string_view body) {
    return with_document(body, "key", [&](const json& d) { return credential_from(d, ""); });
}

result<app_page> parse_app_page(std::string_view body, const std::string& organization) {
    return with_document(body, "app list", [&](const json& d) {
        require_object(d, "");
        app_page page;
        if (const json* apps = field(d, "app")) {
            if (!apps->is_array()) fail("app", "expected an array");
            std::size_t i = 0;
            for (const auto& e : *apps)
                page.apps.push_back(app_from(e, organization, "app[" + std::to_string(i++) + "]"));
        }
        page.next_page_token = get_string(d, "nextPageToken", "");
        page.total_size = get_int64(d, "totalSize", "", -1);
        return page;
    });
}

result<std::vector<std::pair<std::string, std::string>>> parse_developers(std::string_view body) {
    return with_document(body, "developer list", [&](const json& d) {
        require_object(d, "");
        std::vector<std::pair<std::string, std::string>> out;
        if (const json* devs = field(d, "developer")) {
            if (!devs->is_array()) fail("developer", "expected an array");
            std::size_t i = 0;
            for (const auto& e : *devs) {
                std::string where = "developer[" + std::to_string(i++) + "]";
                require_object(e, where);
                // No status (paged entries may carry the email only): "" = not known.
                out.emplace_back(get_string(e, "email", where), get_string(e, "status", where));
            }
        }
        return out;
    });
}

bool parse_google_error(std::string_view body, google_error& out) {
    if (body.size() > k_max_json_bytes) return false;
    json doc = json::parse(body.begin(), body.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return false;
    auto it = doc.find("error");
    if (it == doc.end() || !it->is_object()) return false;
    const json& e = *it;
    if (auto c = e.find("code"); c != e.end() && c->is_number_integer()) out.code = c->get<int>();
    if (auto s = e.find("status"); s != e.end() && s->is_string())
        out.status = s->get<std::string>();
    if (auto m = e.find("message"); m != e.end() && m->is_string())
        out.message = m->get<std::string>();
    return true;
}

std::string generate_key_body(const app& a) {
    json j = {{"name", a.name}};
    j["attributes"] = attributes_json(a.attributes);
    j["callbackUrl"] = a.callback_url;
    j["apiProducts"] = a.api_products;
    j["scopes"] = a.scopes;
    if (!a.app_family.empty()) j["appFamily"] = a.app_family;
    if (a.key_expires_in) j["keyExpiresIn"] = std::to_string(a.key_expires_in->count());
    return dump(j);
}

std::string update_app_body(const app& a) {
    json j = {{"name", a.name}};
    j["attributes"] = attributes_json(a.attributes);
    j["callbackUrl"] = a.callback_url;
    if (!a.app_family.empty()) j["appFamily"] = a.app_family;
    return dump(j);
}

std::string create_key_body(const new_key& k) {
    json j;
    j["consumerKey"] = k.consumer_key.reveal();
    j["consumerSecret"] = k.consumer_secret.reveal();
    if (k.expires_in) j["expiresInSeconds"] = std::to_string(k.expires_in->count());
    j["attributes"] = attributes_json(k.attributes);
    std::string out = dump(j);
    cleanse(j["consumerKey"].get_ref<std::string&>());
    cleanse(j["consumerSecret"].get_ref<std::string&>());
    return out;
}

std::string update_key_body(const std::vector<std::string>& add_products,
                            const std::vector<attribute>& attributes) {
    json j;
    j["apiProducts"] = add_products;
    j["attributes"] = attributes_json(attributes);
    return dump(j);
}

std::string scopes_body(const std::vector<std::string>& scopes,
                        const std::vector<attribute>& attributes) {
    json j;
    j["scopes"] = scopes;
    j["attributes"] = attributes_json(attributes);
    return dump(j);
}

std::string team_update_key_body(const std::vector<std::string>& add_products,
                                 const std::vector<attribute>& attributes,
                                 const std::vector<std::string>* scopes) {
    json key;
    key["attributes"] = attributes_json(attributes);
    if (scopes != nullptr) key["scopes"] = *scopes;
    json j;
    j["apiProducts"] = add_products;
    j["appGroupAppKey"] = std::move(key);
    return dump(j);
}

std::string team_key_action_body(bool approve) {
    json j;
    j["action"] = approve ? "approve" : "revoke";
    return dump(j);
}

result<std::pair<std::vector<std::pair<std::string, std::string>>, std::string>> parse_app_groups(
    std::string_view body) {
    return with_document(body, "appGroups", [&](const json& d) {
        require_object(d, "");
        std::pair<std::vector<std::pair<std::string, std::string>>, std::string> out;
        if (const json* gs = field(d, "appGroups")) {
            if (!gs->is_array()) fail("appGroups", "expected an array");
            std::size_t i = 0;
            for (const auto& g : *gs) {
                const std::string where = "appGroups[" + std::to_string(i++) + "]";
                require_object(g, where);
                std::string name = get_string(g, "name", where);
                if (name.empty()) fail(where + ".name", "missing");
                out.first.emplace_back(std::move(name), get_string(g, "status", where));
            }
        }
        out.second = get_string(d, "nextPageToken", "");
        return out;
    });
}

result<owner_status> parse_developer_status(std::string_view body) {
    return with_document(body, "developer", [&](const json& d) {
        require_object(d, "");
        return parse_owner_status(get_string(d, "status", ""));
    });
}

// ---------------------------------------------------------------------------
// Apigee Edge

result<app> parse_edge_app(std::string_view body, const std::string& organization) {
    return with_document(body, "app",
                         [&](const json& d) { return app_from(d, organization, "", true); });
}

result<app_page> parse_edge_app_page(std::string_view body, const std::string& organization) {
    return with_document(body, "app list", [&](const json& d) {
        require_object(d, "");
        app_page page;
        if (const json* apps = field(d, "app")) {
            if (!apps->is_array()) fail("app", "expected an array");
            std::size_t i = 0;
            for (const auto& e : *apps) {
                const std::string where = "app[" + std::to_string(i++) + "]";
                app a = app_from(e, organization, where, true);
                // Paging goes by appId: an app without one cannot be paged past.
                if (a.app_id.empty()) fail(where + ".appId", "missing");
                page.apps.push_back(std::move(a));
            }
        }
        return page;
    });
}

result<std::vector<edge_developer>> parse_edge_developers(std::string_view body) {
    return with_document(body, "developer list", [&](const json& d) {
        std::vector<edge_developer> out;
        // expand "is not valid" with count/startKey: maybe e-mails only.
        if (d.is_array()) {
            for (const auto& e : d) {
                if (!e.is_string()) fail("developer", "expected e-mails or developers");
                out.push_back({e.get<std::string>(), "", ""});
            }
            return out;
        }
        require_object(d, "");
        if (const json* devs = field(d, "developer")) {
            if (!devs->is_array()) fail("developer", "expected an array");
            std::size_t i = 0;
            for (const auto& e : *devs) {
                std::string where = "developer[" + std::to_string(i++) + "]";
                require_object(e, where);
                out.push_back({get_string(e, "email", where), get_string(e, "developerId", where),
                               get_string(e, "status", where)});
            }
        }
        return out;
    });
}

result<edge_developer> parse_edge_developer(std::string_view body) {
    return with_document(body, "developer", [&](const json& d) {
        require_object(d, "");
        edge_developer out{get_string(d, "email", ""), get_string(d, "developerId", ""),
                           get_string(d, "status", "")};
        if (out.email.empty()) fail("email", "missing");
        return out;
    });
}

result<std::vector<std::pair<std::string, std::string>>> parse_edge_companies(
    std::string_view body) {
    return with_document(body, "company list", [&](const json& d) {
        std::vector<std::pair<std::string, std::string>> out;
        if (d.is_array()) {  // names only (as the developer list)
            for (const auto& e : d) {
                if (!e.is_string() || e.get_ref<const std::string&>().empty())
                    fail("company", "expected names or companies");
                out.emplace_back(e.get<std::string>(), "");
            }
            return out;
        }
        require_object(d, "");
        if (const json* cs = field(d, "company")) {
            if (!cs->is_array()) fail("company", "expected an array");
            std::size_t i = 0;
            for (const auto& c : *cs) {
                const std::string where = "company[" + std::to_string(i++) + "]";
                require_object(c, where);
                std::string name = get_string(c, "name", where);
                if (name.empty()) fail(where + ".name", "missing");
                out.emplace_back(std::move(name), get_string(c, "status", where));
            }
        }
        return out;
    });
}

bool parse_edge_error(std::string_view body, edge_error& out) {
    if (body.size() > k_max_json_bytes) return false;
    json doc = json::parse(body.begin(), body.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return false;
    auto c = doc.find("code");
    if (c == doc.end() || !c->is_string()) return false;
    out.code = c->get<std::string>();
    if (auto m = doc.find("message"); m != doc.end() && m->is_string())
        out.message = m->get<std::string>();
    return true;
}

std::string status_name(int http_status) {
    switch (http_status) {
        case 400:
            return "INVALID_ARGUMENT";
        case 401:
            return "UNAUTHENTICATED";
        case 403:
            return "PERMISSION_DENIED";
        case 404:
            return "NOT_FOUND";
        case 409:
            return "ALREADY_EXISTS";
        case 429:
            return "RESOURCE_EXHAUSTED";
        case 500:
            return "INTERNAL";
        case 501:
            return "UNIMPLEMENTED";
        case 503:
            return "UNAVAILABLE";
        case 504:
            return "DEADLINE_EXCEEDED";
        default:
            return "";
    }
}

std::string edge_generate_key_body(const app& a) {
    json j = {{"name", a.name}};
    j["attributes"] = attributes_json(a.attributes);
    j["callbackUrl"] = a.callback_url;
    j["apiProducts"] = a.api_products;
    j["scopes"] = a.scopes;
    if (!a.app_family.empty()) j["appFamily"] = a.app_family;
    if (a.key_expires_in) j["keyExpiresIn"] = a.key_expires_in->count();
    return dump(j);
}

std::string edge_create_key_body(const new_key& k) {
    json j;
    j["consumerKey"] = k.consumer_key.reveal();
    j["consumerSecret"] = k.consumer_secret.reveal();
    std::string out = dump(j);
    cleanse(j["consumerKey"].get_ref<std::string&>());
    cleanse(j["consumerSecret"].get_ref<std::string&>());
    return out;
}

std::string edge_update_key_body(const std::vector<std::string>& add_products,
                                 const std::vector<attribute>& attributes,
                                 const std::vector<std::string>* scopes) {
    json j;
    j["apiProducts"] = add_products;
    j["attributes"] = attributes_json(attributes);
    if (scopes != nullptr) j["scopes"] = *scopes;
    return dump(j);
}

edge_page_step edge_next_page(const std::string& start_key, const std::vector<std::string>& ids) {
    edge_page_step step;
    if (!start_key.empty() && !ids.empty() && ids.front() == start_key) step.skip = 1;
    if (ids.size() > step.skip) step.next_start_key = ids.back();
    return step;
}

}  // namespace keyrot::apigee
