#include "emulator.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "common/duration.hpp"
#include "common/fingerprint.hpp"
#include "oauth.hpp"

namespace keyrot::emulator {

using json = nlohmann::json;

namespace {

constexpr std::size_t k_max_attributes = 18;
constexpr std::size_t k_max_attr_name = 1024;
constexpr std::size_t k_max_attr_value = 2048;
constexpr std::size_t k_max_key_size = 2048;
constexpr std::size_t k_max_products_per_key = 50;
// Team (AppGroup) apps share the app map; their key's first part is this byte
// and the group name (no developer email holds a control character).
const std::string k_team_prefix = "\x01";
constexpr std::size_t k_max_availability = 200000;
constexpr std::int64_t k_rate_window_s = 3600;

// An error reply. Thrown inside the request handler and turned into Google's
// error JSON by handle(); messages never carry key material.
struct api_error {
    int code;
    std::string status;
    std::string message;
};

[[noreturn]] void fail(int code, std::string message) {
    static const std::map<int, std::string> names = {
        {400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"},    {403, "PERMISSION_DENIED"},
        {404, "NOT_FOUND"},        {405, "METHOD_NOT_ALLOWED"}, {409, "ALREADY_EXISTS"},
        {413, "INVALID_ARGUMENT"}, {429, "RESOURCE_EXHAUSTED"}, {500, "INTERNAL"},
        {503, "UNAVAILABLE"}};
    auto it = names.find(code);
    throw api_error{code, it == names.end() ? "UNKNOWN" : it->second, std::move(message)};
}

response error_response(int code, const std::string& status, const std::string& message) {
    response r;
    r.status = code;
    // Paths may decode to invalid UTF-8: replace it rather than throw.
    r.body = json{{"error", {{"code", code}, {"message", message}, {"status", status}}}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
    return r;
}

response json_response(const json& j, int status = 200) {
    response r;
    r.status = status;
    r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
    return r;
}

response no_content() {
    response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

std::optional<std::string> url_decode(std::string_view in, bool plus_is_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9') return h - '0';
                if (h >= 'a' && h <= 'f') return h - 'a' + 10;
                if (h >= 'A' && h <= 'F') return h - 'A' + 10;
                return -1;
            };
            int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string to_hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out.push_back(d[c >> 4]);
        out.push_back(d[c & 15]);
    }
    return out;
}

std::optional<std::string> from_hex(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        auto v = url_decode(std::string("%") + s[i] + s[i + 1], false);
        if (!v) return std::nullopt;
        out += *v;
    }
    return out;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    std::size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (s.size() == 1) return std::nullopt;
    }
    std::int64_t v = 0;
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
        v = v * 10 + (s[i] - '0');
    }
    return neg ? -v : v;
}

// int64 fields arrive as JSON strings (Google) or numbers (Edge, people).
std::optional<std::int64_t> json_int64(const json& j) {
    if (j.is_number_integer()) return j.get<std::int64_t>();
    if (j.is_number_float()) return static_cast<std::int64_t>(j.get<double>());
    if (j.is_string()) return parse_int(j.get_ref<const std::string&>());
    return std::nullopt;
}

const json* field(const json& body, const char* name) {
    if (!body.is_object()) return nullptr;
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string string_field(const json& body, const char* name, const std::string& dflt = {}) {
    const json* f = field(body, name);
    if (!f) return dflt;
    if (!f->is_string()) fail(400, std::string("field ") + name + " must be a string");
    return f->get<std::string>();
}

std::vector<attribute> parse_attributes(const json& j, const char* what) {
    if (!j.is_array()) fail(400, std::string(what) + " attributes must be a list");
    if (j.size() > k_max_attributes)
        fail(400, std::string(what) + " attributes: at most 18 custom attributes are allowed");
    std::vector<attribute> out;
    for (const auto& a : j) {
        if (!a.is_object()) fail(400, "an attribute must be an object {name, value}");
        attribute at;
        const json* n = field(a, "name");
        if (!n || !n->is_string() || n->get_ref<const std::string&>().empty())
            fail(400, "an attribute needs a non-empty string name");
        at.name = n->get<std::string>();
        const json* v = field(a, "value");
        if (v) at.value = v->is_string() ? v->get<std::string>() : v->dump();
        if (at.name.size() > k_max_attr_name) fail(400, "attribute name longer than 1 KB");
        if (at.value.size() > k_max_attr_value) fail(400, "attribute value longer than 2 KB");
        out.push_back(std::move(at));
    }
    return out;
}

std::vector<std::string> parse_string_list(const json& j, const char* what) {
    if (!j.is_array()) fail(400, std::string(what) + " must be a list of strings");
    std::vector<std::string> out;
    for (const auto& s : j) {
        if (!s.is_string()) fail(400, std::string(what) + " must be a list of strings");
        out.push_back(s.get<std::string>());
    }
    return out;
}

bool valid_key_chars(const std::string& k) {
    if (k.empty() || k.size() > k_max_key_size) return false;
    return std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

bool valid_email(const std::string& e) {
    auto at = e.find('@');
    if (at == std::string::npos || at == 0 || e.find('@', at + 1) != std::string::npos)
        return false;
    auto dot = e.find('.', at);
    if (dot == std::string::npos || dot == at + 1 || e.back() == '.') return false;
    return std::none_of(e.begin(), e.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\\' ||
               static_cast<unsigned char>(c) < 0x20;
    });
}

bool has_marker(const credential& c) {
    return std::any_of(c.attributes.begin(), c.attributes.end(),
                       [](const attribute& a) { return a.name == "keyrotd_replaces"; });
}

json attrs_json(const std::vector<attribute>& attrs) {
    json a = json::array();
    for (const auto& at : attrs) a.push_back({{"name", at.name}, {"value", at.value}});
    return a;
}

// Google's JSON mapping leaves out empty repeated fields and empty strings.
void put_list(json& j, const char* name, const std::vector<std::string>& v) {
    if (!v.empty()) j[name] = v;
}
void put_str(json& j, const char* name, const std::string& v) {
    if (!v.empty()) j[name] = v;
}
void put_attrs(json& j, const std::vector<attribute>& attrs) {
    if (!attrs.empty()) j["attributes"] = attrs_json(attrs);
}

json credential_json(const credential& c) {
    json j = {{"consumerKey", c.consumer_key},
              {"consumerSecret", c.consumer_secret},
              {"status", c.status},
              {"issuedAt", std::to_string(c.issued_at)},
              {"expiresAt", std::to_string(c.expires_at)}};
    put_attrs(j, c.attributes);
    put_list(j, "scopes", c.scopes);
    if (!c.products.empty()) {
        json p = json::array();
        for (const auto& kp : c.products)
            p.push_back({{"apiproduct", kp.name}, {"status", kp.status}});
        j["apiProducts"] = std::move(p);
    }
    return j;
}

// Relative seed times: "+5m", "-30d" (from the load time), "now", or ms.
millis seed_time(const json& j, millis base, millis dflt) {
    if (j.is_null()) return dflt;
    if (auto v = json_int64(j)) return *v;
    if (!j.is_string()) throw std::runtime_error("seed: a time must be a number or a string");
    const auto& s = j.get_ref<const std::string&>();
    if (s == "now") return base;
    if (s.size() > 1 && (s[0] == '+' || s[0] == '-')) {
        if (auto d = parse_duration(std::string_view(s).substr(1)))
            return s[0] == '+' ? base + *d : base - *d;
    }
    throw std::runtime_error("seed: bad time \"" + s + "\" (use ms, \"now\", \"+5m\", \"-30d\")");
}

millis seed_span(const json& j) {
    if (j.is_null()) return -1;
    if (auto v = json_int64(j)) return *v;
    if (j.is_string()) {
        if (auto d = parse_duration(j.get_ref<const std::string&>())) return *d;
    }
    throw std::runtime_error("seed: bad keyExpiresIn");
}

std::string seed_str(const json& o, const char* name, const std::string& dflt = {}) {
    auto it = o.find(name);
    if (it == o.end() || it->is_null()) return dflt;
    if (!it->is_string())
        throw std::runtime_error(std::string("seed: ") + name + " must be a string");
    return it->get<std::string>();
}

std::vector<attribute> seed_attrs(const json& o) {
    auto it = o.find("attributes");
    if (it == o.end() || it->is_null()) return {};
    try {
        return parse_attributes(*it, "seed");
    } catch (const api_error& e) {
        throw std::runtime_error("seed: " + e.message);
    }
}

enum class route_id {
    org_get,
    apps_list,
    app_by_id,
    devs_list,
    dev_create,
    dev_get,
    dev_post,
    dev_apps_list,
    dev_app_create,
    app_get,
    app_post,
    app_put,
    app_delete,
    key_create,
    key_get,
    key_post,
    key_put,
    key_delete,
    key_product_post,
    key_product_delete,
    products_list,
    product_create,
    product_get,
};

struct route_match {
    std::optional<route_id> id;
    std::string templ;  // "GET /v1/organizations/{org}/apps"
    bool wrong_method = false;
    std::string allow;
};

// segs: decoded path segments after "v1".
route_match match_route(const std::string& method, const std::vector<std::string>& s,
                        bool has_action) {
    route_match m;
    using R = route_id;
    std::vector<std::pair<std::string, R>> allowed;
    std::string t;
    const auto n = s.size();
    auto is = [&](std::size_t i, const char* lit) { return n > i && s[i] == lit; };
    if (n >= 2 && is(0, "organizations")) {
        t = "/v1/organizations/{org}";
        if (n == 2) {
            allowed = {{"GET", R::org_get}};
        } else if (is(2, "apps")) {
            if (n == 3) {
                t += "/apps";
                allowed = {{"GET", R::apps_list}};
            } else if (n == 4) {
                t += "/apps/{appId}";
                allowed = {{"GET", R::app_by_id}};
            }
        } else if (is(2, "apiproducts")) {
            if (n == 3) {
                t += "/apiproducts";
                allowed = {{"GET", R::products_list}, {"POST", R::product_create}};
            } else if (n == 4) {
                t += "/apiproducts/{product}";
                allowed = {{"GET", R::product_get}};
            }
        } else if (is(2, "developers")) {
            t += "/developers";
            if (n == 3) {
                allowed = {{"GET", R::devs_list}, {"POST", R::dev_create}};
            } else if (n == 4) {
                t += "/{developer}";
                allowed = {{"GET", R::dev_get}, {"POST", R::dev_post}};
            } else if (is(4, "apps")) {
                t += "/{developer}/apps";
                if (n == 5) {
                    allowed = {{"GET", R::dev_apps_list}, {"POST", R::dev_app_create}};
                } else if (n == 6) {
                    t += "/{app}";
                    allowed = {{"GET", R::app_get},
                               {"POST", R::app_post},
                               {"PUT", R::app_put},
                               {"DELETE", R::app_delete}};
                } else if (is(6, "keys")) {
                    t += "/{app}/keys";
                    if (n == 7) {
                        allowed = {{"POST", R::key_create}};
                    } else if (n == 8 && s[7] == "create" && method == "POST") {
                        t += "/create";
                        allowed = {{"POST", R::key_create}};
                    } else if (n == 8) {
                        t += "/{key}";
                        allowed = {{"GET", R::key_get},
                                   {"POST", R::key_post},
                                   {"PUT", R::key_put},
                                   {"DELETE", R::key_delete}};
                    } else if (n == 10 && is(8, "apiproducts")) {
                        t += "/{key}/apiproducts/{product}";
                        allowed = {{"POST", R::key_product_post},
                                   {"DELETE", R::key_product_delete}};
                    }
                }
            }
        }
    }
    if (allowed.empty()) {
        m.templ = method + " (unmatched)";
        return m;
    }
    m.templ = method + " " + t + (has_action ? "?action" : "");
    for (const auto& [meth, id] : allowed) {
        if (!m.allow.empty()) m.allow += ", ";
        m.allow += meth;
        if (meth == method) m.id = id;
    }
    m.wrong_method = !m.id;
    return m;
}

}  // namespace

