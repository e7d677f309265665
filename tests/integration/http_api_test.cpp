// keyrot::apigee::api over the real HTTP client and a scripted server: paths,
// bodies, auth renewal after 401, Google error mapping and redaction.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "apigee/api.hpp"
#include "apigee/connect.hpp"
#include "auth/token_source.hpp"
#include "common/fingerprint.hpp"
#include "http/client.hpp"
#include "http_test_server.hpp"
#include "policy/config.hpp"
#include "unit/http_run_sync.hpp"

namespace http_api_test {

using namespace keyrot;
using namespace keyrot::testing;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// Counts invalidate() calls; hands out "Bearer t<generation>".
class counting_source final : public auth::token_source {
  public:
    int generation = 1;
    int invalidations = 0;
    net::awaitable<result<secret>> authorization_header() override {
        co_return secret("Bearer t" + std::to_string(generation));
    }
    void invalidate() override {
        ++invalidations;
        ++generation;
    }
    std::string describe() const override { return "counting"; }
};

struct fixture {
    net::io_context io;
    std::unique_ptr<http::client> client;
    counting_source auth;
    std::unique_ptr<apigee::api> api;

    explicit fixture(const test_server& srv) {
        http::options o;
        o.base_url = srv.url();
        o.requests_per_second = 0;
        o.backoff_base = 10ms;
        o.https_proxy = "";
        auto c = http::client::create(io.get_executor(), o);
        if (!c) throw std::runtime_error(c.err().describe());
        client = std::move(c.value());
        api = std::make_unique<apigee::api>(*client, auth, "acme");
    }
    template <typename T>
    T run(net::awaitable<T> aw) {
        return run_sync(io, std::move(aw));
    }
};

test_reply json_reply(const json& j, int status = 200) {
    test_reply r;
    r.status = status;
    r.body = j.dump();
    return r;
}

const char* k_key = "Key-With_Dash123";

}  // namespace

TEST(ApigeeApi, GetAppEncodesPathsAndParses) {
    test_server srv([](const test_request& r) {
        if (r.target != "/v1/organizations/acme/developers/dev%40x.com/apps/my%20app")
            return json_reply({{"error", {{"code", 404}, {"status", "NOT_FOUND"}}}}, 404);
        return json_reply(
            {{"name", "my app"}, {"credentials", {{{"consumerKey", "ck"}, {"expiresAt", "-1"}}}}});
    });
    fixture f(srv);
    auto a = f.run(f.api->get_app("dev@x.com", "my app"));
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->organization, "acme");
    EXPECT_EQ(a->credentials[0].fingerprint, fingerprint("ck"));
    EXPECT_EQ(srv.requests()[0].headers["authorization"], "Bearer t1");
}

TEST(ApigeeApi, RenewsTheTokenOnceAfter401) {
    test_server srv([](const test_request& r) {
        if (r.headers.at("authorization") != "Bearer t2")
            return json_reply({{"error", {{"code", 401}, {"status", "UNAUTHENTICATED"}}}}, 401);
        return json_reply({{"name", "a"}});
    });
    fixture f(srv);
    auto a = f.run(f.api->get_app("d", "a"));
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(f.auth.invalidations, 1);

    f.auth.generation = 5;  // a token the server never accepts
    auto b = f.run(f.api->get_app("d", "a"));
    ASSERT_FALSE(b);
    EXPECT_TRUE(b.err().is_status(401));
    EXPECT_EQ(b.err().code, "UNAUTHENTICATED");
    EXPECT_EQ(f.auth.invalidations, 2);  // once per call, not in a loop
}

TEST(ApigeeApi, GoogleErrorsAreMappedAndScrubbed) {
    test_server srv([](const test_request& r) {
        json body = json::parse(r.body);
        std::string key = body["consumerKey"];
        return json_reply(
            {{"error",
              {{"code", 409},
               {"status", "ALREADY_EXISTS"},
               {"message", "Key " + key + " already exists\n" + std::string(500, 'z')}}}},
            409);
    });
    fixture f(srv);
    apigee::new_key k;
    k.consumer_key = secret(k_key);
    k.consumer_secret = secret("s3cr3t");
    k.expires_in = 3600s;
    auto c = f.run(f.api->create_key("dev@x.com", "app", k));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().what, error::kind::http);
    EXPECT_EQ(c.err().status, 409);
    EXPECT_EQ(c.err().code, "ALREADY_EXISTS");
    EXPECT_EQ(c.err().message.find(k_key), std::string::npos) << c.err().message;
    EXPECT_NE(c.err().message.find("Key *** already exists"), std::string::npos);
    EXPECT_EQ(c.err().message.find('\n'), std::string::npos);
    EXPECT_LT(c.err().message.size(), 320u);
    auto req = srv.requests()[0];
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.target, "/v1/organizations/acme/developers/dev%40x.com/apps/app/keys");
    auto body = json::parse(req.body);
    EXPECT_EQ(body["expiresInSeconds"], "3600");
    EXPECT_FALSE(body.contains("apiProducts"));
    EXPECT_EQ(srv.requests().size(), 1u);  // a create is never retried
}

