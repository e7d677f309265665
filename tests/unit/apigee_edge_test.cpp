// Apigee Edge (apigee.flavor: edge): the JSON of Edge's answers, the org app
// list's paging by inclusive startKey, and the calls' paths and bodies, over
// a scripted transport.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "apigee/api.hpp"
#include "apigee/json.hpp"
#include "auth/token_source.hpp"
#include "http/transport.hpp"
#include "unit/http_run_sync.hpp"

namespace apigee_edge_test {

using namespace keyrot;
using namespace keyrot::apigee;
using json = nlohmann::json;

namespace {

const char* k_edge_app = R"({
  "appId": "a-1", "name": "shop", "developerId": "dev-id-1", "status": "approved",
  "callbackUrl": "", "attributes": [{"name": "tier", "value": "gold"}],
  "createdAt": 1700000000000, "lastModifiedAt": 1700000000001,
  "credentials": [
    {"consumerKey": "ck-1", "consumerSecret": "cs-1", "status": "approved",
     "issuedAt": 1700000000000, "expiresAt": -1, "scopes": [],
     "apiProducts": [{"apiproduct": "payments", "status": "approved"}],
     "attributes": []},
    {"consumerKey": "ck-2", "consumerSecret": "cs-2", "status": "revoked",
     "issuedAt": 1700000000000, "expiresAt": 1800000000000, "apiProducts": []}
  ]
})";

}  // namespace

TEST(EdgeJson, ParsesADeveloperApp) {
    auto a = parse_edge_app(k_edge_app, "acme");
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->app_id, "a-1");
    EXPECT_EQ(a->developer_id, "dev-id-1");
    EXPECT_EQ(a->developer_email, "");  // mapped by the caller
    EXPECT_TRUE(a->app_group.empty());
    EXPECT_EQ(a->created_at, as_sys_ms(1700000000000));
    ASSERT_EQ(a->credentials.size(), 2u);
    EXPECT_EQ(a->credentials[0].expires_at, time_or_never::never());  // expiresAt: -1
    EXPECT_EQ(a->credentials[1].expires_at, as_sys_ms(1800000000000));
    EXPECT_EQ(a->credentials[0].products.at(0).status, keyrot::approval::approved);
}

TEST(EdgeJson, CompanyAppIsATeamAppAndKeyExpiresInStaysMilliseconds) {
    auto a = parse_edge_app(
        R"({"appId": "c-1", "name": "b2b", "companyName": "Partner", "keyExpiresIn": 86400000})",
        "acme");
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->app_group, "Partner");
    // ms on Edge (an X AppGroup's are seconds)
    EXPECT_EQ(a->key_expires_in, milliseconds(86400000));
    // X's parser ignores companyName.
    auto x = parse_app(R"({"name": "b2b", "companyName": "Partner"})", "acme");
    ASSERT_TRUE(x);
    EXPECT_TRUE(x->app_group.empty());
}

TEST(EdgeJson, BadFieldsAreProtocolErrors) {
    auto a = parse_edge_app(R"({"name": "x", "credentials": [{"expiresAt": -5}]})", "o");
    ASSERT_FALSE(a);
    EXPECT_EQ(a.err().what, error::kind::protocol);
    auto page = parse_edge_app_page(R"({"app": [{"name": "no id"}]})", "o");
    ASSERT_FALSE(page);
    EXPECT_NE(page.err().message.find("app[0].appId: missing"), std::string::npos);
    EXPECT_FALSE(parse_edge_app_page(R"({"app": {}})", "o"));
    EXPECT_FALSE(parse_edge_companies(R"({"company": [{"status": "active"}]})"));
}

TEST(EdgeJson, ListsDevelopersAndCompanies) {
    auto d = parse_edge_developers(
        R"({"developer": [{"email": "a@x.com", "developerId": "i1", "status": "active"},
                          {"email": "b@x.com", "developerId": "i2"}]})");
    ASSERT_TRUE(d) << d.err().describe();
    ASSERT_EQ(d->size(), 2u);
    EXPECT_EQ((*d)[0].id, "i1");
    EXPECT_EQ((*d)[1].status, "");
    auto c = parse_edge_companies(R"({"company": [{"name": "Partner", "status": "inactive"}]})");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->at(0), std::make_pair(std::string("Partner"), std::string("inactive")));
}