const std::vector<std::string>& readings::names() {
    static const std::vector<std::string> n = {"create-scopes",         "update-wipes-attributes",
                                               "developer-list-emails", "page-100",
                                               "put-generates",         "keystatus-whole-apps"};
    return n;
}

bool* readings::flag(const std::string& name) {
    return name == "create-scopes"             ? &create_scopes
           : name == "update-wipes-attributes" ? &update_wipes_attributes
           : name == "developer-list-emails"   ? &developer_list_emails
           : name == "page-100"                ? &page_100
           : name == "put-generates"           ? &put_generates
           : name == "keystatus-whole-apps"    ? &keystatus_whole_apps
                                               : nullptr;
}

bool readings::set(const std::string& name, bool on) {
    bool* f = flag(name);
    if (f == nullptr) return false;
    *f = on;
    return true;
}

bool readings::get(const std::string& name) const {
    const bool* f = const_cast<readings*>(this)->flag(name);
    return f != nullptr && *f;
}

void readings::all(bool on) {
    for (const auto& n : names()) set(n, on);
}

emulator::emulator(std::string token)
    : oauth_(std::make_unique<oauth>()), fault_rng_(0), id_rng_(std::random_device{}()) {
    oauth_->set_static_token(std::move(token));
}

emulator::~emulator() = default;

namespace {

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

millis emulator::now() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() +
           clock_offset_ms_;
}

namespace {

std::string random_string(std::mt19937_64& rng, std::size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<int> d(0, 61);
    std::string s(n, 'x');
    for (auto& c : s) c = alphabet[d(rng)];
    return s;
}

std::string uuid(std::mt19937_64& rng) {
    static const char* hexd = "0123456789abcdef";
    std::uniform_int_distribution<int> d(0, 15);
    std::string s = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
    for (auto& c : s) {
        if (c == 'x') c = hexd[d(rng)];
        if (c == 'y') c = hexd[8 + d(rng) % 4];
    }
    return s;
}

}  // namespace

// ---------------------------------------------------------------- seeds