TEST(ApigeeApi, KeyCallsUseEncodedKeysAndActions) {
    test_server srv([](const test_request& r) {
        if (r.target.find("action=") != std::string::npos) {
            test_reply rep;
            rep.status = 204;
            return rep;
        }
        if (r.method == "DELETE") return json_reply({{"consumerKey", k_key}});
        return json_reply({{"consumerKey", k_key},
                           {"status", "approved"},
                           {"apiProducts", {{{"apiproduct", "p"}, {"status", "approved"}}}}});
    });
    fixture f(srv);
    secret key(k_key);
    std::string base = std::string("/v1/organizations/acme/developers/d/apps/a/keys/") + k_key;
    ASSERT_TRUE(f.run(f.api->get_key("d", "a", key)));
    auto u = f.run(f.api->update_key("d", "a", key, {"p"}, std::vector<attribute>{{"x", "y"}}));
    ASSERT_TRUE(u);
    EXPECT_EQ(u->products[0], (product_grant{"p", approval::approved}));
    ASSERT_TRUE(
        f.run(f.api->replace_key_scopes("d", "a", key, {"s"}, std::vector<attribute>{{"x", "y"}})));
    ASSERT_TRUE(f.run(f.api->set_key_status("d", "a", key, false)));
    ASSERT_TRUE(f.run(f.api->set_key_product_status("d", "a", key, "p 1", true)));
    ASSERT_TRUE(f.run(f.api->delete_key("d", "a", key)));
    auto log = srv.requests();
    ASSERT_EQ(log.size(), 6u);
    EXPECT_EQ(log[0].method + " " + log[0].target, "GET " + base);
    EXPECT_EQ(log[1].method + " " + log[1].target, "POST " + base);
    EXPECT_EQ(json::parse(log[1].body)["attributes"][0]["name"], "x");
    EXPECT_EQ(log[2].method + " " + log[2].target, "PUT " + base);
    EXPECT_EQ(json::parse(log[2].body)["attributes"][0]["name"], "x");
    EXPECT_EQ(log[3].target, base + "?action=revoke");
    EXPECT_EQ(log[3].headers["content-type"], "application/octet-stream");
    EXPECT_EQ(log[4].target, base + "/apiproducts/p%201?action=approve");
    EXPECT_EQ(log[5].method, "DELETE");
}

