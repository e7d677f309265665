#include "seed.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/duration.hpp"
#include "util.hpp"
#include "views.hpp"

namespace keyrot::emulator {

namespace {

// Relative seed times: "+5m", "-30d" (from the load time), "now", or ms.
millis seed_time(const json& j, millis base, millis dflt) {
    if (j.is_null()) return dflt;
    if (auto v = json_int64(j)) return *v;
    if (!j.is_string()) throw std::runtime_error("seed: a time must be a number or a string");
    const auto& s = j.get_ref<const std::string&>();
    if (s == "now") return base;
    if (s.size() > 1 && (s[0] == '+' || s[0] == '-')) {
        if (auto d = parse_duration(std::string_view(s).substr(1)))
            return s[0] == '+' ? base + d->count() : base - d->count();
    }
    throw std::runtime_error("seed: bad time \"" + s + "\" (use ms, \"now\", \"+5m\", \"-30d\")");
}

std::optional<millis> seed_span(const json& j) {
    if (j.is_null()) return std::nullopt;
    if (auto v = json_int64(j)) return expires_in_field(*v);
    if (j.is_string()) {
        if (auto d = parse_duration(j.get_ref<const std::string&>())) return d->count();
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

organization& load_org(state& st, const json& o, millis base) {
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
            dev.developer_id = seed_str(d, "developerId", uuid(st.id_rng));
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
            auto k = ascii_lower(dev.email);
            org->developers[k] = std::move(dev);
        }
    }
    // Teams (AppGroups; Edge: companies, the same record). A team app whose
    // AppGroup is not listed gets an active one of that name.
    for (const char* list : {"appGroups", "companies"}) {
        auto it = o.find(list);
        if (it == o.end()) continue;
        for (const auto& g : *it) {
            app_group ag;
            ag.name = seed_str(g, "name");
            if (ag.name.empty()) throw std::runtime_error("seed: appGroup needs a name");
            ag.app_group_id = seed_str(g, "appGroupId", uuid(st.id_rng));
            ag.display_name = seed_str(g, "displayName", ag.name);
            ag.status = seed_str(g, "status", "active");
            if (ag.status != "active" && ag.status != "inactive")
                throw std::runtime_error("seed: appGroup status must be active or inactive");
            ag.attributes = seed_attrs(g);
            ag.created_at = seed_time(g.value("createdAt", json()), base, base);
            ag.last_modified_at = seed_time(g.value("lastModifiedAt", json()), base, ag.created_at);
            org->app_groups[ag.name] = std::move(ag);
        }
    }
    if (auto it = o.find("apps"); it != o.end()) {
        for (const auto& a : *it) {
            developer_app app;
            // A team (AppGroup) app has `appGroup` and no developer. Its key in
            // the app map starts with a byte no email holds.
            app.app_group = seed_str(a, "appGroup", seed_str(a, "companyName"));
            auto email = app.app_group.empty() ? ascii_lower(seed_str(a, "developerEmail"))
                                               : k_team_prefix + app.app_group;
            if (app.app_group.empty() && !org->developers.count(email))
                throw std::runtime_error("seed: app's developerEmail is not a seeded developer: " +
                                         email);
            if (!app.app_group.empty() && !org->app_groups.count(app.app_group)) {
                app_group ag;
                ag.name = ag.display_name = app.app_group;
                ag.app_group_id = uuid(st.id_rng);
                ag.created_at = ag.last_modified_at = base;
                org->app_groups[ag.name] = std::move(ag);
            }
            app.name = seed_str(a, "name");
            if (app.name.empty()) throw std::runtime_error("seed: app needs a name");
            app.app_id = seed_str(a, "appId", uuid(st.id_rng));
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
                    cr.consumer_key = seed_str(c, "consumerKey", random_string(st.id_rng, 48));
                    cr.consumer_secret =
                        seed_str(c, "consumerSecret", random_string(st.id_rng, 64));
                    if (!valid_key_chars(cr.consumer_key) || !valid_key_chars(cr.consumer_secret))
                        throw std::runtime_error("seed: app " + app.name +
                                                 ": bad consumer key or secret characters/size");
                    if (org->key_index.count(cr.consumer_key))
                        throw std::runtime_error("seed: duplicate consumer key in app " + app.name);
                    cr.status = seed_str(c, "status", "approved");
                    cr.issued_at = seed_time(c.value("issuedAt", json()), base, base);
                    if (const millis e = seed_time(c.value("expiresAt", json()), base, -1); e != -1)
                        cr.expires_at = e;  // -1 or none: never
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
    auto& slot = st.orgs[org->name];
    slot = std::move(org);
    return *slot;
}

}  // namespace

void load_seed(state& st, const json& seed) {
    if (!seed.is_object()) throw std::runtime_error("seed: must be a JSON object");
    const millis base = st.now();
    try {
        if (auto it = seed.find("organizations"); it != seed.end()) {
            if (!it->is_array()) throw std::runtime_error("seed: organizations must be a list");
            for (const auto& o : *it) load_org(st, o, base);
        } else {
            load_org(st, seed, base);
        }
    } catch (const json::exception& e) {
        throw std::runtime_error(std::string("seed: wrong type: ") + e.what());
    }
}

json dump_state(const state& st) {
    json orgs = json::array();
    for (const auto& [name, org] : st.orgs) {
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
                 {"keyExpiresIn", std::to_string(a.key_expires_in.value_or(-1))},
                 {"createdAt", std::to_string(a.created_at)},
                 {"lastModifiedAt", std::to_string(a.last_modified_at)},
                 {"credentials", std::move(creds)}});
        }
        o["apiProducts"] = std::move(prods);
        o["developers"] = std::move(devs);
        json groups = json::array();
        for (const auto& [_, g] : org->app_groups)
            groups.push_back({{"name", g.name},
                              {"appGroupId", g.app_group_id},
                              {"displayName", g.display_name},
                              {"status", g.status},
                              {"attributes", attrs_json(g.attributes)},
                              {"createdAt", std::to_string(g.created_at)},
                              {"lastModifiedAt", std::to_string(g.last_modified_at)}});
        o["appGroups"] = std::move(groups);
        o["apps"] = std::move(apps);
        orgs.push_back(std::move(o));
    }
    return {{"now", std::to_string(st.now())},
            {"clockOffsetMs", st.clock_offset_ms},
            {"organizations", std::move(orgs)}};
}

}  // namespace keyrot::emulator