organization& emulator::load_org(const json& o, millis base) {
    if (!o.is_object()) throw std::runtime_error("seed: an organization must be an object");
    auto org = std::make_unique<organization>();
    org->name = seed_str(o, "organization", seed_str(o, "name"));
    if (org->name.empty()) throw std::runtime_error("seed: organization needs a name");

    if (auto it = o.find("apiProducts"); it != o.end()) {
        for (const auto& p : *it) {
            api_product ap;
            ap.name = seed_str(p, "name");
            if (ap.name.empty()) throw std::runtime_error("seed: apiProduct needs a name");
            ap.display_name = seed_str(p, "displayName", ap.name);
            ap.approval_type = seed_str(p, "approvalType", "auto");
            if (ap.approval_type != "auto" && ap.approval_type != "manual")
                throw std::runtime_error("seed: approvalType must be auto or manual");
            ap.attributes = seed_attrs(p);
            ap.created_at = seed_time(p.value("createdAt", json()), base, base);
            ap.last_modified_at = seed_time(p.value("lastModifiedAt", json()), base, ap.created_at);
            org->products[ap.name] = std::move(ap);
        }
    }
    if (auto it = o.find("developers"); it != o.end()) {
        for (const auto& d : *it) {
            developer dev;
            dev.email = seed_str(d, "email");
            if (!valid_email(dev.email))
                throw std::runtime_error("seed: developer has an invalid email: " + dev.email);
            dev.developer_id = seed_str(d, "developerId", uuid(id_rng_));
            dev.first_name = seed_str(d, "firstName");
            dev.last_name = seed_str(d, "lastName");
            dev.user_name = seed_str(d, "userName");
            dev.status = seed_str(d, "status", "active");
            if (dev.status != "active" && dev.status != "inactive")
                throw std::runtime_error("seed: developer status must be active or inactive");
            dev.attributes = seed_attrs(d);
            dev.created_at = seed_time(d.value("createdAt", json()), base, base);
            dev.last_modified_at =
                seed_time(d.value("lastModifiedAt", json()), base, dev.created_at);
            auto k = lower(dev.email);
            org->developers[k] = std::move(dev);
        }
    }
    if (auto it = o.find("apps"); it != o.end()) {
        for (const auto& a : *it) {
            developer_app app;
            // A team (AppGroup) app has `appGroup` and no developer. Its key in
            // the app map starts with a byte no email holds.
            app.app_group = seed_str(a, "appGroup");
            auto email = app.app_group.empty() ? lower(seed_str(a, "developerEmail"))
                                               : k_team_prefix + app.app_group;
            if (app.app_group.empty() && !org->developers.count(email))
                throw std::runtime_error("seed: app's developerEmail is not a seeded developer: " +
                                         email);
            app.name = seed_str(a, "name");
            if (app.name.empty()) throw std::runtime_error("seed: app needs a name");
            app.app_id = seed_str(a, "appId", uuid(id_rng_));
            app.status = seed_str(a, "status", "approved");
            if (app.status != "approved" && app.status != "revoked")
                throw std::runtime_error("seed: app status must be approved or revoked");
            app.attributes = seed_attrs(a);
            app.callback_url = seed_str(a, "callbackUrl");
            if (auto s = a.find("scopes"); s != a.end())
                app.scopes = s->get<std::vector<std::string>>();
            app.app_family = seed_str(a, "appFamily");
            app.key_expires_in = seed_span(a.value("keyExpiresIn", json()));
            app.created_at = seed_time(a.value("createdAt", json()), base, base);
            app.last_modified_at =
                seed_time(a.value("lastModifiedAt", json()), base, app.created_at);
            app_key k{email, app.name};
            if (org->apps.count(k)) throw std::runtime_error("seed: duplicate app " + app.name);
            if (auto cs = a.find("credentials"); cs != a.end()) {
                for (const auto& c : *cs) {
                    credential cr;
                    cr.consumer_key = seed_str(c, "consumerKey", random_string(id_rng_, 48));
                    cr.consumer_secret = seed_str(c, "consumerSecret", random_string(id_rng_, 64));
                    if (!valid_key_chars(cr.consumer_key) || !valid_key_chars(cr.consumer_secret))
                        throw std::runtime_error("seed: app " + app.name +
                                                 ": bad consumer key or secret characters/size");
                    if (org->key_index.count(cr.consumer_key))
                        throw std::runtime_error("seed: duplicate consumer key in app " + app.name);
                    cr.status = seed_str(c, "status", "approved");
                    cr.issued_at = seed_time(c.value("issuedAt", json()), base, base);
                    cr.expires_at = seed_time(c.value("expiresAt", json()), base, -1);
                    cr.attributes = seed_attrs(c);
                    if (auto s = c.find("scopes"); s != c.end())
                        cr.scopes = s->get<std::vector<std::string>>();
                    if (auto ps = c.find("apiProducts"); ps != c.end()) {
                        for (const auto& p : *ps) {
                            key_product kp;
                            if (p.is_string()) {
                                kp.name = p.get<std::string>();
                                kp.status = "approved";
                            } else {
                                kp.name = seed_str(p, "apiproduct");
                                kp.status = seed_str(p, "status", "approved");
                            }
                            if (!org->products.count(kp.name))
                                throw std::runtime_error("seed: key in app " + app.name +
                                                         " names unknown product " + kp.name);
                            cr.products.push_back(std::move(kp));
                        }
                    }
                    org->key_index[cr.consumer_key] = k;
                    app.credentials.push_back(std::move(cr));
                }
            }
            org->app_id_index[app.app_id] = k;
            org->apps.emplace(std::move(k), std::move(app));
        }
    }
    auto& slot = orgs_[org->name];
    slot = std::move(org);
    return *slot;
}

void emulator::load_seed(const json& seed) {
    if (!seed.is_object()) throw std::runtime_error("seed: must be a JSON object");
    const millis base = now();
    try {
        if (auto it = seed.find("organizations"); it != seed.end()) {
            if (!it->is_array()) throw std::runtime_error("seed: organizations must be a list");
            for (const auto& o : *it) load_org(o, base);
        } else {
            load_org(seed, base);
        }
    } catch (const json::exception& e) {
        throw std::runtime_error(std::string("seed: wrong type: ") + e.what());
    }
}

json emulator::dump_state() const {
    json orgs = json::array();
    for (const auto& [name, org] : orgs_) {
        json o = {{"organization", name}};
        json devs = json::array(), prods = json::array(), apps = json::array();
        for (const auto& [_, p] : org->products) {
            prods.push_back({{"name", p.name},
                             {"displayName", p.display_name},
                             {"approvalType", p.approval_type},
                             {"attributes", attrs_json(p.attributes)},
                             {"createdAt", std::to_string(p.created_at)}});
        }
        for (const auto& [_, d] : org->developers) {
            devs.push_back({{"email", d.email},
                            {"developerId", d.developer_id},
                            {"firstName", d.first_name},
                            {"lastName", d.last_name},
                            {"userName", d.user_name},
                            {"status", d.status},
                            {"attributes", attrs_json(d.attributes)},
                            {"createdAt", std::to_string(d.created_at)},
                            {"lastModifiedAt", std::to_string(d.last_modified_at)}});
        }
        for (const auto& [k, a] : org->apps) {
            json creds = json::array();
            for (const auto& c : a.credentials) {
                json cj = credential_json(c);
                cj["attributes"] = attrs_json(c.attributes);
                cj["scopes"] = c.scopes;
                if (!cj.contains("apiProducts")) cj["apiProducts"] = json::array();
                creds.push_back(std::move(cj));
            }
            apps.push_back(
                {{"developerEmail",
                  a.app_group.empty() ? json(org->developers.at(k.first).email) : json(nullptr)},
                 {"appGroup", a.app_group.empty() ? json(nullptr) : json(a.app_group)},
                 {"name", a.name},
                 {"appId", a.app_id},
                 {"status", a.status},
                 {"attributes", attrs_json(a.attributes)},
                 {"callbackUrl", a.callback_url},
                 {"scopes", a.scopes},
                 {"appFamily", a.app_family},
                 {"keyExpiresIn", std::to_string(a.key_expires_in)},
                 {"createdAt", std::to_string(a.created_at)},
                 {"lastModifiedAt", std::to_string(a.last_modified_at)},
                 {"credentials", std::move(creds)}});
        }
        o["apiProducts"] = std::move(prods);
        o["developers"] = std::move(devs);
        o["apps"] = std::move(apps);
        orgs.push_back(std::move(o));
    }
    return {{"now", std::to_string(now())},
            {"clockOffsetMs", clock_offset_ms_},
            {"organizations", std::move(orgs)}};
}

// ---------------------------------------------------------------- availability

int emulator::usable_keys(const organization& org, const app_key& k) const {
    auto ai = org.apps.find(k);
    auto di = org.developers.find(k.first);
    if (ai == org.apps.end() || di == org.developers.end()) return 0;
    if (di->second.status != "active" || ai->second.status != "approved") return 0;
    const millis t = now();
    int n = 0;
    for (const auto& c : ai->second.credentials) {
        if (c.status != "approved") continue;
        if (c.expires_at != -1 && c.expires_at <= t) continue;
        if (std::any_of(c.products.begin(), c.products.end(),
                        [](const key_product& p) { return p.status == "approved"; }))
            ++n;
    }
    return n;
}

void emulator::record_availability(const std::string& org, const app_key& k, int before,
                                   const std::string& route, const std::string& key) {
    auto oi = orgs_.find(org);
    if (oi == orgs_.end() || !oi->second->apps.count(k)) return;
    int after = usable_keys(*oi->second, k);
    availability_record r{
        now(), org, oi->second->developers.at(k.first).email, k.second, before, after, route, key};
    if (before >= 1 && after == 0) ever_lost_last_.push_back(r);
    availability_.push_back(std::move(r));
    if (availability_.size() > k_max_availability) {
        availability_.pop_front();
        ++availability_dropped_;
    }
}

// ---------------------------------------------------------------- dispatch

