// edge-oauth (Apigee Edge's login server) and its TOTP codes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "auth/token_source.hpp"
#include "auth/totp.hpp"
#include "common/codec.hpp"
#include "http/transport.hpp"
#include "http_run_sync.hpp"
#include "policy/config.hpp"

namespace auth_edge_test {

using namespace keyrot;
using keyrot::testing::run_sync;
using json = nlohmann::json;

// ---------------------------------------------------------------------------
// RFC 6238, Appendix B: the SHA-1 vectors (seed "12345678901234567890", 8 digits).

// RFC 6238's T: seconds since the epoch.
static std::chrono::sys_seconds unix_at(std::int64_t t) {
    return std::chrono::sys_seconds(std::chrono::seconds(t));
}

TEST(Totp, Rfc6238Sha1Vectors) {
    const std::string seed = "12345678901234567890";
    const std::pair<std::int64_t, const char*> vectors[] = {
        {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
        {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
    };
    for (const auto& [t, code] : vectors)
        EXPECT_EQ(auth::totp(seed, unix_at(t), 8), code) << "T=" << t;
    // Edge's codes: the last six digits, zero-padded.
    EXPECT_EQ(auth::totp(seed, unix_at(59)), "287082");
    EXPECT_EQ(auth::totp(seed, unix_at(1111111109)), "081804");
    // The same 30-second step, the same code.
    EXPECT_EQ(auth::totp(seed, unix_at(60)), auth::totp(seed, unix_at(89)));
    EXPECT_NE(auth::totp(seed, unix_at(89)), auth::totp(seed, unix_at(90)));
}

TEST(Totp, Base32) {
    // RFC 4648's test vectors, and the RFC 6238 seed as authenticators show it.
    EXPECT_EQ(base32_decode("MZXW6YTBOI======").value(), "foobar");
    EXPECT_EQ(base32_decode("my======").value(), "f");
    EXPECT_EQ(base32_decode("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ\n").value(),
              "12345678901234567890");
    EXPECT_FALSE(base32_decode("GEZD1"));  // 1 is not base32
    EXPECT_FALSE(base32_decode(" == "));
}

// ---------------------------------------------------------------------------
// The token source against a scripted login server.

namespace {

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
    auto dir = std::filesystem::temp_directory_path() /
               ("keyrot_auth_edge_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / name, std::ios::trunc) << content;
    return dir / name;
}

std::map<std::string, std::string> form(const std::string& body) {
    std::map<std::string, std::string> out;
    std::size_t p = 0;
    while (p <= body.size()) {
        auto amp = body.find('&', p);
        if (amp == std::string::npos) amp = body.size();
        const std::string kv = body.substr(p, amp - p);
        const auto eq = kv.find('=');
        if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
        p = amp + 1;
    }
    return out;
}

struct login_server final : http::transport {
    std::vector<http::request> seen;
    std::vector<std::map<std::string, std::string>> forms;
    int issued = 0;
    bool refuse_refresh = false;
    bool refuse_password = false;
    int delay_ms = 0;  // the answer takes this long (callers overlap meanwhile)
    net::awaitable<result<http::response>> send(http::request req) override {
        forms.push_back(form(req.body));
        seen.push_back(req);
        if (delay_ms > 0) {
            net::steady_timer t(co_await net::this_coro::executor,
                                std::chrono::milliseconds(delay_ms));
            co_await t.async_wait(net::use_awaitable);
        }
        http::response r;
        const auto& f = forms.back();
        if ((f.at("grant_type") == "refresh_token" && refuse_refresh) ||
            (f.at("grant_type") == "password" && refuse_password)) {
            r.status = 401;
            r.body = R"({"error": "invalid_token", "error_description": "expired"})";
            co_return r;
        }
        ++issued;
        r.status = 200;
        r.body = json{
            {"access_token", "at-" + std::to_string(issued)},
            {"token_type", "bearer"},
            {"refresh_token", "rt-" + std::to_string(issued)},
            {"expires_in",
             1799}}.dump();
        co_return r;
    }
};

struct fixture {
    net::io_context io;
    login_server* server = nullptr;
    sys_ms now = unix_at(1111111109);
    std::unique_ptr<auth::token_source> source;
    explicit fixture(const policy::auth_config& cfg) {
        auto s = std::make_unique<login_server>();
        server = s.get();
        source = auth::make_edge_oauth_over(std::move(s), io.get_executor(), "/oauth/token", cfg,
                                            [this] { return now; });
    }
    result<secret> header() { return run_sync(io, source->authorization_header()); }
};

policy::auth_config password_cfg(bool mfa) {
    policy::auth_config c;
    c.method = policy::auth_method::edge_oauth;
    c.user = "ops@example.com";
    c.password_file = temp_file("pw", "p@ss word&x\n").string();
    if (mfa) c.mfa_seed_file = temp_file("seed", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").string();
    return c;
}

}  // namespace

TEST(EdgeOAuth, PasswordGrantWithMfaCode) {
    fixture f(password_cfg(true));
    auto h = f.header();
    ASSERT_TRUE(h) << h.err().describe();
    EXPECT_EQ(h->reveal(), "Bearer at-1");
    ASSERT_EQ(f.server->seen.size(), 1u);
    const auto& req = f.server->seen[0];
    EXPECT_EQ(req.method, "POST");
    // The code of the clock's step (RFC 6238's T=1111111109), in the query.
    EXPECT_EQ(req.target, "/oauth/token?mfa_token=081804");
    EXPECT_EQ(req.authorization.reveal(), "Basic ZWRnZWNsaTplZGdlY2xpc2VjcmV0");
    EXPECT_EQ(req.content_type, "application/x-www-form-urlencoded");
    const auto& fm = f.server->forms[0];
    EXPECT_EQ(fm.at("grant_type"), "password");
    EXPECT_EQ(fm.at("username"), "ops%40example.com");
    EXPECT_EQ(fm.at("password"), "p%40ss%20word%26x");  // trimmed, form-encoded
    // Cached while fresh.
    EXPECT_EQ(f.header()->reveal(), "Bearer at-1");
    EXPECT_EQ(f.server->seen.size(), 1u);
}

net::awaitable<void> header_into(auth::token_source& src, std::vector<std::string>& out) {
    auto h = co_await src.authorization_header();
    out.push_back(h ? h->reveal() : "error: " + h.err().describe());
}

TEST(EdgeOAuth, ConcurrentCallersShareOneTokenRequest) {
    fixture f(password_cfg(false));
    f.server->delay_ms = 20;
    std::vector<std::string> got;
    for (int i = 0; i < 5; ++i) net::co_spawn(f.io, header_into(*f.source, got), net::detached);
    f.io.run();
    EXPECT_EQ(got, std::vector<std::string>(5, "Bearer at-1"));
    EXPECT_EQ(f.server->seen.size(), 1u) << "one token request for five callers";
}

TEST(EdgeOAuth, RefreshesThenFallsBackToAFreshGrant) {
    fixture f(password_cfg(true));
    ASSERT_TRUE(f.header());
    // Near expiry: the refresh token, no password.
    f.now += std::chrono::seconds(1700);
    auto h = f.header();
    ASSERT_TRUE(h) << h.err().describe();
    EXPECT_EQ(h->reveal(), "Bearer at-2");
    ASSERT_EQ(f.server->forms.size(), 2u);
    EXPECT_EQ(f.server->forms[1].at("grant_type"), "refresh_token");
    EXPECT_EQ(f.server->forms[1].at("refresh_token"), "rt-1");
    EXPECT_EQ(f.server->forms[1].count("password"), 0u);
    EXPECT_EQ(f.server->seen[1].target, "/oauth/token");  // no MFA code for a refresh
    // A 401 on a management call: renew once, by refresh; refused: a full
    // grant with a fresh MFA code.
    f.server->refuse_refresh = true;
    f.now += std::chrono::seconds(30);
    f.source->invalidate();
    h = f.header();
    ASSERT_TRUE(h) << h.err().describe();
    EXPECT_EQ(h->reveal(), "Bearer at-3");
    ASSERT_EQ(f.server->forms.size(), 4u);
    EXPECT_EQ(f.server->forms[2].at("grant_type"), "refresh_token");
    EXPECT_EQ(f.server->forms[3].at("grant_type"), "password");
    EXPECT_NE(f.server->seen[3].target, f.server->seen[0].target);  // the next step's code
}

TEST(EdgeOAuth, RefusalsNameNoSecret) {
    fixture f(password_cfg(false));
    f.server->refuse_password = true;
    auto h = f.header();
    ASSERT_FALSE(h);
    EXPECT_EQ(h.err().what, error::kind::auth);
    EXPECT_NE(h.err().message.find("HTTP 401"), std::string::npos);
    EXPECT_NE(h.err().message.find("ops@example.com"), std::string::npos);
    EXPECT_EQ(h.err().message.find("p@ss"), std::string::npos);
    EXPECT_EQ(f.server->seen[0].target, "/oauth/token");  // no seed, no code
}

TEST(EdgeOAuth, SamlPasscodeIsNeverSentTwice) {
    policy::auth_config c;
    c.method = policy::auth_method::edge_oauth;
    c.passcode_file = temp_file("pc", "Xy12ab\n").string();
    fixture f(c);
    ASSERT_TRUE(f.header());
    const auto& fm = f.server->forms[0];
    EXPECT_EQ(fm.at("grant_type"), "password");
    EXPECT_EQ(fm.at("response_type"), "token");
    EXPECT_EQ(fm.at("passcode"), "Xy12ab");
    EXPECT_EQ(fm.count("username"), 0u);
    // The session ends (refresh refused): the same passcode is not sent again.
    f.server->refuse_refresh = true;
    f.source->invalidate();
    auto h = f.header();
    ASSERT_FALSE(h);
    EXPECT_NE(h.err().message.find("was used already"), std::string::npos);
    EXPECT_EQ(f.server->forms.size(), 2u);  // the refresh only
    // A fresh passcode in the file: a new session.
    temp_file("pc", "Zz99zz\n");
    h = f.header();
    ASSERT_TRUE(h) << h.err().describe();
    EXPECT_EQ(f.server->forms.back().at("passcode"), "Zz99zz");
}

TEST(EdgeOAuth, ABadSeedIsAnAuthError) {
    auto c = password_cfg(false);
    c.mfa_seed_file = temp_file("badseed", "not base32 1\n").string();
    fixture f(c);
    auto h = f.header();
    ASSERT_FALSE(h);
    EXPECT_NE(h.err().message.find("is not base32"), std::string::npos);
    EXPECT_TRUE(f.server->seen.empty());
}

}  // namespace auth_edge_test
