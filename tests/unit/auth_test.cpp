#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "auth/token_source.hpp"
#include "http_run_sync.hpp"
#include "policy/config.hpp"

namespace auth_test {

using namespace keyrot;
using keyrot::testing::run_sync;

namespace {
result<secret> header_of(auth::token_source& s) { return run_sync(s.authorization_header()); }

std::filesystem::path temp_file(const std::string& name) {
    auto dir =
        std::filesystem::temp_directory_path() / ("keyrot_auth_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir / name;
}

void write_file(const std::filesystem::path& p, const std::string& content) {
    std::ofstream out(p, std::ios::trunc);
    out << content;
}
}  // namespace

TEST(Auth, NoneSendsNothing) {
    auto s = auth::make_none();
    auto h = header_of(*s);
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->empty());
}

TEST(Auth, TokenEnv) {
    ::setenv("KEYROT_TEST_TOKEN", "  tok123\n", 1);
    auto s = auth::make_token_env("KEYROT_TEST_TOKEN");
    auto h = header_of(*s);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->reveal(), "Bearer tok123");
    ::setenv("KEYROT_TEST_TOKEN", "tok456", 1);
    EXPECT_EQ(header_of(*s)->reveal(), "Bearer tok456");  // read each time
    ::unsetenv("KEYROT_TEST_TOKEN");
    auto e = header_of(*s);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.err().what, error::kind::auth);
    EXPECT_NE(e.err().message.find("KEYROT_TEST_TOKEN"), std::string::npos);
    ::setenv("KEYROT_TEST_TOKEN", "a\r\nX-Evil: 1", 1);
    auto inj = header_of(*s);
    ASSERT_FALSE(inj);
    EXPECT_EQ(inj.err().message.find("Evil"), std::string::npos);
    ::unsetenv("KEYROT_TEST_TOKEN");
}

TEST(Auth, TokenFileRereadOnChange) {
    auto p = temp_file("token");
    write_file(p, "first\n");
    auto s = auth::make_token_file(p.string());
    EXPECT_EQ(header_of(*s)->reveal(), "Bearer first");
    // Same size, newer mtime: noticed.
    write_file(p, "secnd\n");
    auto t = std::filesystem::last_write_time(p);
    std::filesystem::last_write_time(p, t + std::chrono::seconds(2));
    EXPECT_EQ(header_of(*s)->reveal(), "Bearer secnd");
    // Different size: noticed even with the same mtime.
    write_file(p, "third-token\n");
    std::filesystem::last_write_time(p, t + std::chrono::seconds(2));
    EXPECT_EQ(header_of(*s)->reveal(), "Bearer third-token");
    // invalidate() forces a re-read even when nothing looks changed.
    s->invalidate();
    EXPECT_EQ(header_of(*s)->reveal(), "Bearer third-token");
    write_file(p, "  \n");
    std::filesystem::last_write_time(p, t + std::chrono::seconds(4));
    auto empty = header_of(*s);
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.err().message.find("empty"), std::string::npos);
    std::filesystem::remove(p);
    auto gone = header_of(*s);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.err().what, error::kind::auth);
}

TEST(Auth, Basic) {
    EXPECT_EQ(auth::base64(""), "");
    EXPECT_EQ(auth::base64("f"), "Zg==");
    EXPECT_EQ(auth::base64("fo"), "Zm8=");
    EXPECT_EQ(auth::base64("foo"), "Zm9v");
    ::setenv("KEYROT_TEST_USER", "me@example.com", 1);
    ::setenv("KEYROT_TEST_PASS", "pw:1", 1);
    auto s = auth::make_basic("KEYROT_TEST_USER", "KEYROT_TEST_PASS");
    EXPECT_EQ(header_of(*s)->reveal(), "Basic " + auth::base64("me@example.com:pw:1"));
    ::unsetenv("KEYROT_TEST_PASS");
    auto e = header_of(*s);
    ASSERT_FALSE(e);
    EXPECT_NE(e.err().message.find("KEYROT_TEST_PASS"), std::string::npos);
    ::unsetenv("KEYROT_TEST_USER");
}

