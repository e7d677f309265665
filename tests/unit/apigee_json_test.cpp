#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "apigee/json.hpp"
#include "common/fingerprint.hpp"

namespace apigee_json_test {

using namespace keyrot;
using namespace keyrot::apigee;
using json = nlohmann::json;

namespace {
const char* k_app = R"({
  "name": "shop", "appId": "0b2c", "developerId": "d-1", "developerEmail": "dev@x.com",
  "status": "approved", "callbackUrl": "https://cb", "appFamily": "default",
  "attributes": [{"name": "Notes", "value": "keep me"}, {"name": "tier", "value": "gold"}],
  "scopes": ["read"], "keyExpiresIn": "-1", "createdAt": "1700000000000",
  "lastModifiedAt": 1700000000001,
  "credentials": [
    {"consumerKey": "ck-1", "consumerSecret": "cs-1", "status": "approved",
     "issuedAt": "1700000000000", "expiresAt": "-1",
     "attributes": [{"name": "keyrotd_replaces", "value": "abc"}], "scopes": ["read"],
     "apiProducts": [{"apiproduct": "payments", "status": "approved"},
                     {"apiproduct": "admin", "status": "revoked"}]},
    {"consumerKey": "ck-2", "consumerSecret": "cs-2", "status": "revoked",
     "issuedAt": 1700000000000, "expiresAt": 1800000000000, "apiProducts": ["legacy"]}
  ]
})";
}

TEST(ApigeeJson, ParsesAnApp) {
    auto a = parse_app(k_app, "acme");
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->organization, "acme");
    EXPECT_EQ(a->name, "shop");
    EXPECT_EQ(a->developer_email, "dev@x.com");
    EXPECT_EQ(a->callback_url, "https://cb");
    EXPECT_EQ(a->attributes.size(), 2u);
    EXPECT_EQ(a->key_expires_in, std::nullopt);
    EXPECT_EQ(a->created_at, as_sys_ms(1700000000000));
    EXPECT_EQ(a->last_modified_at, as_sys_ms(1700000000001));
    ASSERT_EQ(a->credentials.size(), 2u);
    const auto& c = a->credentials[0];
    EXPECT_EQ(c.consumer_key.reveal(), "ck-1");
    EXPECT_EQ(c.fingerprint, fingerprint("ck-1"));
    EXPECT_EQ(c.expires_at, time_or_never::never());
    ASSERT_EQ(c.products.size(), 2u);
    EXPECT_EQ(c.products[1], (product_grant{"admin", approval::revoked}));
    const auto& c2 = a->credentials[1];
    EXPECT_EQ(c2.expires_at, as_sys_ms(1800000000000));
    ASSERT_EQ(c2.products.size(), 1u);
    EXPECT_EQ(c2.products[0], (product_grant{"legacy", approval::unknown}));  // plain name
}

TEST(ApigeeJson, MinimalAndNullsAreTolerated) {
    auto a = parse_app(R"({"name": "x", "attributes": null, "credentials": [{}]})", "o");
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->status, approval::approved);
    ASSERT_EQ(a->credentials.size(), 1u);
    EXPECT_EQ(a->credentials[0].expires_at, time_or_never::never());
    EXPECT_TRUE(a->credentials[0].fingerprint.empty());
    auto e = parse_app("{}", "o");
    ASSERT_TRUE(e);
    auto c = parse_credential(R"({"consumerKey":"k","expiresAt":""})");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->expires_at, time_or_never::never());
}

