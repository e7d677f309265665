// keyrot::deliver targets against tests/integration/targets_server.py, a
// stand-in for the Kubernetes Secret API, Vault KV v2 and Secret Manager on
// 127.0.0.1 (port 0), started once per test. Each test is bounded by alarm().
// Besides the outcome, tests read the stand-in's state (what a consumer would
// read) and its request log (what was sent), and check that no error message
// or describe() holds key material.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "deliver/factory.hpp"
#include "deliver/fields.hpp"
#include "deliver/kube_secret.hpp"
#include "deliver/secret_manager.hpp"
#include "deliver/vault.hpp"
#include "unit/http_run_sync.hpp"

namespace deliver_loopback_test {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace keyrot;
using namespace keyrot::deliver;
using keyrot::testing::run_sync;
using nlohmann::json;

namespace {

constexpr const char* k_kube_token = "kube-sa-token-0123";
constexpr const char* k_vault_token = "hvs.static-token-4567";
constexpr const char* k_google_token = "ya29.google-token-89ab";

// The stand-in as a child process; its port comes on the first line of stdout.
class stand_in {
  public:
    stand_in() {
        int fds[2];
        if (::pipe(fds) != 0) throw std::runtime_error("pipe");
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], 1);
            ::close(fds[0]);
            ::close(fds[1]);
            ::execl(KEYROT_PYTHON, KEYROT_PYTHON, KEYROT_TARGETS_SERVER, "--kube-token",
                    k_kube_token, "--vault-token", k_vault_token, "--vault-role", "keyrotd",
                    "--google-token", k_google_token, static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[1]);
        pollfd p{fds[0], POLLIN, 0};
        std::string line;
        char c = 0;
        while (::poll(&p, 1, 10000) == 1 && ::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
        ::close(fds[0]);
        port_ = std::atoi(line.c_str());
        if (port_ <= 0) throw std::runtime_error("targets_server.py printed no port: " + line);
    }
    ~stand_in() {
        ::kill(pid_, SIGTERM);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    // A test hook (no auth): blocking, one connection per call.
    json hook(const std::string& path, const json& body = nullptr) const {
        net::io_context io;
        net::ip::tcp::socket sock(io);
        sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)});
        bhttp::request<bhttp::string_body> req{
            body.is_null() ? bhttp::verb::get : bhttp::verb::post, path, 11};
        req.set(bhttp::field::host, "127.0.0.1");
        if (!body.is_null()) req.body() = body.dump();
        req.prepare_payload();
        bhttp::write(sock, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(sock, buf, res);
        return res.body().empty() ? json() : json::parse(res.body());
    }
    json state() const { return hook("/__t/state"); }
    json log() const { return hook("/__t/log"); }
    void fail(const json& rule) const { hook("/__t/fail", rule); }
    void seed(const json& obj) const { hook("/__t/seed", obj); }
    // Requests with that method whose path contains `part`, and their statuses.
    std::vector<int> statuses(const std::string& method, const std::string& part) const {
        std::vector<int> out;
        for (const auto& e : log())
            if (e["method"] == method &&
                e["path"].get<std::string>().find(part) != std::string::npos)
                out.push_back(e["status"].get<int>());
        return out;
    }

  private:
    pid_t pid_ = -1;
    int port_ = 0;
};

payload make_payload(int n, bool with_previous) {
    const auto key = [](int i) {
        return "KEY" + std::to_string(i) + "-0123456789abcdefghijklmnopqrstuvwxyzABCD";
    };
    const auto sec = [](int i) {
        return "SECRET" + std::to_string(i) + "-0123456789abcdefghijklmnopqrstuvwxyz";
    };
    payload p;
    p.current = {secret(key(n)), secret(sec(n)), as_sys_ms(1795608000000) + milliseconds(n)};
    if (with_previous)
        p.previous = key_material{secret(key(n - 1)), secret(sec(n - 1)), time_or_never::never()};
    return p;
}

std::string key_of(int n) { return make_payload(n, false).current.consumer_key.reveal(); }
std::string secret_of(int n) { return make_payload(n, false).current.consumer_secret.reveal(); }

// No message may hold key material or a token.
void expect_clean(const std::string& text) {
    for (const char* needle : {"KEY1-", "KEY2-", "KEY3-", "SECRET1-", "SECRET2-", "SECRET3-",
                               k_kube_token, k_vault_token, k_google_token, "hvs."})
        EXPECT_EQ(text.find(needle), std::string::npos) << needle << " in: " << text;
}