response emulator::handle(const request& req) {
    try {
        std::string path = req.target, query;
        if (auto q = path.find('?'); q != std::string::npos) {
            query = path.substr(q + 1);
            path.resize(q);
        }
        if (path.rfind("/__emulator", 0) == 0) return handle_hook(req, path, query);
        // Google's OAuth token endpoint and the GCE metadata server share the
        // port; their tokens expire on the real clock (oauth.hpp).
        if (path == "/token") return oauth_->token_endpoint(req, wall_ms());
        if (path == "/computeMetadata/v1/instance/service-accounts/default/token")
            return oauth_->metadata_token(req, wall_ms());

        // Split and decode the path; parse the query.
        std::vector<std::string> seg;
        std::size_t pos = 1;
        if (path.empty() || path[0] != '/') fail(404, "unknown path");
        while (pos <= path.size()) {
            auto next = path.find('/', pos);
            if (next == std::string::npos) next = path.size();
            auto d = url_decode(std::string_view(path).substr(pos, next - pos), false);
            if (!d) fail(400, "bad percent-encoding in the path");
            seg.push_back(std::move(*d));
            pos = next + 1;
        }
        if (!seg.empty() && seg.back().empty()) seg.pop_back();  // trailing slash
        std::multimap<std::string, std::string> qs;
        std::size_t qp = 0;
        while (qp < query.size()) {
            auto amp = query.find('&', qp);
            if (amp == std::string::npos) amp = query.size();
            auto kv = std::string_view(query).substr(qp, amp - qp);
            auto eq = kv.find('=');
            auto k = url_decode(kv.substr(0, eq), true);
            auto v = eq == std::string_view::npos ? std::optional<std::string>("")
                                                  : url_decode(kv.substr(eq + 1), true);
            if (!k || !v) fail(400, "bad percent-encoding in the query");
            if (!k->empty()) qs.emplace(std::move(*k), std::move(*v));
            qp = amp + 1;
        }
        if (seg.empty() || seg[0] != "v1") fail(404, "unknown path");
        seg.erase(seg.begin());

        using namespace std::chrono;
        auto sec = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
        ++rate_[sec];
        while (!rate_.empty() && rate_.begin()->first < sec - k_rate_window_s)
            rate_.erase(rate_.begin());

        std::string route;
        return handle_api(req, seg, qs, route);
    } catch (const api_error& e) {
        return error_response(e.code, e.status, e.message);
    } catch (const json::exception&) {
        return error_response(400, "INVALID_ARGUMENT", "invalid request body");
    } catch (const std::exception&) {
        return error_response(500, "INTERNAL", "internal error");
    }
}

