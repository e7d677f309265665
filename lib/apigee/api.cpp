#include "apigee/api.hpp"

#include <set>

#include "apigee/json.hpp"
#include "auth/token_source.hpp"
#include "http/rules.hpp"
#include "http/transport.hpp"

namespace keyrot::apigee {

namespace {

using http::encode_component;

struct call_spec {
    std::string method;
    std::string target;
    std::string body;  // may hold a consumer key/secret: wiped when the call ends
    std::string content_type;
    std::vector<std::string> scrub;  // strings that must not reach a message (keys, secrets)
    bool idempotent = false;         // safe to repeat though not a GET/PUT/DELETE/?action= POST

    call_spec(std::string m, std::string t) : method(std::move(m)), target(std::move(t)) {}
    call_spec(call_spec&&) = default;
    ~call_spec() {
        cleanse(body);
        for (auto& s : scrub) cleanse(s);
    }
};

void replace_all(std::string& s, const std::string& needle, std::string_view with) {
    if (needle.empty()) return;
    for (auto pos = s.find(needle); pos != std::string::npos;
         pos = s.find(needle, pos + with.size()))
        s.replace(pos, needle.size(), with);
}

// A server's message, fit for a log line: no control characters, none of the
// request's keys or secrets (raw or URL-encoded), at most 200 bytes.
std::string sanitise(std::string msg, const std::vector<std::string>& scrub) {
    for (const auto& s : scrub) {
        replace_all(msg, s, "***");
        replace_all(msg, encode_component(s), "***");
    }
    for (auto& c : msg)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (msg.size() > 200) {
        std::size_t cut = 200;
        while (cut > 0 && (static_cast<unsigned char>(msg[cut]) & 0xC0) == 0x80) --cut;
        msg.resize(cut);
        msg += "...";
    }
    return msg;
}

std::string what_of(const call_spec& spec) {
    return spec.method + " " + http::redact_target(spec.target);
}

error http_error(const http::response& r, const call_spec& spec) {
    error e;
    e.what = error::kind::http;
    e.status = r.status;
    google_error g;
    edge_error eg;
    std::string detail;
    if (parse_google_error(r.body, g)) {
        e.code = g.status;
        detail = sanitise(g.message, spec.scrub);
    } else if (parse_edge_error(r.body, eg)) {
        // Apigee Edge's {code, message, contexts}: the same kinds as X's (by
        // HTTP status), Edge's code kept in the message.
        e.code = status_name(r.status);
        detail = sanitise(eg.code + (eg.message.empty() ? "" : ": " + eg.message), spec.scrub);
    } else if (!r.body.empty()) {
        detail = "(not a Google error body) " + sanitise(r.body, spec.scrub);
    }
    e.message = what_of(spec) + (detail.empty() ? "" : ": " + detail);
    return e;
}

error in_context(error e, const call_spec& spec) {
    e.message = what_of(spec) + ": " + e.message;
    return e;
}

net::awaitable<result<http::response>> call(http::transport& client, auth::token_source& auth,
                                            const call_spec& spec) {
    for (int round = 0;; ++round) {
        auto header = co_await auth.authorization_header();
        if (!header) co_return header.err();
        http::request req;
        req.method = spec.method;
        req.target = spec.target;
        req.body = spec.body;
        req.content_type = spec.content_type;
        req.idempotent = spec.idempotent;
        req.authorization = std::move(header.value());
        auto r = co_await client.send(std::move(req));
        if (!r) co_return r.err();
        // A 401 is refused before it takes effect: renewing the token and sending
        // once more is safe even for a create.
        if (r->status == 401 && round == 0) {
            auth.invalidate();
            continue;
        }
        if (r->status < 200 || r->status >= 300) co_return http_error(*r, spec);
        co_return r;
    }
}

call_spec json_call(std::string method, std::string target, std::string body) {
    call_spec s(std::move(method), std::move(target));
    s.body = std::move(body);
    s.content_type = "application/json";
    return s;
}

// One call, its answer parsed: an app, a key, or nothing (204).
net::awaitable<result<app>> call_app(http::transport& client, auth::token_source& auth,
                                     call_spec spec, const std::string& org, bool edge) {
    auto r = co_await call(client, auth, spec);
    if (!r) co_return r.err();
    auto a = edge ? parse_edge_app(r->body, org) : parse_app(r->body, org);
    if (!a) co_return in_context(a.err(), spec);
    co_return a;
}

net::awaitable<result<credential>> call_key(http::transport& client, auth::token_source& auth,
                                            call_spec spec) {
    auto r = co_await call(client, auth, spec);
    if (!r) co_return r.err();
    auto c = parse_credential(r->body);
    if (!c) co_return in_context(c.err(), spec);
    co_return c;
}

net::awaitable<result<void>> call_only(http::transport& client, auth::token_source& auth,
                                       call_spec spec) {
    auto r = co_await call(client, auth, spec);
    if (!r) co_return r.err();
    co_return ok_t{};
}

// A name list paged by inclusive startKey and count (X's developers, Edge's
// companies): pages overlap by one; the list ends at a short page or one that
// brings nothing new. (name, status) pairs, each name once.
using named_list = std::vector<std::pair<std::string, std::string>>;
net::awaitable<result<named_list>> list_by_start_key(
    http::transport& client, auth::token_source& auth, std::string base,
    result<named_list> (*parse)(std::string_view)) {
    constexpr int count = 1000;
    named_list all;
    std::set<std::string> seen;
    std::string start_key;
    for (int page = 0; page < 100000; ++page) {
        std::string target = base + "?expand=true&count=" + std::to_string(count);
        if (!start_key.empty()) target += "&startKey=" + encode_component(start_key);
        call_spec spec("GET", std::move(target));
        auto r = co_await call(client, auth, spec);
        if (!r) co_return r.err();
        auto names = parse(r->body);
        if (!names) co_return in_context(names.err(), spec);
        std::size_t added = 0;
        // The next page starts at this page's last name (read before the moves below).
        const std::string last = names->empty() ? std::string() : names->back().first;
        for (auto& n : names.value()) {
            if (seen.insert(n.first).second) {
                all.push_back(std::move(n));
                ++added;
            }
        }
        if (names->size() < static_cast<std::size_t>(count) || added == 0) break;
        start_key = last;
    }
    co_return all;
}

}  // namespace

api::api(http::transport& http, auth::token_source& auth, std::string organization,
         api_options options)
    : http_(http), auth_(auth), org_(std::move(organization)), opts_(options) {}

namespace {
std::string org_path(const std::string& org) {
    return "/v1/organizations/" + encode_component(org);
}
// A team is an AppGroup on X, a company on Edge.
std::string team_path(const std::string& org, const std::string& team, bool edge) {
    return org_path(org) + (edge ? "/companies/" : "/appgroups/") + encode_component(team);
}
std::string app_path(const std::string& org, const app_owner& owner, const std::string& app,
                     bool edge) {
    return (owner.is_team() ? team_path(org, owner.team, edge)
                            : org_path(org) + "/developers/" + encode_component(owner.developer)) +
           "/apps/" + encode_component(app);
}
std::string key_path(const std::string& org, const app_owner& owner, const std::string& app,
                     const secret& key, bool edge) {
    return app_path(org, owner, app, edge) + "/keys/" + encode_component(key.reveal());
}
error config_refusal(std::string message) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(message);
    return e;
}
error no_generate_for_teams(bool edge) {
    error e;
    e.what = error::kind::config;
    e.message = edge ? "Edge company apps have no generate-key call (a POST on a company app only "
                       "approves or revokes it)"
                     : "team (AppGroup) apps have no generate-key call: use method import";
    return e;
}
}  // namespace