TEST(EdgeJson, ErrorBodies) {
    edge_error e;
    ASSERT_TRUE(parse_edge_error(
        R"({"code": "keymanagement.service.app_does_not_exist", "message": "App named shop does not exist", "contexts": []})",
        e));
    EXPECT_EQ(e.code, "keymanagement.service.app_does_not_exist");
    EXPECT_EQ(e.message, "App named shop does not exist");
    EXPECT_FALSE(parse_edge_error(R"({"error": {"code": 404}})", e));
    EXPECT_FALSE(parse_edge_error("not json", e));
    EXPECT_EQ(status_name(404), "NOT_FOUND");
    EXPECT_EQ(status_name(409), "ALREADY_EXISTS");
    EXPECT_EQ(status_name(429), "RESOURCE_EXHAUSTED");
    EXPECT_EQ(status_name(418), "");
}

TEST(EdgeJson, Bodies) {
    app a;
    a.name = "shop";
    a.api_products = {"payments"};
    a.key_expires_in = milliseconds(7776000000);
    auto g = json::parse(edge_generate_key_body(a));
    EXPECT_TRUE(g["keyExpiresIn"].is_number_integer());  // a number on Edge
    EXPECT_EQ(g["keyExpiresIn"].get<std::int64_t>(), 7776000000);
    a.key_expires_in = std::nullopt;
    EXPECT_FALSE(json::parse(edge_generate_key_body(a)).contains("keyExpiresIn"));

    new_key k;
    k.consumer_key = secret("ck");
    k.consumer_secret = secret("cs");
    k.attributes = {{"a", "b"}};
    auto c = json::parse(edge_create_key_body(k));
    EXPECT_EQ(c, json::parse(R"({"consumerKey": "ck", "consumerSecret": "cs"})"));

    std::vector<std::string> scopes = {"read"};
    auto u = json::parse(edge_update_key_body({"p"}, {{"n", "v"}}, &scopes));
    EXPECT_EQ(u, json::parse(R"({"apiProducts": ["p"], "attributes": [{"name": "n", "value": "v"}],
                                 "scopes": ["read"]})"));
    EXPECT_FALSE(json::parse(edge_update_key_body({}, {}, nullptr)).contains("scopes"));
}

// ---------------------------------------------------------------------------
// Paging arithmetic: startKey is inclusive, so pages overlap by one.

TEST(EdgePaging, FirstPageHasNothingToSkip) {
    auto s = edge_next_page("", {"a", "b", "c"});
    EXPECT_EQ(s.skip, 0u);
    EXPECT_EQ(s.next_start_key, "c");
}

TEST(EdgePaging, LaterPagesRepeatTheStartKey) {
    auto s = edge_next_page("c", {"c", "d", "e"});
    EXPECT_EQ(s.skip, 1u);
    EXPECT_EQ(s.next_start_key, "e");
}

TEST(EdgePaging, APageWithOnlyTheStartKeyEndsTheList) {
    auto s = edge_next_page("e", {"e"});
    EXPECT_EQ(s.skip, 1u);
    EXPECT_EQ(s.next_start_key, "");
    EXPECT_EQ(edge_next_page("e", {}).next_start_key, "");
    EXPECT_EQ(edge_next_page("", {}).next_start_key, "");
}

TEST(EdgePaging, ADeletedStartKeyIsNotSkipped) {
    // The startKey app went away between pages: the page starts after it.
    auto s = edge_next_page("c", {"d", "e"});
    EXPECT_EQ(s.skip, 0u);
    EXPECT_EQ(s.next_start_key, "e");
}

TEST(EdgePaging, AShortPageDoesNotEndTheList) {
    // A server may cap rows below what was asked: only an empty page ends it.
    auto s = edge_next_page("", {"a"});
    EXPECT_EQ(s.next_start_key, "a");
}