class DeliverLoopback : public ::testing::Test {
  protected:
    void SetUp() override {
        ::alarm(60);  // a hung test dies instead of blocking the suite
        std::string t = (fs::temp_directory_path() / "deliver_test_XXXXXX").string();
        dir_ = ::mkdtemp(t.data());
        token_file_ = dir_ / "token";
        std::ofstream(token_file_) << k_kube_token << "\n";
        vault_token_file_ = dir_ / "vault-token";
        std::ofstream(vault_token_file_) << k_vault_token << "\n";
        auto c = http::client::create(io_.get_executor(), options(server_.url()));
        ASSERT_TRUE(c.ok()) << c.err().message;
        client_ = std::move(c.value());
    }
    void TearDown() override {
        ::alarm(0);
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    static http::options options(std::string url) {
        http::options o;
        o.base_url = std::move(url);
        o.timeout = 5 * k_second;
        o.connect_timeout = 5 * k_second;
        o.max_attempts = 1;
        o.requests_per_second = 0;
        o.https_proxy = "";
        o.no_proxy = "";
        return o;
    }

    template <typename T>
    T run(net::awaitable<T> aw) {
        return run_sync(io_, std::move(aw));
    }

    std::unique_ptr<target> kube(const std::string& name = "apigee-fleet") {
        return std::make_unique<kubernetes_secret_target>(
            *client_, token_file_.string(),
            kube_secret_place{"team-a", name, {{"reloader.stakater.com/match", "true"}}, {}});
    }

    google_auth google(std::string token = k_google_token) {
        google_auth g;
        google_token_ = std::move(token);
        g.header = [this]() { return google_header(); };
        g.invalidate = [this]() {
            ++invalidations_;
            google_token_ = k_google_token;
        };
        return g;
    }
    net::awaitable<result<secret>> google_header() { co_return secret("Bearer " + google_token_); }

    stand_in server_;
    net::io_context io_;
    std::unique_ptr<http::client> client_;
    fs::path dir_, token_file_, vault_token_file_;
    std::string google_token_;
    int invalidations_ = 0;
};

// ---------------------------------------------------------------- Kubernetes

TEST_F(DeliverLoopback, KubeCreateVerifyUpdateDrop) {
    auto t = kube();
    const payload p1 = make_payload(1, false);
    auto r1 = run(t->put(p1));
    ASSERT_TRUE(r1.ok()) << r1.err().describe();
    EXPECT_TRUE(r1->written);
    EXPECT_EQ(r1->key, p1.fingerprint());
    auto s = server_.state()["secrets"]["team-a/apigee-fleet"];
    EXPECT_EQ(s["metadata"]["labels"]["app.kubernetes.io/managed-by"], "keyrotd");
    EXPECT_EQ(s["metadata"]["annotations"]["reloader.stakater.com/match"], "true");
    EXPECT_EQ(s["decoded"]["consumerKey"], key_of(1));
    EXPECT_EQ(s["decoded"]["consumerSecret"], secret_of(1));
    EXPECT_EQ(s["decoded"]["expiresAt"], "2026-11-25T12:00:00Z");
    EXPECT_EQ(r1->version, s["metadata"]["resourceVersion"]);
    ASSERT_TRUE(run(t->verify(*r1)).ok());

    // The successor, with the old key kept as previous during the overlap.
    const payload p2 = make_payload(2, true);
    auto r2 = run(t->put(p2));
    ASSERT_TRUE(r2.ok()) << r2.err().describe();
    EXPECT_TRUE(r2->written);
    s = server_.state()["secrets"]["team-a/apigee-fleet"];
    EXPECT_EQ(s["decoded"]["consumerKey"], key_of(2));
    EXPECT_EQ(s["decoded"]["previousConsumerKey"], key_of(1));
    EXPECT_EQ(s["decoded"]["previousConsumerSecret"], secret_of(1));
    EXPECT_EQ(s["decoded"]["previousExpiresAt"], "never");
    EXPECT_EQ(server_.statuses("PUT", "/secrets/apigee-fleet"), std::vector<int>{200});
    ASSERT_TRUE(run(t->verify(*r2)).ok());
    auto stale = run(t->verify(*r1));
    ASSERT_FALSE(stale.ok()) << "the Secret no longer holds what r1 wrote";
    expect_clean(stale.err().message);

    ASSERT_TRUE(run(t->drop_previous(*r2)).ok());
    s = server_.state()["secrets"]["team-a/apigee-fleet"];
    EXPECT_EQ(s["decoded"]["consumerKey"], key_of(2));
    EXPECT_FALSE(s["decoded"].contains("previousConsumerKey"));
    EXPECT_FALSE(s["decoded"].contains("previousConsumerSecret"));
    EXPECT_FALSE(s["decoded"].contains("previousExpiresAt"));
    // drop_previous with a receipt of a key the Secret does not hold is refused.
    auto wrong = run(t->drop_previous(*r1));
    ASSERT_FALSE(wrong.ok());
    expect_clean(wrong.err().message);
    expect_clean(t->describe());
}

TEST_F(DeliverLoopback, KubePutIsIdempotent) {
    auto t = kube();
    const payload p = make_payload(1, false);
    ASSERT_TRUE(run(t->put(p)).ok());
    auto again = run(t->put(p));
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->written);
    EXPECT_TRUE(server_.statuses("PUT", "/secrets/").empty());
    EXPECT_EQ(server_.statuses("POST", "/secrets").size(), 1u);
    ASSERT_TRUE(run(t->verify(*again)).ok());
}