TEST(Auth, FactoryChecksItsFields) {
    policy::auth_config c;
    c.method = policy::auth_method::google;
    ::unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    auto g = auth::make_token_source(c, nullptr);  // metadata server, but no client
    ASSERT_FALSE(g);
    EXPECT_EQ(g.err().what, error::kind::config);
    EXPECT_NE(g.err().message.find("needs an HTTP client"), std::string::npos);
    c.path = "/nonexistent.json";
    EXPECT_FALSE(auth::make_token_source(c, nullptr));
    c.path.clear();

    c.method = policy::auth_method::token_env;
    EXPECT_FALSE(auth::make_token_source(c, nullptr));  // no env given
    c.env = "X";
    auto ok = auth::make_token_source(c, nullptr);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok.value()->describe(), "token-env X");

    c.method = policy::auth_method::token_file;
    EXPECT_FALSE(auth::make_token_source(c, nullptr));
    c.method = policy::auth_method::basic;
    EXPECT_FALSE(auth::make_token_source(c, nullptr));
    c.method = policy::auth_method::none;
    EXPECT_TRUE(auth::make_token_source(c, nullptr));
    // The names, parsed once when the config is read (policy_test: an unknown one).
    for (auto m : {policy::auth_method::google, policy::auth_method::token_file,
                   policy::auth_method::token_env, policy::auth_method::basic,
                   policy::auth_method::none, policy::auth_method::edge_oauth})
        EXPECT_EQ(policy::parse_auth_method(policy::to_string(m)), m);
    EXPECT_FALSE(policy::parse_auth_method("kerberos"));
    EXPECT_FALSE(policy::parse_auth_method("Google"));
}

// Application Default Credentials order: auth.path, GOOGLE_APPLICATION_CREDENTIALS,
// $CREDENTIALS_DIRECTORY/sa-key.json (only when it exists), the metadata server.
TEST(Auth, GoogleCredentialsResolveInAdcOrder) {
    std::map<std::string, std::string> env;
    auth::env_fn lookup = [&](const char* n) -> const char* {
        auto it = env.find(n);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    auto dir =
        std::filesystem::temp_directory_path() / ("keyrot-adc-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);

    auto r = auth::find_google_credentials("", lookup);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->key_file, "");
    EXPECT_EQ(r->metadata_host, "169.254.169.254");

    env["GCE_METADATA_HOST"] = "127.0.0.1:8080";
    env["CREDENTIALS_DIRECTORY"] = dir.string();  // no sa-key.json in it yet
    r = auth::find_google_credentials("", lookup);
    EXPECT_EQ(r->key_file, "");
    EXPECT_EQ(r->metadata_host, "127.0.0.1:8080");
    EXPECT_EQ(r->origin, "GCE_METADATA_HOST");

    std::ofstream(dir / "sa-key.json") << "{}";
    r = auth::find_google_credentials("", lookup);
    EXPECT_EQ(r->key_file, (dir / "sa-key.json").string());
    EXPECT_EQ(r->origin, "$CREDENTIALS_DIRECTORY");

    env["GOOGLE_APPLICATION_CREDENTIALS"] = "/missing/key.json";  // wins even if missing
    r = auth::find_google_credentials("", lookup);
    EXPECT_EQ(r->key_file, "/missing/key.json");
    EXPECT_EQ(r->origin, "GOOGLE_APPLICATION_CREDENTIALS");

    r = auth::find_google_credentials("/etc/key.json", lookup);
    EXPECT_EQ(r->key_file, "/etc/key.json");
    EXPECT_EQ(r->origin, "auth.path");
    std::filesystem::remove_all(dir);
}

}  // namespace auth_test