TEST(ApigeeJson, Int64AsStringsOrNumbers) {
    struct row {
        const char* value;
        bool ok;
        time_or_never expect;
    };
    for (const auto& r : std::vector<row>{{"\"1700000000000\"", true, as_sys_ms(1700000000000)},
                                          {"1700000000000", true, as_sys_ms(1700000000000)},
                                          {"1.7e12", true, as_sys_ms(1700000000000)},
                                          {"\"-1\"", true, time_or_never::never()},
                                          {"-1", true, time_or_never::never()},
                                          {"\"-2\"", false, as_sys_ms(0)},
                                          {"-5", false, as_sys_ms(0)},
                                          {"1.5", false, as_sys_ms(0)},
                                          {"\"12abc\"", false, as_sys_ms(0)},
                                          {"\" 12\"", false, as_sys_ms(0)},
                                          {"\"99999999999999999999\"", false, as_sys_ms(0)},
                                          {"18446744073709551615", false, as_sys_ms(0)},
                                          {"1e300", false, as_sys_ms(0)},
                                          {"true", false, as_sys_ms(0)},
                                          {"[1]", false, as_sys_ms(0)},
                                          {"{}", false, as_sys_ms(0)}}) {
        auto c = parse_credential(std::string(R"({"expiresAt": )") + r.value + "}");
        EXPECT_EQ(c.ok(), r.ok) << r.value;
        if (c && r.ok) {
            EXPECT_EQ(c->expires_at, r.expect) << r.value;
        }
        if (!c) {
            EXPECT_EQ(c.err().what, error::kind::protocol);
            EXPECT_NE(c.err().message.find("expiresAt"), std::string::npos) << c.err().message;
        }
    }
}

TEST(ApigeeJson, WrongTypesAreProtocolErrorsNamingTheField) {
    struct row {
        const char* doc;
        const char* field;
    };
    for (const auto& r : std::vector<row>{
             {R"({"name": 5})", "name"},
             {R"({"attributes": {"a": 1}})", "attributes"},
             {R"({"attributes": [{"name": "a", "value": 3}]})", "attributes"},
             {R"({"scopes": "read"})", "scopes"},
             {R"({"credentials": {}})", "credentials"},
             {R"({"credentials": [5]})", "credentials[0]"},
             {R"({"credentials": [{"apiProducts": [1]}]})", "credentials[0].apiProducts"},
             {R"({"credentials": [{"consumerKey": 12}]})", "credentials[0].consumerKey"},
             {R"([])", "document"},
             {R"("x")", "document"},
         }) {
        auto a = parse_app(r.doc, "o");
        ASSERT_FALSE(a) << r.doc;
        EXPECT_EQ(a.err().what, error::kind::protocol);
        EXPECT_NE(a.err().message.find(r.field), std::string::npos) << a.err().message;
    }
    for (const char* bad : {"", "{", "nul", "{\"a\":1}x", "\xff\xfe", "{\"name\":\"\xc3\x28\"}"}) {
        auto a = parse_app(bad, "o");
        ASSERT_FALSE(a) << bad;
        EXPECT_EQ(a.err().what, error::kind::protocol);
    }
}

TEST(ApigeeJson, ErrorsNeverCarryKeys) {
    auto c = parse_credential(R"({"consumerKey": "SECRETKEY", "expiresAt": "zz"})");
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().message.find("SECRETKEY"), std::string::npos);
    EXPECT_EQ(c.err().message.find("zz"), std::string::npos);
}

TEST(ApigeeJson, HugeAndDeepInput) {
    std::string deep(200000, '[');
    auto a = parse_app(deep, "o");
    EXPECT_FALSE(a);
    std::string deep_ok = std::string(100000, '[') + std::string(100000, ']');
    EXPECT_FALSE(parse_app(deep_ok, "o"));
    json big;
    big["app"] = json::array();
    for (int i = 0; i < 20000; ++i)
        big["app"].push_back({{"name", "app" + std::to_string(i)},
                              {"developerEmail", "d@x"},
                              {"credentials", {{{"consumerKey", "k" + std::to_string(i)}}}}});
    big["nextPageToken"] = "tok";
    auto page = parse_app_page(big.dump(), "o");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->apps.size(), 20000u);
    EXPECT_EQ(page->next_page_token, "tok");
    EXPECT_EQ(page->apps[19999].credentials[0].fingerprint, fingerprint("k19999"));
}