net::awaitable<result<app_page>> api::list_apps_page(std::string page_token, int page_size,
                                                     std::optional<approval> key_status) {
    if (edge()) {
        auto page = co_await edge_list_apps_page(std::move(page_token), key_status);
        co_return page;
    }
    std::string target =
        org_path(org_) + "/apps?expand=true&includeCred=true&pageSize=" + std::to_string(page_size);
    if (!page_token.empty()) target += "&pageToken=" + encode_component(page_token);
    if (key_status) target += std::string("&keyStatus=") + to_string(*key_status);
    call_spec spec("GET", std::move(target));
    auto r = co_await call(http_, auth_, spec);
    if (!r) co_return r.err();
    auto page = parse_app_page(r->body, org_);
    if (!page) co_return in_context(page.err(), spec);
    co_return page;
}

net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> api::list_developers() {
    if (edge()) {
        auto devs = co_await edge_list_developers();
        co_return devs;
    }
    const std::string base = org_path(org_) + "/developers";
    auto devs = co_await list_by_start_key(http_, auth_, base, &parse_developers);
    co_return devs;
}

net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> api::list_app_groups() {
    if (edge()) {
        auto companies = co_await edge_list_companies();
        co_return companies;
    }
    std::vector<std::pair<std::string, std::string>> all;
    std::string token;
    for (int page = 0; page < 100000; ++page) {
        std::string target = org_path(org_) + "/appgroups?pageSize=1000";
        if (!token.empty()) target += "&pageToken=" + encode_component(token);
        call_spec spec("GET", std::move(target));
        auto r = co_await call(http_, auth_, spec);
        if (!r) co_return r.err();
        auto groups = parse_app_groups(r->body);
        if (!groups) co_return in_context(groups.err(), spec);
        for (auto& g : groups->first) all.push_back(std::move(g));
        if (groups->second.empty()) co_return all;
        if (groups->second == token) {
            error e;
            e.what = error::kind::protocol;
            e.message = what_of(spec) + ": the page token repeats";
            co_return e;
        }
        token = groups->second;
    }
    co_return all;
}