// ---------------------------------------------------------------------------
// The api on the Edge flavor, over a scripted transport.

namespace {

struct scripted final : http::transport {
    std::function<http::response(const http::request&)> answer;
    std::vector<http::request> seen;
    net::awaitable<result<http::response>> send(http::request req) override {
        seen.push_back(req);
        co_return answer(req);
    }
};

http::response ok(const json& j) {
    http::response r;
    r.status = 200;
    r.body = j.dump();
    return r;
}

// Apps a-0 … a-(n-1), ordered by appId, served with rows and inclusive startKey.
json edge_apps(int n, int rows, const std::string& start) {
    json list = json::array();
    for (int i = 0; i < n && static_cast<int>(list.size()) < rows; ++i) {
        char id[16];
        std::snprintf(id, sizeof id, "a-%03d", i);
        if (!start.empty() && std::string(id) < start) continue;
        json app = {{"appId", id}, {"name", std::string("app") + id}};
        if (i % 3 == 0)
            app["companyName"] = "Partner";
        else
            app["developerId"] = i % 3 == 1 ? "dev-1" : "dev-2";
        app["credentials"] = json::array(
            {{{"consumerKey", std::string("k") + id}, {"status", "approved"}, {"expiresAt", -1}},
             {{"consumerKey", std::string("r") + id}, {"status", "revoked"}, {"expiresAt", -1}}});
        list.push_back(app);
    }
    return {{"app", list}};
}

std::string query(const std::string& target, const std::string& name) {
    const auto q = target.find('?');
    if (q == std::string::npos) return "";
    const std::string key = name + "=";
    for (std::size_t p = q + 1; p < target.size();) {
        auto amp = target.find('&', p);
        if (amp == std::string::npos) amp = target.size();
        if (target.compare(p, key.size(), key) == 0)
            return target.substr(p + key.size(), amp - p - key.size());
        p = amp + 1;
    }
    return "";
}

}  // namespace

TEST(EdgeApi, ListsEveryAppOnceWithInclusiveStartKeyPaging) {
    scripted t;
    int developer_lists = 0;
    t.answer = [&](const http::request& req) {
        if (req.target.find("/developers?") != std::string::npos) {
            ++developer_lists;
            return ok({{"developer",
                        {{{"email", "one@x.com"}, {"developerId", "dev-1"}, {"status", "active"}},
                         {{"email", "two@x.com"}, {"developerId", "dev-2"}}}}});
        }
        const int rows = std::stoi(query(req.target, "rows"));
        return ok(edge_apps(10, rows, query(req.target, "startKey")));
    };
    auto auth = auth::make_none();
    api a(t, *auth, "acme", api_options{flavor::edge, 4});
    auto devs = keyrot::testing::run_sync(a.list_developers());
    ASSERT_TRUE(devs);
    std::vector<std::string> ids;
    std::string token;
    int pages = 0;
    do {
        auto page =
            keyrot::testing::run_sync(a.list_apps_page(token, 999, keyrot::approval::approved));
        ASSERT_TRUE(page) << page.err().describe();
        for (const auto& app : page->apps) {
            ids.push_back(app.app_id);
            ASSERT_EQ(app.credentials.size(), 1u);  // the approved key only
            EXPECT_EQ(app.credentials[0].status, keyrot::approval::approved);
            if (app.app_group.empty())
                EXPECT_EQ(app.developer_email,
                          app.developer_id == "dev-1" ? "one@x.com" : "two@x.com");
            else
                EXPECT_EQ(app.app_group, "Partner");
        }
        token = page->next_page_token;
        ASSERT_LT(++pages, 10);
    } while (!token.empty());
    // 10 apps, 4 rows, one overlap per page: 4 + 3 + 3 + the page holding only a-009.
    EXPECT_EQ(pages, 4);
    ASSERT_EQ(ids.size(), 10u);
    for (int i = 0; i < 10; ++i) {
        char id[16];
        std::snprintf(id, sizeof id, "a-%03d", i);
        EXPECT_EQ(ids[static_cast<std::size_t>(i)], id);
    }
    EXPECT_EQ(developer_lists, 1);
    // rows, never X's pageSize/includeCred/keyStatus.
    for (const auto& r : t.seen) {
        if (r.target.find("/apps?") == std::string::npos) continue;
        EXPECT_EQ(query(r.target, "rows"), "4");
        EXPECT_EQ(r.target.find("pageSize"), std::string::npos);
        EXPECT_EQ(r.target.find("includeCred"), std::string::npos);
        EXPECT_EQ(r.target.find("keyStatus"), std::string::npos);
    }
}