TEST(ApigeeApi, TeamKeyCallsUseTheirPathsAndBodies) {
    test_server srv([](const test_request& r) {
        if (r.target.find("action=") != std::string::npos) {
            test_reply rep;
            rep.status = 204;
            return rep;
        }
        if (r.target.find("/appgroups?") != std::string::npos)
            return r.target.find("pageToken=") == std::string::npos
                       ? json_reply({{"appGroups", {{{"name", "a-team"}, {"status", "active"}}}},
                                     {"nextPageToken", "t2"}})
                       : json_reply(
                             {{"appGroups", {{{"name", "b-team"}, {"status", "inactive"}}}}});
        if (r.target.ends_with("/appgroups/a-team")) return json_reply({{"status", "inactive"}});
        return json_reply({{"consumerKey", k_key}, {"status", "approved"}});
    });
    fixture f(srv);
    secret key(k_key);
    const apigee::app_owner team = apigee::app_owner::of_team("a team");
    std::string base =
        std::string("/v1/organizations/acme/appgroups/a%20team/apps/a/keys/") + k_key;
    ASSERT_TRUE(f.run(f.api->get_key(team, "a", key)));
    ASSERT_TRUE(
        f.run(f.api->update_key(team, "a", key, {"p"}, std::vector<attribute>{{"x", "y"}})));
    ASSERT_TRUE(f.run(
        f.api->replace_key_scopes(team, "a", key, {"s"}, std::vector<attribute>{{"x", "y"}})));
    ASSERT_TRUE(f.run(f.api->set_key_status(team, "a", key, false)));
    ASSERT_TRUE(f.run(f.api->set_key_product_status(team, "a", key, "p", true)));
    ASSERT_TRUE(f.run(f.api->delete_key(team, "a", key)));
    // No generate-key call and no app update for a team app: refused before sending.
    app body;
    body.name = "a";
    EXPECT_FALSE(f.run(f.api->generate_key(team, body)));
    EXPECT_FALSE(f.run(f.api->update_app(team, body)));
    auto groups = f.run(f.api->list_app_groups());
    ASSERT_TRUE(groups);
    EXPECT_EQ(groups.value(), (std::vector<std::pair<std::string, std::string>>{
                                  {"a-team", "active"}, {"b-team", "inactive"}}));
    auto st = f.run(f.api->get_app_group_status("a-team"));
    ASSERT_TRUE(st);
    EXPECT_EQ(st.value(), owner_status::inactive);
    auto log = srv.requests();
    ASSERT_EQ(log.size(), 9u);
    EXPECT_EQ(log[0].method + " " + log[0].target, "GET " + base);
    EXPECT_EQ(log[1].method + " " + log[1].target, "POST " + base);
    EXPECT_EQ(json::parse(log[1].body), json::parse(R"({"apiProducts": ["p"],
                              "appGroupAppKey": {"attributes": [{"name": "x", "value": "y"}]}})"));
    EXPECT_EQ(log[2].method + " " + log[2].target, "POST " + base);
    EXPECT_EQ(json::parse(log[2].body), json::parse(R"({"apiProducts": [], "appGroupAppKey": {
                              "attributes": [{"name": "x", "value": "y"}], "scopes": ["s"]}})"));
    EXPECT_EQ(log[3].method + " " + log[3].target, "POST " + base);
    EXPECT_EQ(json::parse(log[3].body), json::parse(R"({"action": "revoke"})"));
    EXPECT_EQ(log[4].target, base + "/apiproducts/p?action=approve");
    EXPECT_EQ(log[5].method + " " + log[5].target, "DELETE " + base);
    EXPECT_EQ(log[6].target, "/v1/organizations/acme/appgroups?pageSize=1000");
    EXPECT_EQ(log[7].target, "/v1/organizations/acme/appgroups?pageSize=1000&pageToken=t2");
    EXPECT_EQ(log[8].target, "/v1/organizations/acme/appgroups/a-team");
}

// A team key's approve/revoke carries its action in the body, not in
// ?action=: it is repeated after a 503 like a developer key's, while the team
// key update (a POST that adds products) is still sent once.
TEST(ApigeeApi, TeamKeyActionIsRetriedAndTeamKeyUpdateIsNot) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    test_server srv([calls](const test_request&) {
        if (calls->fetch_add(1) == 0) return json_reply({{"error", {{"code", 503}}}}, 503);
        test_reply rep;
        rep.status = 204;
        return rep;
    });
    fixture f(srv);
    secret key(k_key);
    const apigee::app_owner team = apigee::app_owner::of_team("a-team");
    auto r = f.run(f.api->set_key_status(team, "a", key, false));
    ASSERT_TRUE(r) << r.err().describe() << " after " << srv.requests().size() << " requests";
    ASSERT_EQ(srv.requests().size(), 2u);
    EXPECT_EQ(json::parse(srv.requests()[1].body), json::parse(R"({"action": "revoke"})"));

    calls->store(0);
    EXPECT_FALSE(
        f.run(f.api->update_key(team, "a", key, {"p"}, std::vector<attribute>{{"x", "y"}})));
    EXPECT_EQ(srv.requests().size(), 3u);  // one more: not repeated
}