net::awaitable<result<owner_status>> api::get_app_group_status(std::string team) {
    call_spec spec("GET", team_path(org_, team, edge()));
    auto r = co_await call(http_, auth_, spec);
    if (!r) co_return r.err();
    auto st = parse_developer_status(r->body);
    if (!st) co_return in_context(st.err(), spec);
    co_return st;
}

net::awaitable<result<owner_status>> api::get_owner_status(app_owner owner) {
    if (owner.is_team()) {
        auto st = co_await get_app_group_status(owner.team);
        co_return st;
    }
    auto st = co_await get_developer_status(owner.developer);
    co_return st;
}

net::awaitable<result<owner_status>> api::get_developer_status(std::string developer) {
    call_spec spec("GET", org_path(org_) + "/developers/" + encode_component(developer));
    auto r = co_await call(http_, auth_, spec);
    if (!r) co_return r.err();
    auto st = parse_developer_status(r->body);
    if (!st) co_return in_context(st.err(), spec);
    co_return st;
}

net::awaitable<result<app>> api::get_app(app_owner owner, std::string app_name) {
    call_spec spec("GET", app_path(org_, owner, app_name, edge()));
    co_return co_await call_app(http_, auth_, std::move(spec), org_, edge());
}

net::awaitable<result<app>> api::generate_key(app_owner owner, const app& body) {
    if (owner.is_team()) co_return no_generate_for_teams(edge());
    auto spec = json_call("POST", app_path(org_, owner, body.name, edge()),
                          edge() ? edge_generate_key_body(body) : generate_key_body(body));
    co_return co_await call_app(http_, auth_, std::move(spec), org_, edge());
}

net::awaitable<result<app>> api::update_app(app_owner owner, const app& body) {
    if (owner.is_team() && !edge()) co_return no_generate_for_teams(false);
    auto spec = json_call("PUT", app_path(org_, owner, body.name, edge()), update_app_body(body));
    co_return co_await call_app(http_, auth_, std::move(spec), org_, edge());
}