TEST(EdgeApi, AnUnknownDeveloperIdIsReadOnce) {
    // The developer list gave e-mails only (expand ignored with count/startKey).
    scripted t;
    int developer_reads = 0;
    t.answer = [&](const http::request& req) {
        if (req.target.find("/developers?") != std::string::npos)
            return ok(json::array({"new@x.com"}));
        if (req.target.find("/developers/dev-9") != std::string::npos) {
            ++developer_reads;
            return ok({{"email", "new@x.com"}, {"developerId", "dev-9"}, {"status", "active"}});
        }
        if (req.target.find("/developers/") != std::string::npos) {
            http::response r;
            r.status = 404;
            r.body = R"({"code": "developer.service.DeveloperDoesNotExist", "message": "no"})";
            return r;
        }
        return ok({{"app",
                    {{{"appId", "a"}, {"name", "n"}, {"developerId", "dev-9"}},
                     {{"appId", "b"}, {"name", "m"}, {"developerId", "dev-9"}},
                     {{"appId", "c"}, {"name", "o"}, {"developerId", "gone"}}}}});
    };
    auto auth = auth::make_none();
    api a(t, *auth, "acme", api_options{flavor::edge, 1000});
    auto devs = keyrot::testing::run_sync(a.list_developers());
    ASSERT_TRUE(devs) << devs.err().describe();
    EXPECT_EQ(devs->at(0), std::make_pair(std::string("new@x.com"), std::string()));
    auto page = keyrot::testing::run_sync(a.list_apps_page("", 0, std::nullopt));
    ASSERT_FALSE(page);  // "gone" is nobody
    SCOPED_TRACE(page.err().describe());
    EXPECT_TRUE(page.err().is_status(404));
    EXPECT_EQ(developer_reads, 1);  // dev-9 read once for two apps
}