TEST(ApigeeApi, ListsPagesAndDevelopers) {
    test_server srv([](const test_request& r) {
        if (r.target.starts_with("/v1/organizations/acme/apps?")) {
            if (r.target.find("pageToken=") == std::string::npos)
                return json_reply({{"app", {{{"name", "a1"}}}}, {"nextPageToken", "t/2"}});
            return json_reply({{"app", {{{"name", "a2"}}}}});
        }
        return json_reply({{"developer",
                            {{{"email", "a@x"}, {"status", "active"}},
                             {{"email", "b@x"}, {"status", "inactive"}}}}});
    });
    fixture f(srv);
    auto p1 = f.run(f.api->list_apps_page("", 1000, approval::revoked));
    ASSERT_TRUE(p1);
    EXPECT_EQ(p1->next_page_token, "t/2");
    auto p2 = f.run(f.api->list_apps_page(p1->next_page_token, 1000, approval::approved));
    ASSERT_TRUE(p2);
    EXPECT_EQ(p2->apps[0].name, "a2");
    EXPECT_EQ(p2->next_page_token, "");
    auto log = srv.requests();
    EXPECT_EQ(
        log[0].target,
        "/v1/organizations/acme/apps?expand=true&includeCred=true&pageSize=1000&keyStatus=revoked");
    EXPECT_NE(log[1].target.find("pageToken=t%2F2"), std::string::npos);
    auto devs = f.run(f.api->list_developers());
    ASSERT_TRUE(devs);
    ASSERT_EQ(devs->size(), 2u);
    EXPECT_EQ((*devs)[1].second, "inactive");
}

TEST(ApigeeApi, NonJsonAnswersAreProtocolErrors) {
    test_server srv([](const test_request&) {
        test_reply r;
        r.body = "<html>oops</html>";
        return r;
    });
    fixture f(srv);
    auto a = f.run(f.api->get_app("d", "a"));
    ASSERT_FALSE(a);
    EXPECT_EQ(a.err().what, error::kind::protocol);
    EXPECT_NE(a.err().message.find("GET /v1/organizations/acme/developers/d/apps/a"),
              std::string::npos)
        << a.err().message;
    EXPECT_NE(a.err().message.find("not valid JSON"), std::string::npos);
}

TEST(ApigeeApi, GenerateKeySendsTheWholeApp) {
    test_server srv([](const test_request& r) { return json_reply(json::parse(r.body)); });
    fixture f(srv);
    app body;
    body.name = "a";
    body.attributes = {{"Notes", "n"}};
    body.callback_url = "https://cb";
    body.api_products = {"p"};
    body.key_expires_in = 1000ms;
    auto a = f.run(f.api->generate_key("d", body));
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->attributes, body.attributes);
    auto j = json::parse(srv.requests()[0].body);
    EXPECT_EQ(j["keyExpiresIn"], "1000");
    EXPECT_EQ(j["callbackUrl"], "https://cb");
}

TEST(ApigeeConnect, BuildsFromConfig) {
    test_server srv([](const test_request&) { return json_reply({{"name", "a"}}); });
    policy::apigee_config cfg;
    cfg.url = srv.url();
    cfg.auth.method = policy::auth_method::none;
    net::io_context io;
    int observed = 0;
    auto c = apigee::connect(io.get_executor(), cfg, "acme",
                             [&](std::string_view, int, double) { ++observed; });
    ASSERT_TRUE(c) << c.err().describe();
    auto a = run_sync(io, c.value()->org_api->get_app("d", "a"));
    ASSERT_TRUE(a);
    EXPECT_EQ(observed, 1);
    EXPECT_EQ(srv.requests()[0].headers.count("authorization"), 0u);

    cfg.auth.method = policy::auth_method::google;
    cfg.auth.path = "/nonexistent/key.json";
    auto g = apigee::connect(io.get_executor(), cfg, "acme");
    ASSERT_FALSE(g);
    EXPECT_EQ(g.err().what, error::kind::config);
    EXPECT_NE(g.err().message.find("/nonexistent/key.json"), std::string::npos);
    cfg.url = "http://apigee.googleapis.com";
    cfg.auth.method = policy::auth_method::none;
    EXPECT_FALSE(apigee::connect(io.get_executor(), cfg, "acme"));
}