TEST_F(DeliverLoopback, KubeConflictIsReReadThenWritten) {
    auto t = kube();
    ASSERT_TRUE(run(t->put(make_payload(1, false))).ok());
    // Another writer changes the Secret between keyrotd's read and its update.
    server_.fail({{"path", "/secrets/apigee-fleet"}, {"method", "PUT"}, {"mode", "conflict"}});
    auto r = run(t->put(make_payload(2, true)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_EQ(server_.statuses("PUT", "/secrets/apigee-fleet"), (std::vector<int>{409, 200}));
    const auto s = server_.state()["secrets"]["team-a/apigee-fleet"];
    EXPECT_EQ(s["decoded"]["consumerKey"], key_of(2));
    EXPECT_TRUE(s["metadata"]["annotations"].contains("other-writer"))
        << "the other writer's change survives: no blind overwrite";
    ASSERT_TRUE(run(t->verify(*r)).ok()) << "a new resourceVersion with the same data verifies";
}

TEST_F(DeliverLoopback, KubeConflictsAreBounded) {
    auto t = kube();
    ASSERT_TRUE(run(t->put(make_payload(1, false))).ok());
    server_.fail({{"path", "/secrets/apigee-fleet"},
                  {"method", "PUT"},
                  {"mode", "conflict"},
                  {"count", 100}});
    auto r = run(t->put(make_payload(2, true)));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.err().is_status(409));
    EXPECT_EQ(server_.statuses("PUT", "/secrets/apigee-fleet").size(),
              static_cast<std::size_t>(k_max_conflicts));
    EXPECT_EQ(server_.state()["secrets"]["team-a/apigee-fleet"]["decoded"]["consumerKey"],
              key_of(1));
    expect_clean(r.err().message);
}

TEST_F(DeliverLoopback, KubeRefusesASecretWithoutTheLabel) {
    server_.seed({{"kind", "secret"},
                  {"namespace", "team-a"},
                  {"name", "apigee-fleet"},
                  {"labels", {{"app", "billing"}}},
                  {"data", {{"password", "hunter2"}}}});
    auto t = kube();
    auto r = run(t->put(make_payload(1, false)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, "NOT_OWNED");
    EXPECT_NE(r.err().message.find("kubernetesSecret team-a/apigee-fleet"), std::string::npos);
    EXPECT_NE(r.err().message.find("app.kubernetes.io/managed-by=keyrotd"), std::string::npos);
    EXPECT_TRUE(server_.statuses("PUT", "/secrets/").empty());
    const auto s = server_.state()["secrets"]["team-a/apigee-fleet"];
    EXPECT_EQ(s["decoded"], json({{"password", "hunter2"}}));
    EXPECT_EQ(r.err().message.find("hunter2"), std::string::npos);
    expect_clean(r.err().message);
}

TEST_F(DeliverLoopback, KubeVerifyCatchesAChangedSecret) {
    auto t = kube();
    auto r = run(t->put(make_payload(1, false)));
    ASSERT_TRUE(r.ok());
    // Someone (still labelled) puts another key there.
    server_.seed({{"kind", "secret"},
                  {"namespace", "team-a"},
                  {"name", "apigee-fleet"},
                  {"labels", {{"app.kubernetes.io/managed-by", "keyrotd"}}},
                  {"data", {{"consumerKey", key_of(3)}, {"consumerSecret", secret_of(3)}}}});
    auto v = run(t->verify(*r));
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.err().message.find(make_payload(3, false).fingerprint()), std::string::npos)
        << v.err().message;
    expect_clean(v.err().message);
}

TEST_F(DeliverLoopback, KubeForbiddenAndUnauthorizedAreErrors) {
    auto t = kube();
    server_.fail({{"path", "/secrets/apigee-fleet"}, {"mode", "status"}, {"status", 403}});
    auto r = run(t->put(make_payload(1, false)));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.err().is_status(403));
    EXPECT_NE(r.err().message.find("kubernetesSecret team-a/apigee-fleet"), std::string::npos);
    // The token is re-read for every request: a rotated (here: wrong) token is used at once.
    std::ofstream(token_file_) << "rotated-token\n";
    auto u = run(t->put(make_payload(1, false)));
    ASSERT_FALSE(u.ok());
    EXPECT_TRUE(u.err().is_status(401));
    fs::remove(token_file_);
    auto none = run(t->put(make_payload(1, false)));
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.err().what, error::kind::auth);
    expect_clean(r.err().message + u.err().message + none.err().message);
}