TEST(EdgeApi, PathsAndBodiesOfTheKeyCalls) {
    scripted t;
    t.answer = [&](const http::request& req) {
        if (req.method == "POST" && req.target.find("?action=") != std::string::npos) {
            http::response r;
            r.status = 204;
            return r;
        }
        if (req.target.find("/keys/") != std::string::npos)
            return ok({{"consumerKey", "k"}, {"status", "approved"}, {"expiresAt", -1}});
        return ok(json::parse(k_edge_app));
    };
    auto auth = auth::make_none();
    api a(t, *auth, "acme", api_options{flavor::edge, 1000});
    const app_owner team = app_owner::of_team("Partner");
    const app_owner dev("one@x.com");
    app body = keyrot::testing::run_sync(a.get_app(team, "b2b")).value();
    body.name = "b2b";
    body.key_expires_in = milliseconds(3600000);
    // Edge's reference has no generate-key call for company apps: refused unsent.
    auto no_gen = keyrot::testing::run_sync(a.generate_key(team, body));
    ASSERT_FALSE(no_gen);
    EXPECT_EQ(no_gen.err().what, error::kind::config);
    ASSERT_TRUE(keyrot::testing::run_sync(a.generate_key(dev, body)));
    ASSERT_TRUE(keyrot::testing::run_sync(a.update_app(team, body)));
    ASSERT_TRUE(keyrot::testing::run_sync(
        a.update_key(dev, "shop", secret("k"), {"p"}, {{"keyrotd_replaces", "f"}})));
    ASSERT_TRUE(
        keyrot::testing::run_sync(a.replace_key_scopes(team, "b2b", secret("k"), {"read"}, {})));
    ASSERT_TRUE(keyrot::testing::run_sync(a.set_key_status(team, "b2b", secret("k"), false)));
    new_key nk;
    nk.consumer_key = secret("ck");
    nk.consumer_secret = secret("cs");
    ASSERT_TRUE(keyrot::testing::run_sync(a.create_key(dev, "shop", nk)));
    nk.expires_in = std::chrono::seconds(60);
    auto refused = keyrot::testing::run_sync(a.create_key(dev, "shop", nk));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.err().what, error::kind::config);
    EXPECT_NE(refused.err().message.find("cannot set an expiry on an imported key"),
              std::string::npos);

    ASSERT_EQ(t.seen.size(), 7u);  // the refused create sent nothing
    const std::string base = "/v1/organizations/acme";
    EXPECT_EQ(t.seen[0].target, base + "/companies/Partner/apps/b2b");
    EXPECT_EQ(t.seen[1].method, "POST");
    EXPECT_EQ(t.seen[1].target, base + "/developers/one%40x.com/apps/b2b");
    EXPECT_TRUE(json::parse(t.seen[1].body)["keyExpiresIn"].is_number());
    EXPECT_EQ(t.seen[2].method, "PUT");
    EXPECT_EQ(t.seen[3].target, base + "/developers/one%40x.com/apps/shop/keys/k");
    EXPECT_EQ(json::parse(t.seen[3].body), json::parse(R"({"apiProducts": ["p"],
                              "attributes": [{"name": "keyrotd_replaces", "value": "f"}]})"));
    EXPECT_EQ(t.seen[4].method, "POST");  // no PUT on Edge keys
    EXPECT_EQ(t.seen[4].target, base + "/companies/Partner/apps/b2b/keys/k");
    EXPECT_EQ(json::parse(t.seen[4].body)["scopes"], json::array({"read"}));
    EXPECT_EQ(t.seen[5].target, base + "/companies/Partner/apps/b2b/keys/k?action=revoke");
    EXPECT_EQ(t.seen[6].target, base + "/developers/one%40x.com/apps/shop/keys/create");
}

TEST(EdgeApi, EdgeErrorsReadAsXErrors) {
    scripted t;
    t.answer = [&](const http::request&) {
        http::response r;
        r.status = 404;
        r.body =
            R"({"code": "keymanagement.service.app_does_not_exist", "message": "App named shop does not exist", "contexts": []})";
        return r;
    };
    auto auth = auth::make_none();
    api a(t, *auth, "acme", api_options{flavor::edge, 1000});
    auto r = keyrot::testing::run_sync(a.get_app(app_owner("one@x.com"), "shop"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.err().is_status(404));
    EXPECT_EQ(r.err().code, "NOT_FOUND");
    EXPECT_NE(r.err().message.find("keymanagement.service.app_does_not_exist"), std::string::npos);
}

TEST(EdgeApi, CompaniesPageByInclusiveStartKey) {
    scripted t;
    t.answer = [&](const http::request& req) {
        EXPECT_NE(req.target.find("/companies?expand=true&count=1000"), std::string::npos);
        const std::string start = query(req.target, "startKey");
        json list = json::array();
        // 1500 companies c0000 … c1499, 1000 a page, inclusive startKey.
        for (int i = 0; i < 1500 && list.size() < 1000; ++i) {
            char name[16];
            std::snprintf(name, sizeof name, "c%04d", i);
            if (!start.empty() && std::string(name) < start) continue;
            list.push_back({{"name", name}, {"status", i == 7 ? "inactive" : "active"}});
        }
        return ok({{"company", list}});
    };
    auto auth = auth::make_none();
    api a(t, *auth, "acme", api_options{flavor::edge, 1000});
    auto cs = keyrot::testing::run_sync(a.list_app_groups());
    ASSERT_TRUE(cs) << cs.err().describe();
    EXPECT_EQ(cs->size(), 1500u);
    EXPECT_EQ(cs->at(7).second, "inactive");
    EXPECT_EQ(t.seen.size(), 2u);
    EXPECT_EQ(query(t.seen[1].target, "startKey"), "c0999");
}

}  // namespace apigee_edge_test