TEST(ApigeeJson, PagesAndDevelopers) {
    auto p = parse_app_page("{}", "o");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->apps.empty());
    EXPECT_EQ(p->next_page_token, "");
    EXPECT_FALSE(parse_app_page(R"({"app": ["name1"]})", "o"));
    EXPECT_FALSE(parse_app_page(R"({"app": [{"name": "a"}], "nextPageToken": 3})", "o"));
    auto d = parse_developers(
        R"({"developer": [{"email": "a@x", "status": "inactive"}, {"email": "b@x"}]})");
    ASSERT_TRUE(d);
    ASSERT_EQ(d->size(), 2u);
    EXPECT_EQ((*d)[0], (std::pair<std::string, std::string>{"a@x", "inactive"}));
    // A paged entry without status: not known, never assumed active.
    EXPECT_EQ((*d)[1].second, "");
    EXPECT_FALSE(parse_developers(R"({"developer": [["a@x"]]})"));
    EXPECT_EQ(parse_developer_status(R"({"email": "a@x", "status": "inactive"})").value(),
              owner_status::inactive);
    EXPECT_EQ(parse_developer_status(R"({"email": "a@x", "status": "active"})").value(),
              owner_status::active);
    EXPECT_EQ(parse_developer_status(R"({"email": "a@x", "status": "banned"})").value(),
              owner_status::other);
    EXPECT_EQ(parse_developer_status(R"({"email": "a@x"})").value(), owner_status::not_known);
    // totalSize, as a string (Google's int64) or a number; -1 when absent.
    EXPECT_EQ(parse_app_page(R"({"totalSize": "1200"})", "o")->total_size, 1200);
    EXPECT_EQ(parse_app_page(R"({"totalSize": 7})", "o")->total_size, 7);
    EXPECT_EQ(parse_app_page("{}", "o")->total_size, -1);
    // A team app: appGroup, no developer.
    auto t = parse_app(R"({"name": "t", "appGroup": "team-a"})", "o");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->app_group, "team-a");
    EXPECT_EQ(t->developer_email, "");
}

TEST(ApigeeJson, GoogleErrors) {
    google_error g;
    ASSERT_TRUE(parse_google_error(
        R"({"error": {"code": 409, "message": "already exists", "status": "ALREADY_EXISTS"}})", g));
    EXPECT_EQ(g.code, 409);
    EXPECT_EQ(g.status, "ALREADY_EXISTS");
    EXPECT_EQ(g.message, "already exists");
    google_error h;
    EXPECT_FALSE(parse_google_error("<html>", h));
    EXPECT_FALSE(parse_google_error(R"({"error": "x"})", h));
    EXPECT_TRUE(parse_google_error(R"({"error": {"code": "x", "message": 5}})", h));
    EXPECT_EQ(h.code, 0);
}

TEST(ApigeeJson, GenerateKeyBody) {
    app a;
    a.name = "shop";
    a.attributes = {{"Notes", "n"}, {"tier", "gold"}};
    a.callback_url = "https://cb";
    a.api_products = {"payments"};
    a.scopes = {"read"};
    a.app_family = "fam";
    a.key_expires_in = 90 * k_day;
    auto j = json::parse(generate_key_body(a));
    EXPECT_EQ(j["name"], "shop");
    EXPECT_EQ(j["attributes"][1]["value"], "gold");
    EXPECT_EQ(j["callbackUrl"], "https://cb");
    EXPECT_EQ(j["apiProducts"], json::array({"payments"}));
    EXPECT_EQ(j["scopes"], json::array({"read"}));
    EXPECT_EQ(j["appFamily"], "fam");
    EXPECT_EQ(j["keyExpiresIn"], std::to_string((90 * k_day).count()));
    a.key_expires_in = std::nullopt;
    a.app_family.clear();
    auto j2 = json::parse(generate_key_body(a));
    EXPECT_FALSE(j2.contains("keyExpiresIn"));
    EXPECT_FALSE(j2.contains("appFamily"));
    // Round trip through the parser keeps attributes and callback.
    auto back = parse_app(generate_key_body(a), "o");
    ASSERT_TRUE(back);
    EXPECT_EQ(back->attributes, a.attributes);
    EXPECT_EQ(back->callback_url, a.callback_url);
    EXPECT_EQ(back->api_products, a.api_products);
    // Invalid UTF-8 in a value does not throw.
    a.attributes[0].value = "\xff";
    EXPECT_NO_THROW((void)generate_key_body(a));
}