// A PUT that took effect but whose answer was lost: the HTTP client repeats it
// (PUT is safe to repeat), the repeat meets a 409 (stale resourceVersion), and
// the re-read finds the Secret already holding the key.
TEST_F(DeliverLoopback, KubeLostAnswerConverges) {
    http::options o = options(server_.url());
    o.max_attempts = 3;
    o.backoff_base = milliseconds(10);
    auto c = http::client::create(io_.get_executor(), o);
    ASSERT_TRUE(c.ok());
    kubernetes_secret_target t(*c.value(), token_file_.string(),
                               {"team-a", "apigee-fleet", {}, {}});
    ASSERT_TRUE(run(t.put(make_payload(1, false))).ok());
    server_.fail({{"path", "/secrets/apigee-fleet"}, {"method", "PUT"}, {"mode", "commit-close"}});
    auto r = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_FALSE(r->written) << "found written on the re-read";
    EXPECT_EQ(server_.statuses("PUT", "/secrets/apigee-fleet"), (std::vector<int>{200, 409}));
    ASSERT_TRUE(run(t.verify(*r)).ok());
    EXPECT_EQ(server_.state()["secrets"]["team-a/apigee-fleet"]["decoded"]["consumerKey"],
              key_of(2));
}

// ---------------------------------------------------------------- Vault

TEST_F(DeliverLoopback, VaultTokenFileCreateVerifyDrop) {
    auto auth = vault_auth::from_token_file(vault_token_file_.string());
    vault_target t(*client_, *auth, {"secret", "apigee/team-a/fleet"});
    auto r1 = run(t.put(make_payload(1, false)));
    ASSERT_TRUE(r1.ok()) << r1.err().describe();
    EXPECT_EQ(r1->version, "1");
    auto e = server_.state()["vault"]["secret/apigee/team-a/fleet"];
    EXPECT_EQ(e["custom_metadata"], json({{"managed-by", "keyrotd"}}));
    EXPECT_EQ(e["versions"]["1"]["data"]["consumerKey"], key_of(1));
    ASSERT_TRUE(run(t.verify(*r1)).ok());
    // Ownership is marked before the first data (a crash between leaves an entry keyrotd owns).
    const auto log = server_.log();
    std::vector<std::string> writes;
    for (const auto& l : log)
        if (l["method"] == "POST") writes.push_back(l["path"]);
    ASSERT_EQ(writes.size(), 2u);
    EXPECT_EQ(writes[0], "/v1/secret/metadata/apigee/team-a/fleet");
    EXPECT_EQ(writes[1], "/v1/secret/data/apigee/team-a/fleet");

    auto r2 = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2->version, "2");
    e = server_.state()["vault"]["secret/apigee/team-a/fleet"];
    EXPECT_EQ(e["versions"]["2"]["data"]["previousConsumerKey"], key_of(1));
    ASSERT_TRUE(run(t.verify(*r2)).ok());
    auto same = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(same.ok());
    EXPECT_FALSE(same->written);
    EXPECT_EQ(same->version, "2");

    ASSERT_TRUE(run(t.drop_previous(*r2)).ok());
    e = server_.state()["vault"]["secret/apigee/team-a/fleet"];
    EXPECT_EQ(e["current"], 3);
    EXPECT_EQ(e["versions"]["3"]["data"]["consumerKey"], key_of(2));
    EXPECT_FALSE(e["versions"]["3"]["data"].contains("previousConsumerKey"));
    auto wrong = run(t.drop_previous(*r1));
    ASSERT_FALSE(wrong.ok());
    expect_clean(wrong.err().message + t.describe());
}