namespace {

std::string b64url_decode(std::string s) {
    for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4) s.push_back('=');
    std::string out(s.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    if (n < 0) return {};
    std::size_t pad = 0;
    while (pad < 2 && s.size() > pad && s[s.size() - 1 - pad] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

net::awaitable<void> count_ok(apigee::api& api, int& ok_calls) {
    auto r = co_await api.get_app("d", "a");
    if (r) ++ok_calls;
}

bool verify_rs256(EVP_PKEY* key, const std::string& input, const std::string& sig) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                            sig.size(), reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
}

}  // namespace

TEST(GoogleAuth, ServiceAccountJwtGrantAndRenewalAfter401) {
    namespace fs = std::filesystem;
    auto dir = fs::temp_directory_path() / ("keyrot_google_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string pem_path = (dir / "sa.pem").string();
    ASSERT_EQ(std::system(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '" +
                           pem_path + "' 2>/dev/null")
                              .c_str()),
              0);
    std::ifstream pin(pem_path);
    std::string pem((std::istreambuf_iterator<char>(pin)), std::istreambuf_iterator<char>());
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    ASSERT_TRUE(key);

    std::mutex mu;
    int minted = 0;
    std::string current;  // the token the API accepts
    std::string token_uri;
    std::vector<std::string> problems;
    test_server srv([&](const test_request& r) {
        std::lock_guard lock(mu);
        if (r.target == "/token") {
            const std::string prefix =
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
            if (!r.body.starts_with(prefix)) problems.push_back("grant_type");
            std::string jwt = r.body.substr(prefix.size());
            auto d1 = jwt.find('.'), d2 = jwt.rfind('.');
            auto header = json::parse(b64url_decode(jwt.substr(0, d1)), nullptr, false);
            auto claims =
                json::parse(b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1)), nullptr, false);
            if (!verify_rs256(key.get(), jwt.substr(0, d2), b64url_decode(jwt.substr(d2 + 1))))
                problems.push_back("signature");
            if (header.value("alg", "") != "RS256" || header.value("kid", "") != "kid-1")
                problems.push_back("header");
            if (claims.value("iss", "") != "kr@p.iam.gserviceaccount.com" ||
                claims.value("aud", "") != token_uri ||
                claims.value("scope", "") != "https://www.googleapis.com/auth/cloud-platform" ||
                claims.value("exp", 0) - claims.value("iat", 0) != 3600)
                problems.push_back("claims " + claims.dump());
            current = "ya29.tok" + std::to_string(++minted);
            return json_reply(
                {{"access_token", current}, {"expires_in", 3600}, {"token_type", "Bearer"}});
        }
        if (r.headers.count("authorization") == 0 ||
            r.headers.at("authorization") != "Bearer " + current)
            return json_reply({{"error", {{"code", 401}, {"status", "UNAUTHENTICATED"}}}}, 401);
        return json_reply({{"name", "a"}});
    });
    token_uri = srv.url() + "/token";
    std::string key_file = (dir / "key.json").string();
    {
        std::ofstream out(key_file);
        out << json{{"type", "service_account"},
                    {"client_email", "kr@p.iam.gserviceaccount.com"},
                    {"private_key_id", "kid-1"},
                    {"private_key", pem},
                    {"token_uri", token_uri}}
                   .dump();
    }
    policy::apigee_config cfg;
    cfg.url = srv.url();
    cfg.auth.method = policy::auth_method::google;
    cfg.auth.path = key_file;
    net::io_context io;
    auto c = apigee::connect(io.get_executor(), cfg, "acme");
    ASSERT_TRUE(c) << c.err().describe();
    // Four calls at once share one token request.
    int ok_calls = 0;
    for (int i = 0; i < 4; ++i)
        net::co_spawn(io, count_ok(*c.value()->org_api, ok_calls), [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run();
    io.restart();
    EXPECT_EQ(ok_calls, 4);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(run_sync(io, c.value()->org_api->get_app("d", "a")));
    {
        std::lock_guard lock(mu);
        EXPECT_EQ(minted, 1);  // cached
        current = "revoked-elsewhere";
    }
    auto again = run_sync(io, c.value()->org_api->get_app("d", "a"));
    ASSERT_TRUE(again) << again.err().describe();
    {
        std::lock_guard lock(mu);
        EXPECT_EQ(minted, 2);  // renewed after the 401
        EXPECT_TRUE(problems.empty()) << problems.front();
    }

    // Key files that cannot work fail at start-up.
    {
        std::ofstream out(key_file);
        out << json{{"type", "authorized_user"}}.dump();
    }
    auto user = apigee::connect(io.get_executor(), cfg, "acme");
    ASSERT_FALSE(user);
    EXPECT_NE(user.err().message.find("service_account"), std::string::npos);
    {
        std::ofstream out(key_file);
        out << json{{"type", "service_account"},
                    {"client_email", "x"},
                    {"private_key",
                     "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}}
                   .dump();
    }
    auto bad = apigee::connect(io.get_executor(), cfg, "acme");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.err().message.find("not an RSA PEM key"), std::string::npos);
    fs::remove_all(dir);
}

}  // namespace http_api_test