response emulator::handle_api(const request& req, const std::vector<std::string>& seg,
                              const std::multimap<std::string, std::string>& qs,
                              std::string& route) {
    auto q = [&](const char* name) -> std::optional<std::string> {
        auto it = qs.find(name);
        if (it == qs.end()) return std::nullopt;
        return it->second;
    };
    auto q_bool = [&](const char* name) {
        auto v = q(name);
        return v && (*v == "true" || *v == "1" || v->empty());
    };
    const auto action = q("action");
    auto m = match_route(req.method, seg, action.has_value());
    route = m.templ;
    ++counters_[m.templ];

    if (oauth_->required() && !oauth_->accepts(req.authorization, wall_ms()))
        fail(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.");
    if (!m.id && !m.wrong_method) fail(404, "unknown path");

    response early;
    early.delay_ms = faults_.latency_ms;
    {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        double r429 = u(fault_rng_), r503 = u(fault_rng_);
        if (faults_.p429 > 0 && r429 < faults_.p429) {
            auto r = error_response(429, "RESOURCE_EXHAUSTED", "Quota exceeded (emulated)");
            r.headers.emplace_back("Retry-After", std::to_string(faults_.retry_after_seconds));
            r.delay_ms = faults_.latency_ms;
            return r;
        }
        if (faults_.p503 > 0 && r503 < faults_.p503) {
            auto r = error_response(503, "UNAVAILABLE", "The service is unavailable (emulated)");
            r.headers.emplace_back("Retry-After", std::to_string(faults_.retry_after_seconds));
            r.delay_ms = faults_.latency_ms;
            return r;
        }
    }
    if (m.wrong_method) {
        auto r = error_response(405, "METHOD_NOT_ALLOWED",
                                "method " + req.method + " is not allowed on this path");
        r.headers.emplace_back("Allow", m.allow);
        r.delay_ms = faults_.latency_ms;
        return r;
    }

    auto oi = orgs_.find(seg[1]);
    if (oi == orgs_.end()) fail(404, "organization " + seg[1] + " not found");
    organization& org = *oi->second;
    const millis t = now();

    // Body: JSON object for writes that carry one (octet-stream actions carry none).
    json body = json::object();
    const bool is_write = req.method != "GET";
    const bool wants_body = is_write && req.method != "DELETE" && !action.has_value();
    if (wants_body && !req.body.empty()) {
        body = json::parse(req.body, nullptr, false);
        if (body.is_discarded()) fail(400, "Invalid JSON payload received.");
        if (!body.is_object()) fail(400, "Invalid JSON payload received: expected an object.");
    }

    auto find_dev = [&](const std::string& email) -> developer& {
        auto it = org.developers.find(lower(email));
        if (it == org.developers.end()) fail(404, "developer " + email + " not found");
        return it->second;
    };
    auto find_app = [&](const std::string& email, const std::string& name) -> developer_app& {
        find_dev(email);
        auto it = org.apps.find({lower(email), name});
        if (it == org.apps.end()) fail(404, "app " + name + " not found for developer " + email);
        return it->second;
    };
    auto find_key = [&](developer_app& app, const std::string& k) -> credential& {
        for (auto& c : app.credentials)
            if (c.consumer_key == k) return c;
        fail(404, "consumer key not found in app " + app.name);
    };
    auto product_status = [&](const std::string& name) -> std::string {
        auto it = org.products.find(name);
        if (it == org.products.end()) fail(400, "API product " + name + " does not exist");
        return it->second.approval_type == "manual" ? "pending" : "approved";
    };
    auto product_names = [&](const json& j) {
        std::vector<std::string> out;
        if (!j.is_array()) fail(400, "apiProducts must be a list of product names");
        for (const auto& p : j) {
            std::string n;
            if (p.is_string())
                n = p.get<std::string>();
            else if (p.is_object() && p.contains("apiproduct") && p["apiproduct"].is_string())
                n = p["apiproduct"].get<std::string>();
            else
                fail(400, "apiProducts must be a list of product names");
            product_status(n);  // 400 when unknown
            if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
        }
        if (out.size() > k_max_products_per_key) fail(400, "at most 50 API products per key");
        return out;
    };
    auto new_credential = [&](const std::vector<std::string>& products, millis expires_in_ms,
                              const std::vector<std::string>& scopes) {
        credential c;
        do {
            c.consumer_key = random_string(id_rng_, 48);
        } while (org.key_index.count(c.consumer_key));
        c.consumer_secret = random_string(id_rng_, 64);
        c.issued_at = t;
        c.expires_at = expires_in_ms > 0 ? t + expires_in_ms : -1;
        c.scopes = scopes;
        for (const auto& p : products) c.products.push_back({p, product_status(p)});
        return c;
    };
    auto developer_json = [&](const developer& d) {
        json j = {{"email", d.email},
                  {"developerId", d.developer_id},
                  {"organizationName", org.name},
                  {"status", d.status},
                  {"createdAt", std::to_string(d.created_at)},
                  {"lastModifiedAt", std::to_string(d.last_modified_at)}};
        put_str(j, "firstName", d.first_name);
        put_str(j, "lastName", d.last_name);
        put_str(j, "userName", d.user_name);
        put_attrs(j, d.attributes);
        std::vector<std::string> apps;
        auto lo = lower(d.email);
        for (auto it = org.apps.lower_bound({lo, ""});
             it != org.apps.end() && it->first.first == lo; ++it)
            apps.push_back(it->first.second);
        put_list(j, "apps", apps);
        return j;
    };
    auto app_json = [&](const app_key& k, const developer_app& a, bool creds,
                        const std::string* key_status, bool with_email) {
        json j = {{"appId", a.app_id},
                  {"name", a.name},
                  {"status", a.status},
                  {"createdAt", std::to_string(a.created_at)},
                  {"lastModifiedAt", std::to_string(a.last_modified_at)}};
        if (!a.app_group.empty()) {
            j["appGroup"] = a.app_group;  // a team app: no developer fields at all
        } else {
            const developer& d = org.developers.at(k.first);
            j["developerId"] = d.developer_id;
            if (with_email) j["developerEmail"] = d.email;
        }
        put_attrs(j, a.attributes);
        put_str(j, "callbackUrl", a.callback_url);
        put_list(j, "scopes", a.scopes);
        put_str(j, "appFamily", a.app_family);
        if (a.key_expires_in != -1) j["keyExpiresIn"] = std::to_string(a.key_expires_in);
        if (creds) {
            json cs = json::array();
            for (const auto& c : a.credentials)
                if (!key_status || *key_status == "all" || c.status == *key_status)
                    cs.push_back(credential_json(c));
            if (!cs.empty()) j["credentials"] = std::move(cs);
        }
        return j;
    };
    auto parse_action = [&]() {
        if (*action != "approve" && *action != "revoke")
            fail(400, "action must be approve or revoke");
        return *action == "approve" ? std::string("approved") : std::string("revoked");
    };
    auto check_attr_count = [&](const json& b) -> std::optional<std::vector<attribute>> {
        const json* a = field(b, "attributes");
        if (!a) return std::nullopt;
        return parse_attributes(*a, "");
    };

    // Availability bookkeeping for writes that name an app.
    std::optional<app_key> written;
    int usable_before = 0;
    if (is_write && seg.size() >= 6 && seg[4] == "apps") {
        written = app_key{lower(seg[3]), seg[5]};
        usable_before = usable_keys(org, *written);
    }
    std::string record_route = route;
    if (action) record_route = req.method + " " + m.templ.substr(m.templ.find(' ') + 1);
    // Which key a write names (its fingerprint): tests tell keys apart in the history.
    std::string record_key;
    if (written && m.templ.find("{key}") != std::string::npos && seg.size() > 7)
        record_key = keyrot::fingerprint(seg[7]);
    else if (written && seg.size() >= 7 && seg[6] == "keys" && body.is_object() &&
             body.contains("consumerKey") && body["consumerKey"].is_string())
        record_key = keyrot::fingerprint(body["consumerKey"].get<std::string>());

    // Which keys of the written app carry keyrotd's lineage marker now: a write
    // that removes one is recorded (docs/emulator.md, invariants).
    std::vector<std::string> marked_before;
    if (written) {
        if (auto ai = org.apps.find(*written); ai != org.apps.end())
            for (const auto& c : ai->second.credentials)
                if (has_marker(c)) marked_before.push_back(c.consumer_key);
    }

    response res;
    millis list_delay_ms = 0;
    using R = route_id;
    switch (*m.id) {
        case R::org_get: {
            res = json_response({{"name", org.name},
                                 {"displayName", org.name},
                                 {"runtimeType", "CLOUD"},
                                 {"state", "ACTIVE"}});
            break;
        }
        case R::apps_list: {
            const bool expand = q_bool("expand");
            const bool include_cred = expand || q_bool("includeCred");
            std::string status = q("status").value_or("approved");
            std::string key_status = q("keyStatus").value_or("approved");
            for (const auto& s : {status, key_status})
                if (s != "approved" && s != "revoked" && s != "all")
                    fail(400, "status and keyStatus must be approved, revoked or all");
            std::int64_t page_size = 1000;
            if (auto ps = q("pageSize")) {
                auto v = parse_int(*ps);
                if (!v) fail(400, "pageSize must be an integer");
                if (*v > 0) page_size = std::min<std::int64_t>(*v, 1000);
            }
            if (readings_.page_100) page_size = std::min<std::int64_t>(page_size, 100);
            auto start = org.apps.begin();
            if (auto tok = q("pageToken"); tok && !tok->empty()) {
                auto raw = from_hex(*tok);
                auto sep = raw ? raw->find('\x1f') : std::string::npos;
                if (sep == std::string::npos) fail(400, "invalid pageToken");
                start = org.apps.upper_bound({raw->substr(0, sep), raw->substr(sep + 1)});
            }
            // keystatus-whole-apps: keyStatus selects the apps that have a key
            // of that status, and such an app comes with all of its keys.
            const bool whole = readings_.keystatus_whole_apps && key_status != "all";
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
                    list.push_back(app_json(it->first, it->second, true, shown, true));
                } else {
                    json j = {{"appId", it->second.app_id}};
                    if (include_cred) {
                        json full = app_json(it->first, it->second, true, shown, true);
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
            res = hostile_response(std::move(out), true);
            list_delay_ms = listed * list_latency_per_app_us_ / 1000;
            break;
        }
        case R::app_by_id: {
            auto it = org.app_id_index.find(seg[3]);
            if (it == org.app_id_index.end()) fail(404, "app " + seg[3] + " not found");
            const auto& a = org.apps.at(it->second);
            res = hostile_response(app_json(it->second, a, true, nullptr, true), false);
            break;
        }
        case R::devs_list: {
            const bool expand = q_bool("expand");
            std::int64_t count = 1000;
            if (auto c = q("count")) {
                auto v = parse_int(*c);
                if (!v || *v < 0) fail(400, "count must be a non-negative integer");
                if (*v > 0) count = *v;
            }
            auto it = org.developers.begin();
            if (auto sk = q("startKey"); sk && !sk->empty())
                it = org.developers.lower_bound(lower(*sk));
            json list = json::array();
            // developer-list-emails: "expand is not valid with count or startKey".
            const bool paged = q("count").has_value() || q("startKey").has_value();
            const bool expanded = expand && !(readings_.developer_list_emails && paged);
            for (; it != org.developers.end() && static_cast<std::int64_t>(list.size()) < count;
                 ++it) {
                if (expanded)
                    list.push_back(developer_json(it->second));
                else
                    list.push_back(
                        {{"email", it->second.email}, {"developerId", it->second.developer_id}});
            }
            res = json_response({{"developer", std::move(list)}});
            break;
        }
        case R::dev_create: {
            developer d;
            d.email = string_field(body, "email");
            if (!valid_email(d.email)) fail(400, "invalid developer email");
            if (org.developers.count(lower(d.email)))
                fail(409, "developer " + d.email + " already exists");
            d.first_name = string_field(body, "firstName");
            d.last_name = string_field(body, "lastName");
            d.user_name = string_field(body, "userName");
            if (auto a = check_attr_count(body)) d.attributes = std::move(*a);
            d.developer_id = uuid(id_rng_);
            d.created_at = d.last_modified_at = t;
            auto& stored = org.developers[lower(d.email)] = std::move(d);
            res = json_response(developer_json(stored));
            break;
        }
        case R::dev_get: {
            res = json_response(developer_json(find_dev(seg[3])));
            break;
        }
        case R::dev_post: {
            developer& d = find_dev(seg[3]);
            if (action) {
                if (*action != "active" && *action != "inactive")
                    fail(400, "action must be active or inactive");
                auto lo = lower(d.email);
                std::vector<std::pair<app_key, int>> before;
                for (auto it = org.apps.lower_bound({lo, ""});
                     it != org.apps.end() && it->first.first == lo; ++it)
                    before.emplace_back(it->first, usable_keys(org, it->first));
                d.status = *action;
                d.last_modified_at = t;
                for (const auto& [k, n] : before) record_availability(org.name, k, n, record_route);
                res = no_content();
            } else {
                // Update developer: replaces the fields given, attributes replaced.
                if (body.contains("firstName")) d.first_name = string_field(body, "firstName");
                if (body.contains("lastName")) d.last_name = string_field(body, "lastName");
                if (body.contains("userName")) d.user_name = string_field(body, "userName");
                if (auto a = check_attr_count(body)) d.attributes = std::move(*a);
                d.last_modified_at = t;
                res = json_response(developer_json(d));
            }
            break;
        }
        case R::dev_apps_list: {
            find_dev(seg[3]);
            const bool expand = q_bool("expand");
            auto lo = lower(seg[3]);
            json list = json::array();
            for (auto it = org.apps.lower_bound({lo, ""});
                 it != org.apps.end() && it->first.first == lo; ++it) {
                if (expand)
                    list.push_back(app_json(it->first, it->second, true, nullptr, false));
                else
                    list.push_back({{"appId", it->second.app_id}, {"name", it->second.name}});
            }
            res = json_response({{"app", std::move(list)}});
            break;
        }
        case R::dev_app_create: {
            find_dev(seg[3]);
            developer_app a;
            a.name = string_field(body, "name");
            if (a.name.empty()) fail(400, "app name is required");
            if (a.name.find('/') != std::string::npos || a.name.size() > 1024)
                fail(400, "invalid app name");
            app_key k{lower(seg[3]), a.name};
            if (org.apps.count(k)) fail(409, "app " + a.name + " already exists");
            std::vector<std::string> products;
            if (const json* p = field(body, "apiProducts")) products = product_names(*p);
            if (auto at = check_attr_count(body)) a.attributes = std::move(*at);
            a.callback_url = string_field(body, "callbackUrl");
            if (const json* s = field(body, "scopes")) a.scopes = parse_string_list(*s, "scopes");
            a.app_family = string_field(body, "appFamily");
            if (const json* e = field(body, "keyExpiresIn")) {
                auto v = json_int64(*e);
                if (!v) fail(400, "keyExpiresIn must be an int64");
                a.key_expires_in = *v;
            }
            a.app_id = uuid(id_rng_);
            a.created_at = a.last_modified_at = t;
            a.credentials.push_back(new_credential(products, a.key_expires_in, a.scopes));
            org.key_index[a.credentials.back().consumer_key] = k;
            org.app_id_index[a.app_id] = k;
            auto [it, _] = org.apps.emplace(k, std::move(a));
            res = json_response(app_json(k, it->second, true, nullptr, false));
            break;
        }
        case R::app_get: {
            auto& a = find_app(seg[3], seg[5]);
            res =
                hostile_response(app_json({lower(seg[3]), seg[5]}, a, true, nullptr, false), false);
            break;
        }
        case R::app_post: {
            auto& a = find_app(seg[3], seg[5]);
            app_key k{lower(seg[3]), seg[5]};
            if (action) {
                a.status = parse_action();
                a.last_modified_at = t;
                res = no_content();
                break;
            }
            // Generate a key pair. The trap: attributes and callbackUrl are
            // replaced by the body's, and what the body leaves out is deleted.
            std::vector<std::string> products;
            if (const json* p = field(body, "apiProducts")) products = product_names(*p);
            std::vector<attribute> attrs;
            if (auto at = check_attr_count(body)) attrs = std::move(*at);
            std::vector<std::string> scopes;
            if (const json* s = field(body, "scopes")) scopes = parse_string_list(*s, "scopes");
            millis expires_in = -1;
            if (const json* e = field(body, "keyExpiresIn")) {
                auto v = json_int64(*e);
                if (!v) fail(400, "keyExpiresIn must be an int64");
                expires_in = *v;
            }
            std::string callback = string_field(body, "callbackUrl");
            if (const json* f = field(body, "appFamily")) {
                if (!f->is_string()) fail(400, "appFamily must be a string");
                a.app_family = f->get<std::string>();
            }
            auto cred = new_credential(products, expires_in, scopes);
            if (faults_.generate_wipes_app) {
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
            res = json_response(app_json(k, a, true, nullptr, false));
            break;
        }
        case R::app_put: {
            // Update developer app: attributes, callbackUrl, appFamily and
            // keyExpiresIn are replaced; name, scopes, status and credentials are not.
            auto& a = find_app(seg[3], seg[5]);
            app_key k{lower(seg[3]), seg[5]};
            std::vector<attribute> attrs;
            if (auto at = check_attr_count(body)) attrs = std::move(*at);
            std::string callback = string_field(body, "callbackUrl");
            std::string family = string_field(body, "appFamily");
            if (const json* e = field(body, "keyExpiresIn")) {
                auto v = json_int64(*e);
                if (!v) fail(400, "keyExpiresIn must be an int64");
                a.key_expires_in = *v;
            }
            a.attributes = std::move(attrs);
            a.callback_url = std::move(callback);
            a.app_family = std::move(family);
            a.last_modified_at = t;
            // put-generates: on Apigee X, naming API products in an app update
            // "automatically generates an API key" for them.
            if (const json* p = field(body, "apiProducts");
                p != nullptr && readings_.put_generates) {
                auto cred = new_credential(product_names(*p), a.key_expires_in, a.scopes);
                org.key_index[cred.consumer_key] = k;
                a.credentials.push_back(std::move(cred));
            }
            res = json_response(app_json(k, a, true, nullptr, false));
            break;
        }
        case R::app_delete: {
            auto& a = find_app(seg[3], seg[5]);
            app_key k{lower(seg[3]), seg[5]};
            json out = app_json(k, a, true, nullptr, false);
            for (const auto& c : a.credentials) org.key_index.erase(c.consumer_key);
            org.app_id_index.erase(a.app_id);
            org.apps.erase(k);
            res = json_response(out);
            break;
        }
        case R::key_create: {
            auto& a = find_app(seg[3], seg[5]);
            app_key k{lower(seg[3]), seg[5]};
            credential c;
            c.consumer_key = string_field(body, "consumerKey");
            if (c.consumer_key.empty()) fail(400, "consumerKey is required");
            c.consumer_secret = string_field(body, "consumerSecret");
            if (c.consumer_secret.empty()) c.consumer_secret = random_string(id_rng_, 64);
            if (!valid_key_chars(c.consumer_key) || !valid_key_chars(c.consumer_secret))
                fail(400,
                     "consumer key and secret may hold only letters, digits, '_' and '-', at most "
                     "2 KB each");
            if (auto at = check_attr_count(body)) c.attributes = std::move(*at);
            if (const json* s = field(body, "scopes")) c.scopes = parse_string_list(*s, "scopes");
            if (readings_.create_scopes && !c.scopes.empty())
                fail(400,
                     "scopes must already be defined for an API product associated with the key; "
                     "the new key has none");
            millis expires_s = -1;
            if (const json* e = field(body, "expiresInSeconds")) {
                auto v = json_int64(*e);
                if (!v) fail(400, "expiresInSeconds must be an int64");
                expires_s = *v;
            }
            if (org.key_index.count(c.consumer_key))
                fail(409, "the consumer key already exists in this organization");
            c.issued_at = t;
            c.expires_at = expires_s > 0 ? t + expires_s * 1000 : -1;
            org.key_index[c.consumer_key] = k;
            a.credentials.push_back(std::move(c));
            a.last_modified_at = t;
            res = json_response(credential_json(a.credentials.back()));
            break;
        }
        case R::key_get: {
            auto& a = find_app(seg[3], seg[5]);
            res = json_response(credential_json(find_key(a, seg[7])));
            break;
        }
        case R::key_post: {
            auto& a = find_app(seg[3], seg[5]);
            auto& c = find_key(a, seg[7]);
            if (action) {
                c.status = parse_action();
                res = no_content();
                break;
            }
            std::vector<std::string> add;
            if (const json* p = field(body, "apiProducts")) add = product_names(*p);
            std::optional<std::vector<attribute>> attrs = check_attr_count(body);
            std::size_t total = c.products.size();
            for (const auto& p : add)
                if (std::none_of(c.products.begin(), c.products.end(),
                                 [&](const key_product& kp) { return kp.name == p; }))
                    ++total;
            if (total > k_max_products_per_key) fail(400, "at most 50 API products per key");
            for (const auto& p : add)
                if (std::none_of(c.products.begin(), c.products.end(),
                                 [&](const key_product& kp) { return kp.name == p; }))
                    c.products.push_back({p, product_status(p)});
            if (attrs)
                c.attributes = std::move(*attrs);
            else if (readings_.update_wipes_attributes)
                c.attributes.clear();  // "replaces the existing attributes with those specified"
            if (const json* s = field(body, "scopes")) c.scopes = parse_string_list(*s, "scopes");
            res = json_response(credential_json(c));
            break;
        }
        case R::key_put: {
            auto& a = find_app(seg[3], seg[5]);
            auto& c = find_key(a, seg[7]);
            std::vector<std::string> scopes;
            if (const json* s = field(body, "scopes")) scopes = parse_string_list(*s, "scopes");
            c.scopes = std::move(scopes);
            // Strict: a replace is a replace of the key as sent, attributes included.
            if (readings_.update_wipes_attributes) {
                auto attrs = check_attr_count(body);
                c.attributes = attrs ? std::move(*attrs) : std::vector<attribute>{};
            }
            res = json_response(credential_json(c));
            break;
        }
        case R::key_delete: {
            auto& a = find_app(seg[3], seg[5]);
            auto& c = find_key(a, seg[7]);
            json out = credential_json(c);
            org.key_index.erase(c.consumer_key);
            a.credentials.erase(a.credentials.begin() + (&c - a.credentials.data()));
            res = json_response(out);
            break;
        }
        case R::key_product_post:
        case R::key_product_delete: {
            auto& a = find_app(seg[3], seg[5]);
            auto& c = find_key(a, seg[7]);
            auto it = std::find_if(c.products.begin(), c.products.end(),
                                   [&](const key_product& kp) { return kp.name == seg[9]; });
            if (it == c.products.end()) fail(404, "API product " + seg[9] + " is not on this key");
            if (*m.id == R::key_product_post) {
                if (!action) fail(400, "action=approve|revoke is required");
                it->status = parse_action();
                res = no_content();
            } else {
                c.products.erase(it);
                res = json_response(credential_json(c));
            }
            break;
        }
        case R::products_list: {
            const bool expand = q_bool("expand");
            json list = json::array();
            for (const auto& [_, p] : org.products) {
                if (!expand) {
                    list.push_back({{"name", p.name}});
                    continue;
                }
                json j = {{"name", p.name},
                          {"displayName", p.display_name},
                          {"approvalType", p.approval_type},
                          {"createdAt", std::to_string(p.created_at)},
                          {"lastModifiedAt", std::to_string(p.last_modified_at)}};
                put_attrs(j, p.attributes);
                list.push_back(std::move(j));
            }
            res = json_response({{"apiProduct", std::move(list)}});
            break;
        }
        case R::product_create: {
            api_product p;
            p.name = string_field(body, "name");
            if (p.name.empty() || p.name.find('/') != std::string::npos)
                fail(400, "product name is required");
            if (org.products.count(p.name)) fail(409, "API product " + p.name + " already exists");
            p.display_name = string_field(body, "displayName", p.name);
            p.approval_type = string_field(body, "approvalType", "auto");
            if (p.approval_type != "auto" && p.approval_type != "manual")
                fail(400, "approvalType must be auto or manual");
            if (auto at = check_attr_count(body)) p.attributes = std::move(*at);
            p.created_at = p.last_modified_at = t;
            auto& s = org.products[p.name] = std::move(p);
            json j = {{"name", s.name},
                      {"displayName", s.display_name},
                      {"approvalType", s.approval_type},
                      {"createdAt", std::to_string(s.created_at)},
                      {"lastModifiedAt", std::to_string(s.last_modified_at)}};
            put_attrs(j, s.attributes);
            res = json_response(j);
            break;
        }
        case R::product_get: {
            auto it = org.products.find(seg[3]);
            if (it == org.products.end()) fail(404, "API product " + seg[3] + " not found");
            const auto& p = it->second;
            json j = {{"name", p.name},
                      {"displayName", p.display_name},
                      {"approvalType", p.approval_type},
                      {"createdAt", std::to_string(p.created_at)},
                      {"lastModifiedAt", std::to_string(p.last_modified_at)}};
            put_attrs(j, p.attributes);
            res = json_response(j);
            break;
        }
    }

    if (written && res.status / 100 == 2 && *m.id != R::dev_post)
        record_availability(org.name, *written, usable_before, record_route, record_key);
    if (written && !marked_before.empty()) {
        if (auto ai = org.apps.find(*written); ai != org.apps.end()) {
            for (const auto& c : ai->second.credentials) {
                if (has_marker(c) || std::find(marked_before.begin(), marked_before.end(),
                                               c.consumer_key) == marked_before.end())
                    continue;
                markers_lost_.push_back({t, org.name, ai->second.name,
                                         keyrot::fingerprint(c.consumer_key), record_route});
            }
        }
    }
    res.delay_ms = faults_.latency_ms + list_delay_ms + (is_write ? faults_.write_latency_ms : 0);
    if (is_write) {
        const millis start = wall_ms();
        writes_.push_back({start, start + res.delay_ms, req.user_agent, record_route});
        if (writes_.size() > k_max_availability) writes_.pop_front();
    }
    if (is_write && res.status / 100 == 2 && faults_.p_drop_after_write > 0) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        if (u(fault_rng_) < faults_.p_drop_after_write) res.drop = true;
    }
    return res;
}

// ---------------------------------------------------------------- hostile mode

// Corrupts what the emulator says about one app (faults_.hostile_app) in the
// org app list and in GET of that app; `page-loop` makes every list page's
// nextPageToken point back at the first page. Huge arrays and duplicate
// members are spliced in as raw text in place of marker strings, so the body
// is built without a json tree of 200,000 nodes (about 10 MB of text).
response emulator::hostile_response(json j, bool list) const {
    const std::string& mode = faults_.hostile_mode;
    if (mode.empty()) return json_response(j);
    if (mode == "page-loop") {
        // upper_bound of ("", "") is the first app: the token names page one.
        if (list) j["nextPageToken"] = to_hex("\x1f");
        return json_response(j);
    }
    if (mode == "page-cap") {
        // A server that stops after one page: no nextPageToken, totalSize intact.
        if (list) j.erase("nextPageToken");
        return json_response(j);
    }
    std::vector<std::pair<std::string, std::string>> splices;  // "marker" -> raw text
    auto corrupt = [&](json& a) {
        if (!a.is_object() || !a.contains("name") || a["name"] != faults_.hostile_app) return;
        json* creds =
            a.contains("credentials") && a["credentials"].is_array() && !a["credentials"].empty()
                ? &a["credentials"]
                : nullptr;
        if (mode == "wrong-types") {
            a["attributes"] = "not-a-list";
            if (creds) {
                (*creds)[0]["expiresAt"] = {{"seconds", 1}};
                (*creds)[0]["apiProducts"] = 42;
            }
        } else if (mode == "missing-fields") {
            if (creds)
                for (auto& c : *creds) {
                    c.erase("consumerKey");
                    c.erase("status");
                }
        } else if (mode == "huge-array") {
            std::string cs = creds ? creds->dump(-1, ' ', false, json::error_handler_t::replace)
                                   : std::string("[]");
            cs.pop_back();  // the closing ']'
            cs.reserve(cs.size() + 200000 * 32);
            for (int i = 0; i < 200000; ++i) {
                if (cs.size() > 1) cs += ',';
                cs += "{\"consumerKey\":\"junk-" + std::to_string(i) + "\"}";
            }
            cs += ']';
            std::string as = "[";
            as.reserve(100000 * 40);
            for (int i = 0; i < 100000; ++i) {
                if (i) as += ',';
                as += "{\"name\":\"junk-" + std::to_string(i) + "\",\"value\":\"x\"}";
            }
            as += ']';
            const auto n = std::to_string(splices.size());
            a["credentials"] = "@@hostile-credentials-" + n + "@@";
            a["attributes"] = "@@hostile-attributes-" + n + "@@";
            splices.emplace_back("\"@@hostile-credentials-" + n + "@@\"", std::move(cs));
            splices.emplace_back("\"@@hostile-attributes-" + n + "@@\"", std::move(as));
        } else if (mode == "duplicate-keys") {
            if (creds) creds->push_back((*creds)[0]);
            // "name":"X","name":"X" in place of "name":"X".
            const auto n = std::to_string(splices.size());
            std::string name = a["name"].dump(-1, ' ', false, json::error_handler_t::replace);
            a["name"] = "@@hostile-name-" + n + "@@";
            splices.emplace_back("\"@@hostile-name-" + n + "@@\"", name + ",\"name\":" + name);
        }
    };
    if (list) {
        if (j.contains("app") && j["app"].is_array())
            for (auto& a : j["app"]) corrupt(a);
    } else {
        corrupt(j);
    }
    response r = json_response(j);
    for (const auto& [marker, raw] : splices) {
        auto at = r.body.find(marker);
        if (at != std::string::npos) r.body.replace(at, marker.size(), raw);
    }
    return r;
}

// ---------------------------------------------------------------- hooks

response emulator::handle_hook(const request& req, const std::string& path,
                               const std::string& query) {
    auto body_json = [&]() {
        if (req.body.empty()) return json::object();
        json j = json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) fail(400, "Invalid JSON payload received.");
        return j;
    };
    const auto& meth = req.method;
    auto only = [&](const char* allowed) {
        if (meth != allowed) fail(405, "method " + meth + " is not allowed on " + path);
    };
    if (path == "/__emulator/state") {
        only("GET");
        return json_response(dump_state());
    }
    if (path == "/__emulator/seed") {
        only("POST");
        json j = body_json();
        try {
            load_seed(j);
        } catch (const std::runtime_error& e) {
            fail(400, e.what());
        }
        return json_response({{"organizations", [&] {
                                   json names = json::array();
                                   for (const auto& [n, _] : orgs_) names.push_back(n);
                                   return names;
                               }()}});
    }
    auto faults_json = [&] {
        return json{{"latencyMs", faults_.latency_ms},
                    {"writeLatencyMs", faults_.write_latency_ms},
                    {"p503", faults_.p503},
                    {"p429", faults_.p429},
                    {"retryAfterSeconds", faults_.retry_after_seconds},
                    {"pDropAfterWrite", faults_.p_drop_after_write},
                    {"seed", faults_.seed},
                    {"metadataDown", oauth_->metadata_down},
                    {"generateWipesApp", faults_.generate_wipes_app},
                    {"hostile", faults_.hostile_mode.empty() ? json(nullptr)
                                                             : json{{"mode", faults_.hostile_mode},
                                                                    {"app", faults_.hostile_app}}}};
    };
    if (path == "/__emulator/faults") {
        if (meth == "GET") return json_response(faults_json());
        only("POST");
        json j = body_json();
        auto num = [&](const char* name, double lo, double hi) -> std::optional<double> {
            auto it = j.find(name);
            if (it == j.end() || it->is_null()) return std::nullopt;
            double v = 0;
            if (it->is_number())
                v = it->get<double>();
            else if (auto i = json_int64(*it))
                v = static_cast<double>(*i);
            else
                fail(400, std::string(name) + " must be a number");
            if (v < lo || v > hi) fail(400, std::string(name) + " is out of range");
            return v;
        };
        faults f = faults_;
        if (auto v = num("latencyMs", 0, 600000)) f.latency_ms = static_cast<millis>(*v);
        if (auto v = num("writeLatencyMs", 0, 600000)) f.write_latency_ms = static_cast<millis>(*v);
        if (auto v = num("p503", 0, 1)) f.p503 = *v;
        if (auto v = num("p429", 0, 1)) f.p429 = *v;
        if (auto v = num("retryAfterSeconds", 0, 86400))
            f.retry_after_seconds = static_cast<int>(*v);
        if (auto v = num("pDropAfterWrite", 0, 1)) f.p_drop_after_write = *v;
        if (auto v = num("seed", 0, 1e18)) {
            f.seed = static_cast<std::uint64_t>(*v);
            fault_rng_.seed(f.seed);
        }
        if (auto it = j.find("generateWipesApp"); it != j.end() && !it->is_null()) {
            if (!it->is_boolean()) fail(400, "generateWipesApp must be a boolean");
            f.generate_wipes_app = it->get<bool>();
        }
        std::optional<bool> metadata_down;
        if (auto it = j.find("metadataDown"); it != j.end() && !it->is_null()) {
            if (!it->is_boolean()) fail(400, "metadataDown must be a boolean");
            metadata_down = it->get<bool>();
        }
        if (auto it = j.find("hostile"); it != j.end()) {
            f.hostile_mode.clear();
            f.hostile_app.clear();
            if (!it->is_null()) {
                if (!it->is_object()) fail(400, "hostile must be an object or null");
                auto mode = it->find("mode");
                if (mode != it->end() && !mode->is_null()) {
                    static const char* const modes[] = {"wrong-types", "missing-fields",
                                                        "huge-array",  "duplicate-keys",
                                                        "page-loop",   "page-cap"};
                    if (!mode->is_string() ||
                        std::none_of(std::begin(modes), std::end(modes),
                                     [&](const char* m) { return *mode == m; }))
                        fail(400,
                             "hostile.mode must be wrong-types, missing-fields, huge-array, "
                             "duplicate-keys, page-loop or page-cap");
                    f.hostile_mode = mode->get<std::string>();
                    auto app = it->find("app");
                    if (app != it->end() && !app->is_null()) {
                        if (!app->is_string()) fail(400, "hostile.app must be a string");
                        f.hostile_app = app->get<std::string>();
                    }
                    if (f.hostile_app.empty() && f.hostile_mode != "page-loop" &&
                        f.hostile_mode != "page-cap")
                        fail(400, "hostile.app is required for this mode");
                }
            }
        }
        faults_ = f;
        if (metadata_down) oauth_->metadata_down = *metadata_down;
        return json_response(faults_json());
    }
    if (path == "/__emulator/tokens") {
        only("GET");
        return json_response(oauth_->dump());
    }
    if (path == "/__emulator/requests") {
        only("GET");
        json c = json::object();
        std::uint64_t total = 0;
        for (const auto& [k, v] : counters_) {
            c[k] = v;
            total += v;
        }
        return json_response({{"total", total}, {"byRoute", c}});
    }
    if (path == "/__emulator/rate") {
        only("GET");
        json list = json::array();
        std::uint64_t peak = 0;
        for (const auto& [s, n] : rate_) {
            list.push_back({{"second", s}, {"count", n}});
            peak = std::max(peak, n);
        }
        return json_response({{"rate", std::move(list)}, {"peak", peak}});
    }
    if (path == "/__emulator/reset-counters") {
        only("POST");
        counters_.clear();
        rate_.clear();
        return no_content();
    }
    if (path == "/__emulator/availability") {
        if (meth == "DELETE") {
            availability_.clear();
            ever_lost_last_.clear();
            availability_dropped_ = 0;
            return no_content();
        }
        only("GET");
        auto rec = [](const availability_record& r) {
            return json{{"ts", std::to_string(r.ts)},
                        {"org", r.org},
                        {"developer", r.developer},
                        {"app", r.app},
                        {"usableBefore", r.usable_before},
                        {"usableKeys", r.usable_keys},
                        {"request", r.request},
                        {"key", r.key}};
        };
        json records = json::array(), lost = json::array();
        for (const auto& r : availability_) records.push_back(rec(r));
        for (const auto& r : ever_lost_last_) lost.push_back(rec(r));
        return json_response({{"records", std::move(records)},
                              {"everLostLast", std::move(lost)},
                              {"dropped", availability_dropped_}});
    }
    if (path == "/__emulator/readings") {
        if (meth == "POST") {
            json j = body_json();
            if (!j.is_object()) fail(400, "a JSON object of reading names to true/false");
            for (const auto& [name, v] : j.items()) {
                if (!v.is_boolean()) fail(400, name + " must be true or false");
                if (name == "strict") {
                    readings_.all(v.get<bool>());
                } else if (!readings_.set(name, v.get<bool>())) {
                    fail(400, "unknown reading " + name);
                }
            }
        } else {
            only("GET");
        }
        json out = json::object();
        for (const auto& n : readings::names()) out[n] = readings_.get(n);
        return json_response(out);
    }
    if (path == "/__emulator/writes") {
        if (meth == "DELETE") {
            writes_.clear();
            return no_content();
        }
        only("GET");
        json out = json::array();
        for (const auto& w : writes_)
            out.push_back({{"start", w.start},
                           {"end", w.end},
                           {"userAgent", w.user_agent},
                           {"request", w.request}});
        return json_response({{"writes", std::move(out)}});
    }
    if (path == "/__emulator/invariants") {
        if (meth == "DELETE") {
            markers_lost_.clear();
            return no_content();
        }
        only("GET");
        json lost = json::array();
        for (const auto& l : markers_lost_)
            lost.push_back({{"ts", std::to_string(l.ts)},
                            {"org", l.org},
                            {"app", l.app},
                            {"key", l.key},
                            {"request", l.request}});
        return json_response({{"markersLost", std::move(lost)}});
    }
    if (path == "/__emulator/clock") {
        if (meth == "POST") {
            json j = body_json();
            if (auto it = j.find("advanceMs"); it != j.end()) {
                auto v = json_int64(*it);
                if (!v) fail(400, "advanceMs must be an int64");
                clock_offset_ms_ += *v;
            }
            if (auto it = j.find("offsetMs"); it != j.end()) {
                auto v = json_int64(*it);
                if (!v) fail(400, "offsetMs must be an int64");
                clock_offset_ms_ = *v;
            }
        } else {
            only("GET");
        }
        return json_response({{"now", std::to_string(now())}, {"offsetMs", clock_offset_ms_}});
    }
    (void)query;
    fail(404, "unknown emulator hook " + path);
}

}  // namespace keyrot::emulator