TEST_F(DeliverLoopback, VaultKubernetesAuthAndCheckAndSet) {
    auto auth =
        vault_auth::from_kubernetes(*client_, "kubernetes", "keyrotd", token_file_.string());
    vault_target t(*client_, *auth, {"secret", "apigee/fleet"});
    auto r1 = run(t.put(make_payload(1, false)));
    ASSERT_TRUE(r1.ok()) << r1.err().describe();
    EXPECT_EQ(server_.statuses("POST", "/v1/auth/kubernetes/login"), std::vector<int>{200});
    // Another writer adds a version between keyrotd's read and its write: cas mismatch, re-read.
    server_.fail(
        {{"path", "/v1/secret/data/apigee/fleet"}, {"method", "POST"}, {"mode", "conflict"}});
    auto r2 = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(r2.ok()) << r2.err().describe();
    EXPECT_EQ(server_.statuses("POST", "/v1/secret/data/apigee/fleet"),
              (std::vector<int>{200, 400, 200}));
    EXPECT_EQ(r2->version, "3");
    ASSERT_TRUE(run(t.verify(*r2)).ok());
    EXPECT_EQ(server_.statuses("POST", "/login").size(), 1u) << "the login token is reused";
    // A 403 (login token revoked) logs in again, once.
    server_.fail({{"path", "/v1/secret/data/apigee/fleet"},
                  {"method", "GET"},
                  {"mode", "status"},
                  {"status", 403}});
    ASSERT_TRUE(run(t.verify(*r2)).ok());
    EXPECT_EQ(server_.statuses("POST", "/login").size(), 2u);
}