TEST(ApigeeJson, KeyBodies) {
    new_key k;
    k.consumer_key = secret("ck");
    k.consumer_secret = secret("cs");
    k.expires_in = std::chrono::seconds(3600);
    k.attributes = {{"keyrotd_replaces", "pending:abc"}};
    auto j = json::parse(create_key_body(k));
    EXPECT_EQ(j["consumerKey"], "ck");
    EXPECT_EQ(j["consumerSecret"], "cs");
    EXPECT_EQ(j["expiresInSeconds"], "3600");
    EXPECT_FALSE(j.contains("apiProducts"));
    // A key without products may refuse scopes: they are set after the products.
    EXPECT_FALSE(j.contains("scopes"));
    k.expires_in = std::nullopt;
    EXPECT_FALSE(json::parse(create_key_body(k)).contains("expiresInSeconds"));

    std::vector<attribute> attrs{{"a", "b"}};
    auto u = json::parse(update_key_body({"p1", "p2"}, attrs));
    EXPECT_EQ(u["apiProducts"], json::array({"p1", "p2"}));
    EXPECT_EQ(u["attributes"][0]["name"], "a");
    // An update with no attributes left still says so: an empty list, not a missing field.
    EXPECT_EQ(json::parse(update_key_body({"p"}, {}))["attributes"], json::array());
    auto sb = json::parse(scopes_body({"x"}, attrs));
    EXPECT_EQ(sb["scopes"], json::array({"x"}));
    EXPECT_EQ(sb["attributes"][0]["value"], "b");
    app a;
    a.name = "n";
    a.api_products = {"p"};
    EXPECT_FALSE(json::parse(update_app_body(a)).contains("apiProducts"));
}

TEST(ApigeeJson, TeamApps) {
    // keyExpiresIn is in seconds on a team app, in milliseconds on a developer app.
    auto team =
        parse_app(R"({"name": "portal", "appGroup": "partners", "keyExpiresIn": "7776000"})", "o");
    ASSERT_TRUE(team);
    EXPECT_EQ(team->app_group, "partners");
    EXPECT_EQ(team->key_expires_in, milliseconds(7776000LL * 1000));
    auto dev =
        parse_app(R"({"name": "shop", "developerEmail": "d@x", "keyExpiresIn": "7776000"})", "o");
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->key_expires_in, milliseconds(7776000));
    EXPECT_FALSE(
        parse_app(R"({"name": "p", "appGroup": "g", "keyExpiresIn": "9223372036854776"})", "o"))
        << "seconds that overflow in milliseconds";
    auto never = parse_app(R"({"name": "p", "appGroup": "g", "keyExpiresIn": "-1"})", "o");
    ASSERT_TRUE(never);
    EXPECT_EQ(never->key_expires_in, std::nullopt);

    auto groups = parse_app_groups(
        R"({"appGroups": [{"name": "a", "status": "active"}, {"name": "b"}], "nextPageToken": "t"})");
    ASSERT_TRUE(groups);
    EXPECT_EQ(groups->first,
              (std::vector<std::pair<std::string, std::string>>{{"a", "active"}, {"b", ""}}));
    EXPECT_EQ(groups->second, "t");
    EXPECT_FALSE(parse_app_groups(R"({"appGroups": [{"status": "active"}]})")) << "no name";
    EXPECT_FALSE(parse_app_groups(R"({"appGroups": {}})"));
    auto empty = parse_app_groups("{}");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->first.empty());

    EXPECT_EQ(json::parse(team_key_action_body(true)), json::parse(R"({"action": "approve"})"));
    const std::vector<std::string> scopes{"read"};
    EXPECT_EQ(json::parse(team_update_key_body({"p"}, {{"m", "v"}}, &scopes)),
              json::parse(R"({"apiProducts": ["p"], "appGroupAppKey": {
                              "attributes": [{"name": "m", "value": "v"}], "scopes": ["read"]}})"));
}

}  // namespace apigee_json_test