net::awaitable<result<credential>> api::create_key(app_owner owner, std::string app_name,
                                                   const new_key& key) {
    if (edge() && key.expires_in)
        co_return config_refusal(
            "Apigee Edge cannot set an expiry on an imported key (keys/create takes consumerKey "
            "and consumerSecret only): use method generate");
    auto spec = edge() ? json_call("POST", app_path(org_, owner, app_name, edge()) + "/keys/create",
                                   edge_create_key_body(key))
                       : json_call("POST", app_path(org_, owner, app_name, edge()) + "/keys",
                                   create_key_body(key));
    spec.scrub = {key.consumer_key.reveal(), key.consumer_secret.reveal()};
    co_return co_await call_key(http_, auth_, std::move(spec));
}

net::awaitable<result<credential>> api::get_key(app_owner owner, std::string app_name, secret key) {
    call_spec spec("GET", key_path(org_, owner, app_name, key, edge()));
    spec.scrub = {key.reveal()};
    co_return co_await call_key(http_, auth_, std::move(spec));
}

net::awaitable<result<credential>> api::update_key(app_owner owner, std::string app_name,
                                                   secret key,
                                                   std::vector<std::string> add_products,
                                                   std::vector<attribute> attributes) {
    auto spec =
        json_call("POST", key_path(org_, owner, app_name, key, edge()),
                  edge()            ? edge_update_key_body(add_products, attributes, nullptr)
                  : owner.is_team() ? team_update_key_body(add_products, attributes, nullptr)
                                    : update_key_body(add_products, attributes));
    spec.scrub = {key.reveal()};
    co_return co_await call_key(http_, auth_, std::move(spec));
}

net::awaitable<result<credential>> api::replace_key_scopes(app_owner owner, std::string app_name,
                                                           secret key,
                                                           std::vector<std::string> scopes,
                                                           std::vector<attribute> attributes) {
    // A team key has no replace: the update sets the scopes it is given. Nor
    // has an Edge key: its update (POST) replaces the scopes it is given.
    auto spec = edge()            ? json_call("POST", key_path(org_, owner, app_name, key, edge()),
                                              edge_update_key_body({}, attributes, &scopes))
                : owner.is_team() ? json_call("POST", key_path(org_, owner, app_name, key, edge()),
                                              team_update_key_body({}, attributes, &scopes))
                                  : json_call("PUT", key_path(org_, owner, app_name, key, edge()),
                                              scopes_body(scopes, attributes));
    spec.scrub = {key.reveal()};
    co_return co_await call_key(http_, auth_, std::move(spec));
}

net::awaitable<result<void>> api::set_key_status(app_owner owner, std::string app_name, secret key,
                                                 bool approve) {
    if (owner.is_team() && !edge()) {
        // {"action": ...} alone in the body (not ?action=): setting a status
        // twice leaves it as once, so the client may repeat it like the
        // ?action= POST of a developer key.
        auto spec = json_call("POST", key_path(org_, owner, app_name, key, edge()),
                              team_key_action_body(approve));
        spec.idempotent = true;
        spec.scrub = {key.reveal()};
        co_return co_await call_only(http_, auth_, std::move(spec));
    }
    call_spec spec("POST", key_path(org_, owner, app_name, key, edge()) +
                               (approve ? "?action=approve" : "?action=revoke"));
    spec.content_type = "application/octet-stream";
    spec.scrub = {key.reveal()};
    co_return co_await call_only(http_, auth_, std::move(spec));
}

net::awaitable<result<void>> api::set_key_product_status(app_owner owner, std::string app_name,
                                                         secret key, std::string product,
                                                         bool approve) {
    call_spec spec("POST", key_path(org_, owner, app_name, key, edge()) + "/apiproducts/" +
                               encode_component(product) +
                               (approve ? "?action=approve" : "?action=revoke"));
    spec.content_type = "application/octet-stream";
    spec.scrub = {key.reveal()};
    co_return co_await call_only(http_, auth_, std::move(spec));
}

net::awaitable<result<void>> api::delete_key(app_owner owner, std::string app_name, secret key) {
    call_spec spec("DELETE", key_path(org_, owner, app_name, key, edge()));
    spec.scrub = {key.reveal()};
    co_return co_await call_only(http_, auth_, std::move(spec));
}