TEST_F(DeliverLoopback, VaultRefusesAnEntryItDoesNotOwn) {
    server_.seed({{"kind", "vault"},
                  {"mount", "secret"},
                  {"path", "apigee/fleet"},
                  {"custom_metadata", {{"owner", "terraform"}}},
                  {"data", {{"db", "hunter2"}}}});
    auto auth = vault_auth::from_token_file(vault_token_file_.string());
    vault_target t(*client_, *auth, {"secret", "apigee/fleet"});
    auto r = run(t.put(make_payload(1, false)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, "NOT_OWNED");
    EXPECT_TRUE(server_.statuses("POST", "/v1/secret/").empty());
    EXPECT_EQ(server_.state()["vault"]["secret/apigee/fleet"]["current"], 1);
    // A bad token is an error too, naming the target, never the token.
    std::ofstream(vault_token_file_) << "hvs.wrong\n";
    vault_target t2(*client_, *auth, {"secret", "apigee/other"});
    auto f = run(t2.put(make_payload(1, false)));
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(f.err().is_status(403));
    expect_clean(r.err().message + f.err().message);
}

// A check-and-set write whose answer was lost: the next put finds it and writes nothing.
TEST_F(DeliverLoopback, VaultLostAnswerAddsNoSecondVersion) {
    auto auth = vault_auth::from_token_file(vault_token_file_.string());
    vault_target t(*client_, *auth, {"secret", "apigee/fleet"});
    server_.fail(
        {{"path", "/v1/secret/data/apigee/fleet"}, {"method", "POST"}, {"mode", "commit-close"}});
    auto lost = run(t.put(make_payload(1, false)));
    ASSERT_FALSE(lost.ok());
    EXPECT_EQ(lost.err().what, error::kind::network);
    auto r = run(t.put(make_payload(1, false)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_FALSE(r->written);
    EXPECT_EQ(r->version, "1");
    EXPECT_EQ(server_.state()["vault"]["secret/apigee/fleet"]["current"], 1);
    ASSERT_TRUE(run(t.verify(*r)).ok());
    // A 503 is an error that names the target; nothing is written.
    server_.fail({{"path", "/v1/secret/data/apigee/fleet"},
                  {"method", "POST"},
                  {"mode", "status"},
                  {"status", 503}});
    auto busy = run(t.put(make_payload(2, true)));
    ASSERT_FALSE(busy.ok());
    EXPECT_TRUE(busy.err().is_status(503));
    EXPECT_NE(busy.err().message.find("vault "), std::string::npos);
    EXPECT_EQ(server_.state()["vault"]["secret/apigee/fleet"]["current"], 1);
    expect_clean(lost.err().message + busy.err().message);
}

// ---------------------------------------------------------------- Secret Manager

TEST_F(DeliverLoopback, SecretManagerCreateAliasVerifyDisable) {
    secret_manager_target t(*client_, google(), {"acme-prod", "apigee-fleet", {{"team", "a"}}});
    auto r1 = run(t.put(make_payload(1, false)));
    ASSERT_TRUE(r1.ok()) << r1.err().describe();
    EXPECT_EQ(r1->version, "1");
    auto e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    EXPECT_EQ(e["secret"]["labels"], json({{"managed-by", "keyrotd"}, {"team", "a"}}));
    EXPECT_EQ(e["secret"]["versionAliases"], json({{"current", "1"}}));
    EXPECT_EQ(e["versions"][0]["payload"]["consumerKey"], key_of(1));
    ASSERT_TRUE(run(t.verify(*r1)).ok());

    auto r2 = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(r2.ok());
    auto r3 = run(t.put(make_payload(3, true)));
    ASSERT_TRUE(r3.ok());
    e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    EXPECT_EQ(e["secret"]["versionAliases"], json({{"current", "3"}, {"previous", "2"}}));
    EXPECT_EQ(e["versions"][2]["payload"]["previousConsumerKey"], key_of(2));
    ASSERT_TRUE(run(t.verify(*r3)).ok());
    auto stale = run(t.verify(*r2));
    ASSERT_FALSE(stale.ok()) << "current no longer names version 2";

    // After the revocation: versions older than the previous one are disabled.
    ASSERT_TRUE(run(t.drop_previous(*r3)).ok());
    e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    EXPECT_EQ(e["versions"][0]["state"], "DISABLED");
    EXPECT_EQ(e["versions"][1]["state"], "ENABLED");
    EXPECT_EQ(e["versions"][2]["state"], "ENABLED");
    // A disabled version does not verify.
    auto gone = run(t.verify(*r1));
    ASSERT_FALSE(gone.ok());
    expect_clean(stale.err().message + gone.err().message + t.describe());
}

// After a restart there is no receipt: put without previous, then drop_previous.
TEST_F(DeliverLoopback, SecretManagerAfterRevocationWithoutAReceipt) {
    secret_manager_target t(*client_, google(), {"acme-prod", "apigee-fleet", {}});
    ASSERT_TRUE(run(t.put(make_payload(1, false))).ok());
    ASSERT_TRUE(run(t.put(make_payload(2, true))).ok());
    auto r = run(t.put(make_payload(2, false)));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->written);
    ASSERT_TRUE(run(t.drop_previous(*r)).ok());
    const auto e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    EXPECT_EQ(e["secret"]["versionAliases"], json({{"current", "3"}}));
    ASSERT_EQ(e["versions"].size(), 3u);
    EXPECT_EQ(e["versions"][0]["state"], "DISABLED");
    EXPECT_EQ(e["versions"][1]["state"], "DISABLED");
    EXPECT_EQ(e["versions"][2]["state"], "ENABLED");
    EXPECT_FALSE(e["versions"][2]["payload"].contains("previousConsumerKey"));
    ASSERT_TRUE(run(t.verify(*r)).ok());
}

TEST_F(DeliverLoopback, SecretManagerDisablesAcrossPages) {
    secret_manager_target t(*client_, google(), {"acme-prod", "apigee-fleet", {}});
    for (int i = 1; i <= 6; ++i) ASSERT_TRUE(run(t.put(make_payload(i, i > 1))).ok());
    auto r = run(t.put(make_payload(7, true)));
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(run(t.drop_previous(*r)).ok());
    const auto e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    for (int i = 0; i < 7; ++i)
        EXPECT_EQ(e["versions"][i]["state"], i < 5 ? "DISABLED" : "ENABLED") << "version " << i + 1;
    EXPECT_GT(server_.statuses("GET", "/versions?").size(), 2u) << "the stand-in pages by 2";
}

TEST_F(DeliverLoopback, SecretManagerLostAnswerAddsNoSecondVersion) {
    secret_manager_target t(*client_, google(), {"acme-prod", "apigee-fleet", {}});
    server_.fail({{"path", ":addVersion"}, {"mode", "commit-close"}});
    auto lost = run(t.put(make_payload(1, false)));
    ASSERT_FALSE(lost.ok()) << "the answer was lost";
    auto r = run(t.put(make_payload(1, false)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_FALSE(r->written) << "found through `latest`";
    const auto e = server_.state()["sm"]["acme-prod/apigee-fleet"];
    EXPECT_EQ(e["versions"].size(), 1u);
    EXPECT_EQ(e["secret"]["versionAliases"], json({{"current", "1"}}));
    ASSERT_TRUE(run(t.verify(*r)).ok());
}

TEST_F(DeliverLoopback, SecretManagerEtagConflictAndReauth) {
    // The first token is refused: invalidate() is called and the next one used.
    secret_manager_target t(*client_, google("ya29.expired"), {"acme-prod", "apigee-fleet", {}});
    ASSERT_TRUE(run(t.put(make_payload(1, false))).ok());
    EXPECT_EQ(invalidations_, 1);
    server_.fail({{"path", "/secrets/apigee-fleet"}, {"method", "PATCH"}, {"mode", "conflict"}});
    auto r = run(t.put(make_payload(2, true)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_EQ(server_.statuses("PATCH", "/secrets/apigee-fleet"),
              (std::vector<int>{200, 409, 200}));
    ASSERT_TRUE(run(t.verify(*r)).ok());
}

TEST_F(DeliverLoopback, SecretManagerRefusesASecretItDoesNotOwn) {
    server_.seed({{"kind", "sm"},
                  {"project", "acme-prod"},
                  {"secret", "apigee-fleet"},
                  {"labels", {{"team", "billing"}}}});
    secret_manager_target t(*client_, google(), {"acme-prod", "apigee-fleet", {}});
    auto r = run(t.put(make_payload(1, false)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, "NOT_OWNED");
    EXPECT_TRUE(server_.statuses("POST", ":addVersion").empty());
    auto seen = run(t.inspect());  // read only: refused the same way
    ASSERT_FALSE(seen.ok());
    EXPECT_EQ(seen.err().code, "NOT_OWNED");
    server_.fail({{"path", "/secrets/apigee-other"}, {"mode", "status"}, {"status", 403}});
    secret_manager_target t2(*client_, google(), {"acme-prod", "apigee-other", {}});
    auto f = run(t2.put(make_payload(1, false)));
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(f.err().is_status(403));
    expect_clean(r.err().message + f.err().message);
}

// 429 with Retry-After (each service's rate limiting): a GET or PUT waits it
// out and goes through; a POST fails (the gate holds) and goes through at the
// next put, never twice.
TEST_F(DeliverLoopback, TooManyRequestsIsWaitedOut) {
    http::options o = options(server_.url());  // retries, as keyrotd's clients have
    o.max_attempts = 3;
    o.backoff_base = milliseconds(10);
    auto c = http::client::create(io_.get_executor(), o);
    ASSERT_TRUE(c.ok());
    server_.fail({{"path", "/secrets/apigee-fleet"},
                  {"mode", "status"},
                  {"status", 429},
                  {"retryAfter", 1},
                  {"count", 1}});
    kubernetes_secret_target k(*c.value(), token_file_.string(),
                               {"team-a", "apigee-fleet", {}, {}});
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run(k.put(make_payload(1, false)));
    ASSERT_TRUE(r.ok()) << r.err().describe();
    EXPECT_EQ(server_.statuses("GET", "/secrets/apigee-fleet").front(), 429);
    EXPECT_EQ(server_.statuses("POST", "/secrets"), std::vector<int>{201});
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900))
        << "Retry-After: 1 was not waited out";

    server_.fail({{"path", "/v1/secret/data/apigee/fleet"},
                  {"method", "POST"},
                  {"mode", "status"},
                  {"status", 429},
                  {"retryAfter", 1},
                  {"count", 1}});
    auto auth = vault_auth::from_token_file(vault_token_file_.string());
    vault_target v(*c.value(), *auth, {"secret", "apigee/fleet"});
    // A POST is never repeated by the client (its answer might be lost after it
    // took effect), 429 included: this put fails, naming the 429, and writes
    // nothing; the gate holds and the next put goes through.
    auto rv = run(v.put(make_payload(1, false)));
    ASSERT_FALSE(rv.ok());
    EXPECT_TRUE(rv.err().is_status(429)) << rv.err().describe();
    EXPECT_EQ(server_.statuses("POST", "/v1/secret/data/apigee/fleet"), (std::vector<int>{429}));
    rv = run(v.put(make_payload(1, false)));
    ASSERT_TRUE(rv.ok()) << rv.err().describe();
    EXPECT_EQ(server_.statuses("POST", "/v1/secret/data/apigee/fleet"),
              (std::vector<int>{429, 200}));

    server_.fail({{"path", ":addVersion"},
                  {"mode", "status"},
                  {"status", 429},
                  {"retryAfter", 1},
                  {"count", 1}});
    secret_manager_target sm(*c.value(), google(), {"acme-prod", "apigee-fleet", {}});
    auto rs = run(sm.put(make_payload(1, false)));
    ASSERT_FALSE(rs.ok());
    EXPECT_TRUE(rs.err().is_status(429)) << rs.err().describe();
    rs = run(sm.put(make_payload(1, false)));
    ASSERT_TRUE(rs.ok()) << rs.err().describe();
    EXPECT_EQ(server_.statuses("POST", ":addVersion"), (std::vector<int>{429, 200}));
    EXPECT_EQ(server_.state()["sm"]["acme-prod/apigee-fleet"]["versions"].size(), 1u);
}

// ---------------------------------------------------------------- the factory

TEST_F(DeliverLoopback, FactoryDeliversToEveryTargetOfAnApp) {
    const json policy = {
        {"deliver",
         {{{"kind", "kubernetesSecret"}, {"namespace", "team-a"}, {"name", "apigee-{app}"}},
          {{"kind", "vault"},
           {"address", server_.url()},
           {"path", "apigee/{developer}/{app}"},
           {"kubernetesRole", "keyrotd"}},
          {{"kind", "secretManager"}, {"project", "acme-prod"}, {"secret", "{attr:target}"}},
          {{"kind", "kubernetesSecret"}, {"namespace", "team-a"}, {"name", "x-{attr:absent}"}}}},
        {"attributeTargets",
         {{{"attribute", "target"}, {"prefix", "team-"}},
          {{"attribute", "absent"}, {"prefix", "team-"}}}}};
    auto cfg = parse_config(policy);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    environment env;
    env.kube = {server_.url(), token_file_.string(), ""};
    env.google = google();
    env.secret_manager_url = server_.url();
    env.base = options("");
    auto f = target_factory::create(io_.get_executor(), std::move(*cfg), std::move(env));
    ASSERT_TRUE(f.ok()) << f.err().message;

    app a;
    a.organization = "acme-prod";
    a.developer_email = "ana@partner.example.com";
    a.name = "fleet";
    a.attributes = {{"target", "team-fleet"}};
    auto ts = f.value()->targets_for(a);
    ASSERT_TRUE(ts.ok()) << ts.err().message;
    ASSERT_EQ(ts->targets.size(), 3u);
    ASSERT_EQ(ts->skipped.size(), 1u);
    EXPECT_NE(ts->skipped[0].find("x-{attr:absent}"), std::string::npos);
    // inspect() before anything is there: absent, nothing written.
    for (auto& t : ts->targets) {
        auto h = run(t->inspect());
        ASSERT_TRUE(h.ok()) << t->describe() << ": " << h.err().describe();
        EXPECT_FALSE(h->present) << t->describe();
        EXPECT_EQ(h->key, "") << t->describe();
    }
    EXPECT_TRUE(server_.statuses("POST", "/secrets").empty());     // Secret, Secret Manager
    EXPECT_TRUE(server_.statuses("POST", "/v1/secret/").empty());  // Vault (login aside)
    EXPECT_TRUE(server_.statuses("PUT", "").empty());
    EXPECT_TRUE(server_.statuses("PATCH", "").empty());
    const payload p = make_payload(2, true);
    for (auto& t : ts->targets) {
        auto r = run(t->put(p));
        ASSERT_TRUE(r.ok()) << t->describe() << ": " << r.err().describe();
        EXPECT_TRUE(run(t->verify(*r)).ok()) << t->describe();
    }
    // inspect() after: the current and previous keys' fingerprints, no key.
    for (auto& t : ts->targets) {
        auto h = run(t->inspect());
        ASSERT_TRUE(h.ok()) << t->describe() << ": " << h.err().describe();
        EXPECT_TRUE(h->present) << t->describe();
        EXPECT_EQ(h->key, p.fingerprint()) << t->describe();
        EXPECT_EQ(h->previous, p.previous_fingerprint()) << t->describe();
        EXPECT_FALSE(h->version.empty()) << t->describe();
    }
    const auto st = server_.state();
    EXPECT_EQ(st["secrets"]["team-a/apigee-fleet"]["decoded"]["consumerKey"], key_of(2));
    EXPECT_EQ(st["vault"]["secret/apigee/ana@partner.example.com/fleet"]["versions"]["1"]["data"]
                ["consumerKey"],
              key_of(2));
    EXPECT_EQ(st["sm"]["acme-prod/team-fleet"]["versions"][0]["payload"]["consumerKey"], key_of(2));

    // An attribute outside its prefix is an error for that app (the gate must hold).
    a.attributes = {{"target", "billing-db"}};
    auto bad = f.value()->targets_for(a);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.err().message.find("outside the allowed prefix"), std::string::npos);
}

}  // namespace

}  // namespace deliver_loopback_test
