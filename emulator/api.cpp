#include "api.hpp"

#include <algorithm>

#include "common/fingerprint.hpp"
#include "faults.hpp"
#include "routes.hpp"

namespace keyrot::emulator {

std::optional<std::string> call::q(const char* name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
}

bool call::q_bool(const char* name) const {
    auto v = q(name);
    return v && (*v == "true" || *v == "1" || v->empty());
}

developer& find_dev(organization& org, const std::string& email) {
    auto it = org.developers.find(ascii_lower(email));
    if (it == org.developers.end() && edge_json()) {
        // Edge: a developer is named by email or by developerId.
        for (auto i = org.developers.begin(); i != org.developers.end(); ++i)
            if (i->second.developer_id == email) return i->second;
    }
    if (it == org.developers.end())
        fail(404, "developer " + email + " not found", "developer.service.DeveloperDoesNotExist");
    return it->second;
}

developer_app& find_app(organization& org, const std::string& email, const std::string& name) {
    const developer& d = find_dev(org, email);
    auto it = org.apps.find({ascii_lower(d.email), name});
    if (it == org.apps.end())
        fail(404, "app " + name + " not found for developer " + email,
             "keymanagement.service.app_does_not_exist");
    return it->second;
}

app_group& find_group(organization& org, const std::string& name) {
    auto it = org.app_groups.find(name);
    if (it == org.app_groups.end()) {
        if (edge_json())
            fail(404, "company " + name + " not found", "developer.service.CompanyDoesNotExist");
        fail(404, "AppGroup " + name + " not found");
    }
    return it->second;
}

namespace {

bool team_path(const std::vector<std::string>& seg) {
    return seg[2] == "appgroups" || seg[2] == "companies";
}

}  // namespace

app_key owner_key(const organization& org, const std::vector<std::string>& seg) {
    if (team_path(seg)) return team_app_key(seg[3], seg[5]);
    auto lo = ascii_lower(seg[3]);
    if (edge_json() && !org.developers.count(lo)) {
        for (const auto& [k, d] : org.developers)
            if (d.developer_id == seg[3]) return {k, seg[5]};
    }
    return {lo, seg[5]};
}

developer_app& find_owner_app(organization& org, const std::vector<std::string>& seg) {
    if (!team_path(seg)) return find_app(org, seg[3], seg[5]);
    find_group(org, seg[3]);
    auto it = org.apps.find(team_app_key(seg[3], seg[5]));
    if (it == org.apps.end())
        fail(404,
             "app " + seg[5] + " not found in " + (edge_json() ? "company " : "AppGroup ") + seg[3],
             "keymanagement.service.app_does_not_exist");
    return it->second;
}

credential& find_key(developer_app& app, const std::string& consumer_key) {
    for (auto& c : app.credentials)
        if (c.consumer_key == consumer_key) return c;
    fail(404, "consumer key not found in app " + app.name,
         "keymanagement.service.InvalidClientIdForGivenApp");
}

std::string product_status(const organization& org, const std::string& name) {
    auto it = org.products.find(name);
    if (it == org.products.end()) fail(400, "API product " + name + " does not exist");
    return it->second.approval_type == "manual" ? "pending" : "approved";
}

std::vector<std::string> product_names(const organization& org, const json& j) {
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
        product_status(org, n);  // 400 when unknown
        if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
    if (out.size() > k_max_products_per_key) fail(400, "at most 50 API products per key");
    return out;
}

credential new_credential(state& st, const organization& org,
                          const std::vector<std::string>& products,
                          std::optional<millis> expires_in_ms,
                          const std::vector<std::string>& scopes, millis t) {
    credential c;
    do {
        c.consumer_key = random_string(st.id_rng, 48);
    } while (org.key_index.count(c.consumer_key));
    c.consumer_secret = random_string(st.id_rng, 64);
    c.issued_at = t;
    // None given (or -1), 0 or less: a key that never expires.
    if (expires_in_ms && *expires_in_ms > 0) c.expires_at = t + *expires_in_ms;
    c.scopes = scopes;
    for (const auto& p : products) c.products.push_back({p, product_status(org, p)});
    return c;
}

std::string parse_action(const std::optional<std::string>& action) {
    if (*action != "approve" && *action != "revoke") fail(400, "action must be approve or revoke");
    return *action == "approve" ? std::string("approved") : std::string("revoked");
}

std::optional<std::vector<attribute>> body_attributes(const json& body) {
    const json* a = field(body, "attributes");
    if (!a) return std::nullopt;
    return parse_attributes(*a, "");
}

namespace {

bool has_marker(const credential& c) {
    return std::any_of(c.attributes.begin(), c.attributes.end(),
                       [](const attribute& a) { return a.name == "keyrotd_replaces"; });
}

}  // namespace

response serve_api(state& st, const request& req, const std::vector<std::string>& seg,
                   const std::multimap<std::string, std::string>& qs) {
    std::optional<std::string> action;
    if (auto it = qs.find("action"); it != qs.end()) action = it->second;
    auto m = match_route(req.method, seg, action.has_value(), st.edge);
    ++st.counters[m.templ];

    if (st.auth.required() && !st.auth.accepts(req.authorization, wall_ms()))
        fail(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.");
    if (!m.fn && !m.wrong_method) fail(404, "unknown path");

    if (auto r = injected_failure(st)) return std::move(*r);
    if (m.wrong_method) {
        auto r = error_response(405, "METHOD_NOT_ALLOWED",
                                "method " + req.method + " is not allowed on this path");
        r.headers.emplace_back("Allow", m.allow);
        r.delay_ms = st.fault.latency_ms;
        return r;
    }

    auto oi = st.orgs.find(seg[1]);
    if (oi == st.orgs.end())
        fail(404, "organization " + seg[1] + " not found",
             "organizations.OrganizationDoesNotExist");
    organization& org = *oi->second;
    const millis t = st.now();

    // Body: JSON object for writes that carry one (octet-stream actions carry none).
    json body = json::object();
    const bool is_write = req.method != "GET";
    const bool wants_body = is_write && req.method != "DELETE" && !action.has_value();
    if (wants_body && !req.body.empty()) {
        body = json::parse(req.body, nullptr, false);
        if (body.is_discarded()) fail(400, "Invalid JSON payload received.");
        if (!body.is_object()) fail(400, "Invalid JSON payload received: expected an object.");
    }

    // Availability bookkeeping for writes that name an app.
    std::optional<app_key> written;
    int usable_before = 0;
    if (is_write && seg.size() >= 6 && seg[4] == "apps") {
        written = owner_key(org, seg);
        usable_before = st.usable_keys(org, *written);
    }
    std::string record_route = m.templ;
    if (action) record_route = req.method + " " + m.templ.substr(m.templ.find(' ') + 1);
    // A team key's approve/revoke names its action in the body, not the query:
    // the histories name it as the developer key's (…/keys/{key}?action).
    if (!action && seg.size() == 8 && seg[2] == "appgroups" && seg[6] == "keys" &&
        body.contains("action"))
        record_route += "?action";
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

    call c{seg, qs, action, org, body, t, record_route};
    response res = m.fn(st, c);

    // (A developer's status change records its apps itself; its path names no app.)
    if (written && res.status / 100 == 2)
        st.record_availability(org.name, *written, usable_before, record_route, record_key);
    if (written && !marked_before.empty()) {
        if (auto ai = org.apps.find(*written); ai != org.apps.end()) {
            for (const auto& cr : ai->second.credentials) {
                if (has_marker(cr) || std::find(marked_before.begin(), marked_before.end(),
                                                cr.consumer_key) == marked_before.end())
                    continue;
                st.markers_lost.push_back({t, org.name, ai->second.name,
                                           keyrot::fingerprint(cr.consumer_key), record_route});
            }
        }
    }
    res.delay_ms =
        st.fault.latency_ms + c.list_delay_ms + (is_write ? st.fault.write_latency_ms : 0);
    if (is_write) {
        const millis start = wall_ms();
        st.writes.push_back({start, start + res.delay_ms, req.user_agent, record_route});
        if (st.writes.size() > k_max_availability) st.writes.pop_front();
    }
    if (is_write && res.status / 100 == 2 && drop_after_write(st)) res.drop = true;
    return res;
}

}  // namespace keyrot::emulator