// ---------------------------------------------------------------------------
// Apigee Edge's listings

net::awaitable<result<app_page>> api::edge_list_apps_page(std::string start_key,
                                                          std::optional<approval> key_status) {
    std::string target =
        org_path(org_) + "/apps?expand=true&rows=" + std::to_string(opts_.edge_rows);
    if (!start_key.empty()) target += "&startKey=" + encode_component(start_key);
    call_spec spec("GET", std::move(target));
    auto r = co_await call(http_, auth_, spec);
    if (!r) co_return r.err();
    auto page = parse_edge_app_page(r->body, org_);
    if (!page) co_return in_context(page.err(), spec);
    std::vector<std::string> ids;
    for (const auto& a : page->apps) ids.push_back(a.app_id);
    const edge_page_step step = edge_next_page(start_key, ids);
    if (step.skip > 0) page->apps.erase(page->apps.begin());
    page->next_page_token = step.next_start_key;
    // Edge has no keyStatus: the keys of the status asked for, as X's list gives them.
    for (auto& a : page->apps)
        if (key_status)
            std::erase_if(a.credentials,
                          [&](const credential& c) { return c.status != *key_status; });
    // Developer apps name their developer by id: the developer list maps it;
    // an id it does not hold (a newer developer, or a list of e-mails only) is
    // read once: GET /developers/{developerId}.
    for (auto& a : page->apps) {
        if (!a.app_group.empty() || !a.developer_email.empty()) continue;
        if (a.developer_id.empty()) {
            error e;
            e.what = error::kind::protocol;
            e.message = what_of(spec) + ": app " + a.name + " (appId " + a.app_id +
                        ") names neither a developerId nor a companyName";
            co_return e;
        }
        auto it = email_by_developer_id_.find(a.developer_id);
        if (it == email_by_developer_id_.end()) {
            call_spec one("GET",
                          org_path(org_) + "/developers/" + encode_component(a.developer_id));
            auto r1 = co_await call(http_, auth_, one);
            if (!r1) co_return r1.err();
            auto dev = parse_edge_developer(r1->body);
            if (!dev) co_return in_context(dev.err(), one);
            it = email_by_developer_id_.emplace(a.developer_id, dev->email).first;
        }
        a.developer_email = it->second;
    }
    co_return page;
}

net::awaitable<result<std::vector<std::pair<std::string, std::string>>>>
api::edge_list_developers() {
    constexpr int count = 1000;
    std::vector<std::pair<std::string, std::string>> all;
    std::set<std::string> seen;
    std::string start_key;
    // Pages overlap by one (startKey is inclusive); stop when a page brings nothing new.
    for (int page = 0; page < 100000; ++page) {
        std::string target =
            org_path(org_) + "/developers?expand=true&count=" + std::to_string(count);
        if (!start_key.empty()) target += "&startKey=" + encode_component(start_key);
        call_spec spec("GET", std::move(target));
        auto r = co_await call(http_, auth_, spec);
        if (!r) co_return r.err();
        auto devs = parse_edge_developers(r->body);
        if (!devs) co_return in_context(devs.err(), spec);
        std::size_t added = 0;
        const std::string last = devs->empty() ? std::string() : devs->back().email;
        for (auto& d : devs.value()) {
            if (!d.id.empty() && !d.email.empty()) email_by_developer_id_[d.id] = d.email;
            if (seen.insert(d.email).second) {
                all.emplace_back(std::move(d.email), std::move(d.status));
                ++added;
            }
        }
        if (devs->size() < static_cast<std::size_t>(count) || added == 0) break;
        start_key = last;
    }
    co_return all;
}

net::awaitable<result<std::vector<std::pair<std::string, std::string>>>>
api::edge_list_companies() {
    const std::string base = org_path(org_) + "/companies";
    auto companies = co_await list_by_start_key(http_, auth_, base, &parse_edge_companies);
    co_return companies;
}

}  // namespace keyrot::apigee
