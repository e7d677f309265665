// keyrot::notify (lib/notify): events and their ids, Standard Webhooks
// signatures (the spec's published vector; Ed25519 checked with OpenSSL's
// verifier), the retry schedule, the outbox's durability, config parsing, and
// the dispatcher with fake sinks and against a real loopback HTTP receiver.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/time.hpp"
#include "notify/config.hpp"
#include "notify/delivery.hpp"
#include "notify/dispatcher.hpp"
#include "notify/event.hpp"
#include "notify/outbox.hpp"
#include "notify/webhook.hpp"
#include "notify/webhook_sink.hpp"
#include "temp_dir.hpp"
#include "unit/http_run_sync.hpp"
#include "unit/print_time.hpp"

namespace notify_test {

namespace fs = std::filesystem;
using namespace keyrot;
using namespace keyrot::notify;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using keyrot::testing::temp_dir;

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

constexpr sys_ms k_t0{milliseconds{1795608000123}};  // 2026-11-25T12:00:00.123Z

event_fields rotated() {
    event_fields f;
    f.type = event_type::key_rotated;
    f.organization = "acme-prod";
    f.developer = "ana@partner.example.com";
    f.app = "fleet-telemetry";
    f.policy = "partners-90d";
    f.key = "1dc03117f8c38f8f";
    f.replaces = "5c0be4e718fb212c";
    f.expires_at = k_t0 + 90 * k_day;
    f.revokes_at = k_t0 + 7 * k_day;
    f.occurred_at = k_t0;
    return f;
}

event make(event_fields f) {
    auto e = make_event(std::move(f));
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.err().describe());
    return e.value();
}

event numbered_event(int i) {
    auto f = rotated();
    f.app = "app-" + std::to_string(i);
    return make(f);
}

}  // namespace

// ---- events ----

TEST(NotifyEvent, IdIsStableAndPinned) {
    event_fields f = rotated();
    f.type = event_type::key_expiring;
    f.key = "5c0be4e718fb212c";
    f.replaces.clear();
    f.lead_time = 7 * k_day;
    const auto a = make(f);
    // Computed independently (Python hashlib over the same length-prefixed fields).
    EXPECT_EQ(a.id, "evt_c7ba7e284ef4a843c7860cf869020038");
    f.occurred_at += k_hour;  // a later pass: same occurrence, same id
    f.reason = "anything";
    EXPECT_EQ(make(f).id, a.id);
    f.lead_time = 1 * k_day;
    EXPECT_NE(make(f).id, a.id);
}

TEST(NotifyEvent, IdDependsOnEveryPart) {
    const auto base = make(rotated()).id;
    auto f = rotated();
    f.organization = "other";
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.app = "other";
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.key = "0000000000000000";
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.type = event_type::key_revoked;
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.developer = "bob@partner.example.com";
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.developer.clear();
    f.team = "ana@partner.example.com";  // a team named like a developer: another owner
    EXPECT_NE(make(f).id, base);
    f = rotated();
    f.lead_time = k_day;  // ignored outside key.expiring
    EXPECT_EQ(make(f).id, base);
}

TEST(NotifyEvent, RefusesAnythingButFingerprints) {
    const std::string consumer_key = "Xk2mPq9RtY7uVw3zAb5cDe8fGh1jKl4n";
    for (auto field : {&event_fields::key, &event_fields::replaces}) {
        auto f = rotated();
        f.*field = consumer_key;
        auto e = make_event(f);
        ASSERT_FALSE(e.ok());
        EXPECT_EQ(e.err().what, error::kind::config);
        EXPECT_EQ(e.err().describe().find(consumer_key), std::string::npos);
        f.*field = "1DC03117F8C38F8F";  // upper case is not a fingerprint either
        EXPECT_FALSE(make_event(f).ok());
        f.*field = "";
        EXPECT_TRUE(make_event(f).ok());
    }
}

TEST(NotifyEvent, RefusesIncompleteEvents) {
    auto f = rotated();
    f.organization.clear();
    EXPECT_FALSE(make_event(f).ok());
    f = rotated();
    f.team = "t";  // developer and team
    EXPECT_FALSE(make_event(f).ok());
    f = rotated();
    f.type = event_type::key_expiring;  // no lead time
    EXPECT_FALSE(make_event(f).ok());
}

TEST(NotifyEvent, BodyIsAStandardWebhooksPayload) {
    const auto e = make(rotated());
    const auto j = json::parse(e.body);
    EXPECT_EQ(j.size(), 3u);
    EXPECT_EQ(j["type"], "key.rotated");
    EXPECT_EQ(j["timestamp"], "2026-11-25T12:00:00.123Z");
    const auto& d = j["data"];
    EXPECT_EQ(d["id"], e.id);
    EXPECT_EQ(d["organization"], "acme-prod");
    EXPECT_EQ(d["developer"], "ana@partner.example.com");
    EXPECT_FALSE(d.contains("team"));
    EXPECT_EQ(d["app"], "fleet-telemetry");
    EXPECT_EQ(d["policy"], "partners-90d");
    EXPECT_EQ(d["key"], "1dc03117f8c38f8f");
    EXPECT_EQ(d["replaces"], "5c0be4e718fb212c");
    EXPECT_EQ(d["expiresAt"], "2027-02-23T12:00:00.123Z");
    EXPECT_EQ(d["replacesRevokedAt"], "2026-12-02T12:00:00.123Z");
    EXPECT_FALSE(d.contains("leadTime"));
    EXPECT_FALSE(d.contains("reason"));
    EXPECT_EQ(e.body.find(' '), std::string::npos) << "minified";

    auto f = rotated();
    f.type = event_type::key_expiring;
    f.lead_time = 30 * k_day;
    f.expires_at = time_or_never::never();
    const auto j2 = json::parse(make(f).body);
    EXPECT_EQ(j2["data"]["leadTime"], "30d");
    EXPECT_EQ(j2["data"]["expiresAt"], "never");
}

TEST(NotifyEvent, TypeNamesRoundTrip) {
    EXPECT_EQ(event_type_names().size(), 6u);
    for (auto n : event_type_names()) {
        auto t = parse_event_type(n);
        ASSERT_TRUE(t);
        EXPECT_EQ(to_string(*t), n);
    }
    EXPECT_FALSE(parse_event_type("key.created"));
}

// ---- signatures ----

TEST(NotifyWebhook, SpecTestVector) {
    // standard-webhooks/standard-webhooks, libraries/go/webhook_test.go, TestWebhookSign.
    auto s = signer::from_secrets({secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}, {});
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(
        s->signature_header("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    // The prefix is optional, as in the reference libraries.
    auto bare = signer::from_secrets({secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}, {});
    ASSERT_TRUE(bare.ok());
    EXPECT_EQ(bare->signature_header("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                     R"({"test": 2432232314})"),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

namespace {

std::string make_ed25519_pem(EVP_PKEY** out_key) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    *out_key = key;
    return pem;
}

std::string b64decode(const std::string& b64) {
    std::string raw(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    if (n < 0) return {};
    std::size_t len = static_cast<std::size_t>(n);
    if (b64.ends_with("=="))
        len -= 2;
    else if (b64.ends_with("="))
        len -= 1;
    raw.resize(len);
    return raw;
}

bool ed25519_verifies(EVP_PKEY* key, const std::string& msg, const std::string& sig_b64) {
    const std::string sig = b64decode(sig_b64);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok =
        EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

std::string hmac_b64(const std::string& whsec, const std::string& msg) {
    const std::string key = b64decode(whsec.substr(6));
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
    return base64_encode({reinterpret_cast<const char*>(mac), len});
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
    return out;
}

const std::string k_whsec_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const std::string k_whsec_b = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tMTIz";  // 33 bytes

}  // namespace

TEST(NotifyWebhook, TheSampleInDocsIsExact) {
    // docs/notifications.md shows this body, id and signature; keep them true.
    const auto e = make(rotated());
    EXPECT_EQ(e.id, "evt_b9cfac7ab454ffa79a33037b624b8d7c");
    EXPECT_EQ(e.body,
              R"({"type":"key.rotated","timestamp":"2026-11-25T12:00:00.123Z","data":{"id":)"
              R"("evt_b9cfac7ab454ffa79a33037b624b8d7c","organization":"acme-prod","developer":)"
              R"("ana@partner.example.com","app":"fleet-telemetry","policy":"partners-90d",)"
              R"("key":"1dc03117f8c38f8f","replaces":"5c0be4e718fb212c","expiresAt":)"
              R"("2027-02-23T12:00:00.123Z","replacesRevokedAt":"2026-12-02T12:00:00.123Z"}})");
    auto s = signer::from_secrets({secret(k_whsec_a)}, {});
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->signature_header(e.id, 1795608001, e.body),
              "v1,+6IeKbkOIOzxtqrgzbC49HwWf3vfDgrnE/H36CLtOs0=");
}

TEST(NotifyWebhook, SeveralSecretsAndEd25519FromFiles) {
    temp_dir d;
    EVP_PKEY* key = nullptr;
    write_file(d.path / "a", k_whsec_a + "\n");
    write_file(d.path / "b", "  " + k_whsec_b);
    write_file(d.path / "ed.pem", make_ed25519_pem(&key));
    auto s = signer::load({d.path / "a", d.path / "b"}, {d.path / "ed.pem"});
    ASSERT_TRUE(s.ok()) << s.err().describe();
    EXPECT_EQ(s->symmetric_count(), 2u);
    EXPECT_EQ(s->asymmetric_count(), 1u);

    const std::string body = make(rotated()).body;
    const auto headers = webhook_headers(s.value(), "evt_1", 1795608000, body);
    ASSERT_EQ(headers.size(), 3u);
    EXPECT_EQ(headers[0], (std::pair<std::string, std::string>{"webhook-id", "evt_1"}));
    EXPECT_EQ(headers[1].second, "1795608000");
    const auto sigs = split(headers[2].second, ' ');
    ASSERT_EQ(sigs.size(), 3u);
    const std::string signed_content = "evt_1.1795608000." + body;
    EXPECT_EQ(sigs[0], "v1," + hmac_b64(k_whsec_a, signed_content));
    EXPECT_EQ(sigs[1], "v1," + hmac_b64(k_whsec_b, signed_content));
    ASSERT_TRUE(sigs[2].starts_with("v1a,"));
    EXPECT_TRUE(ed25519_verifies(key, signed_content, sigs[2].substr(4)));
    EXPECT_FALSE(ed25519_verifies(key, signed_content + " ", sigs[2].substr(4)));
    EVP_PKEY_free(key);
}

TEST(NotifyWebhook, BadKeyFilesNameTheFileNeverTheContent) {
    temp_dir d;
    const std::string garbage = "whsec_not*base64*SECRETMATERIAL";
    write_file(d.path / "bad", garbage);
    auto s = signer::load({d.path / "bad"}, {});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.err().message.find((d.path / "bad").string()), std::string::npos);
    EXPECT_EQ(s.err().message.find("SECRETMATERIAL"), std::string::npos);

    write_file(d.path / "short", "whsec_c2hvcnQ=");  // 5 bytes: too short for the spec
    EXPECT_FALSE(signer::load({d.path / "short"}, {}).ok());
    EXPECT_FALSE(signer::load({d.path / "missing"}, {}).ok());
    write_file(d.path / "empty", "\n");
    EXPECT_FALSE(signer::load({d.path / "empty"}, {}).ok());
    write_file(d.path / "notpem", "-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n");
    auto p = signer::load({}, {d.path / "notpem"});
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.err().message.find("SECRETMATERIAL"), std::string::npos);

    // An RSA key is not an Ed25519 key.
    EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    write_file(d.path / "rsa.pem", std::string(data, static_cast<std::size_t>(n)));
    BIO_free(bio);
    EVP_PKEY_free(rsa);
    EXPECT_FALSE(signer::load({}, {d.path / "rsa.pem"}).ok());
}

// ---- delivery rules ----

TEST(NotifyDelivery, Classification) {
    EXPECT_EQ(classify(200), outcome::delivered);
    EXPECT_EQ(classify(204), outcome::delivered);
    EXPECT_EQ(classify(299), outcome::delivered);
    EXPECT_EQ(classify(410), outcome::disable);
    for (int s : {0, 199, 301, 302, 400, 401, 404, 429, 500, 502, 503, 504})
        EXPECT_EQ(classify(s), outcome::retry) << s;
}

TEST(NotifyDelivery, SpecScheduleWithoutJitter) {
    const std::vector<milliseconds> want = {5 * k_second, 5 * k_minute, 30 * k_minute, 2 * k_hour,
                                            5 * k_hour,   10 * k_hour,  14 * k_hour,   20 * k_hour,
                                            24 * k_hour,  24 * k_hour,  24 * k_hour};
    const milliseconds max_age = 30 * k_day;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const sys_ms now = k_t0 + 1000ms;
        const auto n = schedule_next(static_cast<int>(i) + 1, k_t0, now, max_age, 0.5);
        ASSERT_FALSE(n.give_up);
        EXPECT_EQ(n.at - now, want[i]) << "after attempt " << i + 1;
    }
}

TEST(NotifyDelivery, JitterIsTenPercentEitherWay) {
    const auto lo = schedule_next(3, k_t0, k_t0, 3 * k_day, 0.0);
    const auto hi = schedule_next(3, k_t0, k_t0, 3 * k_day, 0.999999);
    EXPECT_EQ(lo.at - k_t0, 27 * k_minute);
    EXPECT_NEAR(static_cast<double>((hi.at - k_t0).count()),
                static_cast<double>((33 * k_minute).count()), 1000.0);
}

TEST(NotifyDelivery, RetryAfterAndMaxAge) {
    // A longer Retry-After wins; a shorter one does not shorten the schedule.
    EXPECT_EQ(schedule_next(1, k_t0, k_t0, 3 * k_day, 0.5, 60 * k_second).at - k_t0, 60 * k_second);
    EXPECT_EQ(schedule_next(2, k_t0, k_t0, 3 * k_day, 0.5, 1 * k_second).at - k_t0, 5 * k_minute);
    // Following the spec's schedule from the first attempt, the last attempt lands on
    // the 3-day deadline (the table's 75h would be past it), and the next gives up.
    sys_ms now = k_t0;
    int attempts = 1;
    std::vector<sys_ms> at;
    for (;; ++attempts) {
        const auto n = schedule_next(attempts, k_t0, now, 3 * k_day, 0.5);
        if (n.give_up) break;
        at.push_back(n.at);
        now = n.at;
    }
    ASSERT_FALSE(at.empty());
    EXPECT_EQ(at.back(), k_t0 + 3 * k_day);
    EXPECT_EQ(attempts, 10);  // 1 + 9 retries
    EXPECT_TRUE(schedule_next(1, k_t0, k_t0 + 3 * k_day, 3 * k_day, 0.5).give_up);
}

// ---- outbox ----

TEST(NotifyOutbox, AddIsDurableAndSurvivesReopen) {
    temp_dir d;
    const auto dir = d.path / "state" / "outbox";
    const auto e = make(rotated());
    {
        auto box = outbox::open(dir, 10);
        ASSERT_TRUE(box.ok()) << box.err().describe();
        EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
        const auto r = (*box)->add(e, {"hub", "ops"}, k_t0);
        EXPECT_EQ(r.status, add_status::added);
        EXPECT_TRUE(fs::exists(dir / (e.id + ".json")));
        EXPECT_TRUE((*box)->reschedule(e.id, "hub", {2, k_t0 + 5 * k_minute, "HTTP 500"}));
        EXPECT_TRUE((*box)->finish(e.id, "ops"));
    }  // no close step: what is on disk is all there is (as after SIGKILL)
    auto box = outbox::open(dir, 10);
    ASSERT_TRUE(box.ok());
    EXPECT_EQ((*box)->loaded().loaded, 1u);
    EXPECT_EQ((*box)->depth(), 1u);
    const auto* entry = (*box)->find(e.id);
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->body, e.body);
    EXPECT_EQ(entry->type, "key.rotated");
    EXPECT_EQ(entry->added_at, k_t0);
    ASSERT_EQ(entry->pending.size(), 1u);
    EXPECT_EQ(entry->pending.at("hub").attempts, 2);
    EXPECT_EQ(entry->pending.at("hub").next_at, k_t0 + 5 * k_minute);
    EXPECT_EQ(entry->pending.at("hub").last_error, "HTTP 500");
    EXPECT_EQ((*box)->earliest("hub"), (std::pair<sys_ms, std::string>{k_t0 + 5 * k_minute, e.id}));
    EXPECT_FALSE((*box)->earliest("ops"));
    EXPECT_EQ((*box)->oldest_added(), k_t0);

    EXPECT_TRUE((*box)->finish(e.id, "hub"));
    EXPECT_EQ((*box)->depth(), 0u);
    EXPECT_FALSE(fs::exists(dir / (e.id + ".json")));
    EXPECT_FALSE((*box)->oldest_added());
    auto again = outbox::open(dir, 10);
    EXPECT_EQ((*again)->depth(), 0u);
}

TEST(NotifyOutbox, EveryAcknowledgedAddSurvivesSigkill) {
    // A child adds events as fast as it can and reports each add() that returned
    // `added` through a pipe; it is SIGKILLed mid-stream. Every event it reported
    // must be in the outbox when it is opened again.
    temp_dir d;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        auto box = outbox::open(d.path, 100000);
        if (!box) ::_exit(2);
        for (int i = 0;; ++i) {
            if ((*box)->add(numbered_event(i), {"hub"}, k_t0 + milliseconds(i)).status !=
                add_status::added)
                ::_exit(3);
            const std::string line = std::to_string(i) + "\n";
            if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(4);
        }
    }
    ::close(fds[1]);
    std::string acked;
    char buf[256];
    // Kill it once it has acknowledged a few dozen events.
    while (std::count(acked.begin(), acked.end(), '\n') < 40) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        ASSERT_GT(n, 0) << "the child stopped early";
        acked.append(buf, static_cast<std::size_t>(n));
    }
    ::kill(pid, SIGKILL);
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
        acked.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    auto box = outbox::open(d.path, 100000);
    ASSERT_TRUE(box.ok());
    std::size_t n_acked = 0;
    std::stringstream ss(acked);
    for (std::string line; std::getline(ss, line);) {
        if (line.empty()) continue;
        ++n_acked;
        EXPECT_NE((*box)->find(numbered_event(std::stoi(line)).id), nullptr)
            << "lost event " << line;
    }
    EXPECT_GE(n_acked, 40u);
    EXPECT_GE((*box)->depth(), n_acked);  // plus at most the one being written
    EXPECT_LE((*box)->depth(), n_acked + 1);
    EXPECT_EQ((*box)->loaded().corrupt, 0u);
}

TEST(NotifyOutbox, DedupesById) {
    temp_dir d;
    auto box = outbox::open(d.path, 10);
    const auto e = make(rotated());
    EXPECT_EQ((*box)->add(e, {"hub"}, k_t0).status, add_status::added);
    EXPECT_EQ((*box)->add(e, {"hub"}, k_t0 + 1ms).status, add_status::duplicate);
    auto f = rotated();
    f.occurred_at += k_hour;  // the same occurrence seen by a later pass
    EXPECT_EQ((*box)->add(make(f), {"hub"}, k_t0 + 2ms).status, add_status::duplicate);
    EXPECT_EQ((*box)->depth(), 1u);
    EXPECT_EQ((*box)->find(e.id)->added_at, k_t0);
}

TEST(NotifyOutbox, BoundedAndLoudWhenFull) {
    temp_dir d;
    auto box = outbox::open(d.path, 3);
    for (int i = 0; i < 3; ++i) {
        auto f = rotated();
        f.app = "app-" + std::to_string(i);
        EXPECT_EQ((*box)->add(make(f), {"hub"}, k_t0 + milliseconds(i)).status, add_status::added);
    }
    auto f = rotated();
    f.app = "one-too-many";
    const auto r = (*box)->add(make(f), {"hub"}, k_t0 + k_hour);
    EXPECT_EQ(r.status, add_status::full);
    EXPECT_FALSE(r.stored());
    EXPECT_NE(r.reason.find("outbox full"), std::string::npos);
    EXPECT_NE(r.reason.find("1h"), std::string::npos) << r.reason;
    EXPECT_EQ((*box)->depth(), 3u);
    // Delivering one makes room.
    (void)(*box)->finish((*box)->earliest("hub")->second, "hub");
    EXPECT_EQ((*box)->add(make(f), {"hub"}, k_t0 + k_hour).status, add_status::added);
    // No sink: nothing to store.
    f.app = "nobody-listens";
    EXPECT_EQ((*box)->add(make(f), {}, k_t0).status, add_status::added);
    EXPECT_EQ((*box)->depth(), 3u);
    EXPECT_FALSE(outbox::open(d.path / "zero", 0).ok());
}

TEST(NotifyOutbox, CrashLeftoversAndCorruptFiles) {
    temp_dir d;
    const auto e = make(rotated());
    {
        auto box = outbox::open(d.path, 10);
        ASSERT_EQ((*box)->add(e, {"hub"}, k_t0).status, add_status::added);
    }
    write_file(d.path / "evt_0000.json.tmp", "{\"half");  // a write cut short
    write_file(d.path / "evt_1111.json", "not json");     // damaged
    write_file(d.path / "evt_2222.json", read_file(d.path / (e.id + ".json")));  // wrong name
    auto box = outbox::open(d.path, 10);
    ASSERT_TRUE(box.ok());
    EXPECT_EQ((*box)->loaded().loaded, 1u);
    EXPECT_EQ((*box)->loaded().leftovers, 1u);
    EXPECT_EQ((*box)->loaded().corrupt, 2u);
    EXPECT_FALSE(fs::exists(d.path / "evt_0000.json.tmp"));
    EXPECT_TRUE(fs::exists(d.path / "evt_1111.json.corrupt"));
    EXPECT_EQ((*box)->depth(), 1u);
}

TEST(NotifyOutbox, DropSinkAndAge) {
    temp_dir d;
    auto box = outbox::open(d.path, 10);
    auto a = make(rotated());
    auto f = rotated();
    f.app = "b";
    auto b = make(f);
    ASSERT_TRUE((*box)->add(a, {"hub", "gone"}, k_t0).stored());
    ASSERT_TRUE((*box)->add(b, {"gone"}, k_t0 + k_day).stored());
    EXPECT_EQ((*box)->older_than(k_t0).size(), 2u);  // (a, hub), (a, gone)
    EXPECT_EQ((*box)->older_than(k_t0 - 1ms).size(), 0u);
    EXPECT_EQ((*box)->drop_sink("gone"), 2u);
    EXPECT_EQ((*box)->depth(), 1u);
    EXPECT_EQ((*box)->sink_names(), std::vector<std::string>{"hub"});
    EXPECT_FALSE(fs::exists(d.path / (b.id + ".json")));
}

TEST(NotifyOutbox, FilesHoldNoConsumerKey) {
    // Belt and braces: what reaches the outbox went through make_event.
    temp_dir d;
    auto box = outbox::open(d.path, 10);
    auto e = make(rotated());
    ASSERT_TRUE((*box)->add(e, {"hub"}, k_t0).stored());
    const auto text = read_file(d.path / (e.id + ".json"));
    EXPECT_NE(text.find("1dc03117f8c38f8f"), std::string::npos);
    EXPECT_EQ(json::parse(text)["body"], e.body);
}

// ---- config ----

TEST(NotifyConfig, ParsesAFullSection) {
    const auto j = json::parse(R"({
        "expiringAt": ["1d", "30d", "7d", "7d"], "maxAge": "2d", "outboxMax": 500,
        "webhooks": [{"name": "hub", "url": "https://hooks.example.com/keyrotd/",
                      "secretFiles": ["/run/credentials/keyrotd/whsec"],
                      "ed25519KeyFile": "/run/credentials/keyrotd/ed.pem",
                      "events": ["key.rotated", "key.expiring"], "policies": ["partners-90d"],
                      "developers": ["*@partner.example.com"], "apps": ["fleet-*"],
                      "timeout": "20s", "caFile": "/etc/ssl/extra.pem"},
                     {"name": "local", "url": "http://127.0.0.1:9000",
                      "secretFiles": "/run/whsec"}]})");
    auto c = parse_config(j);
    ASSERT_TRUE(c.ok()) << c.err().describe();
    EXPECT_EQ(c->expiring_at, (std::vector<milliseconds>{30 * k_day, 7 * k_day, k_day}));
    EXPECT_EQ(c->max_age, 2 * k_day);
    EXPECT_EQ(c->outbox_max, 500u);
    ASSERT_EQ(c->webhooks.size(), 2u);
    const auto& w = c->webhooks[0];
    EXPECT_EQ(w.name, "hub");
    EXPECT_EQ(w.url, "https://hooks.example.com/keyrotd/");
    EXPECT_EQ(w.secret_files, std::vector<fs::path>{"/run/credentials/keyrotd/whsec"});
    EXPECT_EQ(w.ed25519_key_files, std::vector<fs::path>{"/run/credentials/keyrotd/ed.pem"});
    EXPECT_EQ(w.filter.events.size(), 2u);
    EXPECT_EQ(w.timeout, 20 * k_second);
    EXPECT_EQ(w.ca_file, "/etc/ssl/extra.pem");
    EXPECT_EQ(c->webhooks[1].timeout, 15 * k_second);

    auto defaults = parse_config(json());
    ASSERT_TRUE(defaults.ok());
    EXPECT_EQ(defaults->max_age, 3 * k_day);
    EXPECT_EQ(defaults->outbox_max, 10000u);
    EXPECT_TRUE(defaults->expiring_at.empty());
    EXPECT_TRUE(defaults->webhooks.empty());
}

TEST(NotifyConfig, ReportsEveryProblemByField) {
    const auto j = json::parse(R"({
        "expiringAt": ["7 days"], "maxAge": "0", "outboxMax": -1, "colour": "blue",
        "webhooks": [{"name": "a", "url": "http://hooks.example.com/x", "secretFiles": ["/s"],
                      "events": ["key.created"], "developers": ["[abc"], "timeout": "10m"},
                     {"name": "a", "url": "https://h.example.com/?token=1"},
                     {"name": "bad name!", "url": "https://h.example.com", "secretFiles": [""],
                      "extra": 1}]})");
    auto c = parse_config(j);
    ASSERT_FALSE(c.ok());
    const auto& m = c.err().message;
    for (const char* want :
         {"notify.expiringAt[0]: not a duration", "notify.maxAge: must be more",
          "notify.outboxMax:", "notify.colour: unknown field",
          "notify.webhooks[0].url: plain http:// is allowed only to a loopback",
          "notify.webhooks[0].events: unknown event type \"key.created\"",
          "notify.webhooks[0].developers: bad glob", "notify.webhooks[0].timeout: at most 5m",
          "notify.webhooks[1].name: \"a\" is used twice",
          "notify.webhooks[1].url: URL must not carry a query",
          "notify.webhooks[1]: needs secretFiles or ed25519KeyFile",
          "notify.webhooks[2].name: required",
          "notify.webhooks[2].secretFiles[0]: must be a non-empty string",
          "notify.webhooks[2].extra: unknown field"})
        EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin: " << m;
    EXPECT_FALSE(parse_config(json::array()).ok());
}

TEST(NotifyFilter, EventsPoliciesDevelopersApps) {
    const auto e = make(rotated());
    EXPECT_TRUE(matches({}, e));
    EXPECT_TRUE(matches({{"key.rotated"}, {}, {}, {}}, e));
    EXPECT_FALSE(matches({{"key.expiring"}, {}, {}, {}}, e));
    EXPECT_TRUE(matches({{}, {"x", "partners-90d"}, {}, {}}, e));
    EXPECT_FALSE(matches({{}, {"x"}, {}, {}}, e));
    EXPECT_TRUE(matches({{}, {}, {"*@PARTNER.example.com"}, {}}, e));  // emails ignore case
    EXPECT_FALSE(matches({{}, {}, {"*@other.example.com"}, {}}, e));
    EXPECT_TRUE(matches({{}, {}, {}, {"fleet-*"}}, e));
    EXPECT_FALSE(matches({{}, {}, {}, {"Fleet-*"}}, e));  // app names do not
    auto f = rotated();
    f.developer.clear();
    f.team = "ops-team";
    f.policy.clear();
    const auto team = make(f);
    EXPECT_FALSE(matches({{}, {}, {"*"}, {}}, team));
    EXPECT_FALSE(matches({{}, {"partners-90d"}, {}, {}}, team));
    EXPECT_TRUE(matches({{"key.rotated"}, {}, {}, {"fleet-*"}}, team));
}

// ---- dispatcher ----

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// Runs `aw` on `io` for at most `limit`; fails the test when it does not finish.
void drive(net::io_context& io, net::awaitable<void> aw,
           std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    bool done = false;
    std::exception_ptr failure;
    net::co_spawn(io, std::move(aw), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        io.stop();
    });
    io.run_for(limit);
    ASSERT_TRUE(done) << "timed out";
    if (failure) std::rethrow_exception(failure);
}

net::awaitable<void> sleep_for(milliseconds span) {
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_after(span);
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
}

// Polls `pred` every 5 ms for up to `limit`.
net::awaitable<bool> eventually(std::function<bool()> pred, milliseconds limit = 3s) {
    for (milliseconds waited{0}; waited < limit; waited += 5ms) {
        if (pred()) co_return true;
        co_await sleep_for(5ms);
    }
    co_return pred();
}

// A scripted sink: answers from `script` (then 200); `hang` holds every attempt
// until released.
class fake_sink final : public sink {
  public:
    fake_sink(std::string name, std::deque<attempt_result> script = {}, sink_filter f = {})
        : name_(std::move(name)), filter_(std::move(f)), script_(std::move(script)) {}
    const std::string& name() const override { return name_; }
    const sink_filter& filter() const override { return filter_; }
    net::awaitable<attempt_result> deliver(std::string id, std::string body) override {
        calls.emplace_back(id, body);
        if (hang) {
            net::steady_timer t(co_await net::this_coro::executor);
            hold = &t;
            t.expires_after(std::chrono::seconds(30));
            boost::system::error_code ec;
            co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
            hold = nullptr;
            co_return attempt_result{0, "timeout", std::nullopt};
        }
        if (script_.empty()) co_return attempt_result{200, "", std::nullopt};
        auto r = script_.front();
        script_.pop_front();
        co_return r;
    }
    void release() {
        if (hold) hold->cancel();
    }

    std::vector<std::pair<std::string, std::string>> calls;
    bool hang = false;
    net::steady_timer* hold = nullptr;

  private:
    std::string name_;
    sink_filter filter_;
    std::deque<attempt_result> script_;
};

struct harness {
    temp_dir dir;
    std::unique_ptr<outbox> box;
    std::vector<report> reports;
    dispatcher_options opts;
    bool run_done = false;

    explicit harness(std::size_t max = 100) {
        box = std::move(outbox::open(dir.path / "outbox", max).value());
        opts.schedule = {0ms, 20ms, 40ms};
        opts.random01 = [] { return 0.5; };
        opts.on_report = [this](const report& r) { reports.push_back(r); };
    }
    std::size_t count(report::kind k, const std::string& sink = "") const {
        std::size_t n = 0;
        for (const auto& r : reports) n += r.what == k && (sink.empty() || r.sink == sink);
        return n;
    }
};

net::awaitable<void> run_and_flag(dispatcher& d, bool& done) {
    co_await d.run();
    done = true;
}

net::awaitable<void> slow_receiver_does_not_block(harness& h, dispatcher& d, fake_sink& slow,
                                                  fake_sink& fast) {
    net::co_spawn(co_await net::this_coro::executor, run_and_flag(d, h.run_done), net::detached);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(d.publish(numbered_event(i)).status, add_status::added);
    // publish() only wrote the outbox: it did not wait for either sink.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
    EXPECT_TRUE(co_await eventually([&] { return fast.calls.size() == 3; }));
    EXPECT_EQ(slow.calls.size(), 1u);  // one attempt in flight, the rest wait behind it
    EXPECT_EQ(h.count(report::kind::delivered, "fast"), 3u);
    EXPECT_EQ(h.box->depth(), 3u);  // still owed to "slow"
    d.stop();
    slow.release();
    EXPECT_TRUE(co_await eventually([&] { return h.run_done; }));
    EXPECT_EQ(h.box->depth(), 3u);  // kept for the next start
}

}  // namespace

TEST(NotifyDispatcher, ASlowReceiverNeverBlocksPublishOrOtherSinks) {
    net::io_context io;
    harness h;
    auto slow = std::make_unique<fake_sink>("slow");
    auto fast = std::make_unique<fake_sink>("fast");
    slow->hang = true;
    auto& slow_ref = *slow;
    auto& fast_ref = *fast;
    std::vector<std::unique_ptr<sink>> sinks;
    sinks.push_back(std::move(slow));
    sinks.push_back(std::move(fast));
    dispatcher d(io.get_executor(), *h.box, std::move(sinks), h.opts);
    drive(io, slow_receiver_does_not_block(h, d, slow_ref, fast_ref));
}

namespace {

net::awaitable<void> publish_and_wait(harness& h, dispatcher& d, std::vector<event> events,
                                      std::function<bool()> until) {
    net::co_spawn(co_await net::this_coro::executor, run_and_flag(d, h.run_done), net::detached);
    for (const auto& e : events) (void)d.publish(e);
    EXPECT_TRUE(co_await eventually(until));
    d.stop();
    EXPECT_TRUE(co_await eventually([&] { return h.run_done; }));
}

std::vector<std::unique_ptr<sink>> one(std::unique_ptr<fake_sink> s) {
    std::vector<std::unique_ptr<sink>> v;
    v.push_back(std::move(s));
    return v;
}

}  // namespace

TEST(NotifyDispatcher, RetriesAlongTheScheduleUntilDelivered) {
    net::io_context io;
    harness h;
    auto s = std::make_unique<fake_sink>(
        "hub", std::deque<attempt_result>{{500, "HTTP 500", {}}, {0, "timeout", {}}});
    auto& ref = *s;
    dispatcher d(io.get_executor(), *h.box, one(std::move(s)), h.opts);
    const auto e = make(rotated());
    drive(io, publish_and_wait(h, d, {e}, [&] { return h.count(report::kind::delivered) == 1; }));
    ASSERT_EQ(ref.calls.size(), 3u);
    for (const auto& c : ref.calls) EXPECT_EQ(c, (std::pair{e.id, e.body}));  // same id each time
    ASSERT_EQ(h.reports.size(), 3u);
    EXPECT_EQ(h.reports[0].what, report::kind::retrying);
    EXPECT_EQ(h.reports[0].status, 500);
    EXPECT_EQ(h.reports[1].what, report::kind::retrying);
    EXPECT_EQ(h.reports[1].error, "timeout");
    EXPECT_EQ(h.reports[2].attempts, 3);
    EXPECT_EQ(h.box->depth(), 0u);
}

TEST(NotifyDispatcher, GoneDisablesTheEndpoint) {
    net::io_context io;
    harness h;
    auto s = std::make_unique<fake_sink>("hub", std::deque<attempt_result>{{410, "HTTP 410", {}}});
    dispatcher d(io.get_executor(), *h.box, one(std::move(s)), h.opts);
    drive(io, publish_and_wait(h, d, {numbered_event(1), numbered_event(2)},
                               [&] { return h.count(report::kind::disabled) == 1; }));
    EXPECT_TRUE(d.disabled("hub"));
    EXPECT_EQ(h.reports.back().dropped, 2u);
    EXPECT_EQ(h.box->depth(), 0u);
    // Later events are not stored for a disabled sink.
    EXPECT_EQ(d.publish(numbered_event(3)).status, add_status::added);
    EXPECT_EQ(h.box->depth(), 0u);
}

TEST(NotifyDispatcher, AbandonsAfterMaxAge) {
    net::io_context io;
    harness h;
    h.opts.max_age = 150ms;
    std::deque<attempt_result> fails(100, attempt_result{503, "HTTP 503", {}});
    auto s = std::make_unique<fake_sink>("hub", fails);
    auto& ref = *s;
    dispatcher d(io.get_executor(), *h.box, one(std::move(s)), h.opts);
    drive(io, publish_and_wait(h, d, {numbered_event(1)},
                               [&] { return h.count(report::kind::abandoned) == 1; }));
    EXPECT_EQ(h.box->depth(), 0u);
    EXPECT_GE(ref.calls.size(), 3u);
    EXPECT_LE(ref.calls.size(), 10u);
}

TEST(NotifyDispatcher, FiltersAndResumesAfterRestart) {
    harness h;
    {
        // Stored for "hub" and "gone" by an earlier process that never delivered.
        const sys_ms now = system_now();
        ASSERT_TRUE(h.box->add(numbered_event(1), {"hub", "gone"}, now).stored());
    }
    net::io_context io;
    auto hub = std::make_unique<fake_sink>("hub", std::deque<attempt_result>{},
                                           sink_filter{{"key.revoked"}, {}, {}, {}});
    auto& ref = *hub;
    dispatcher d(io.get_executor(), *h.box, one(std::move(hub)), h.opts);
    drive(io, publish_and_wait(h, d, {numbered_event(2)},
                               [&] { return h.count(report::kind::delivered) == 1; }));
    EXPECT_EQ(h.count(report::kind::dropped, "gone"), 1u);
    ASSERT_EQ(ref.calls.size(), 1u);  // the stored event; numbered_event(2) is filtered out
    EXPECT_EQ(ref.calls[0].first, numbered_event(1).id);
    EXPECT_EQ(h.box->depth(), 0u);
}

TEST(NotifyDispatcher, FullOutboxIsReported) {
    net::io_context io;
    harness h(1);
    auto s = std::make_unique<fake_sink>("hub");
    s->hang = true;
    dispatcher d(io.get_executor(), *h.box, one(std::move(s)), h.opts);
    EXPECT_EQ(d.publish(numbered_event(1)).status, add_status::added);
    const auto r = d.publish(numbered_event(2));
    EXPECT_EQ(r.status, add_status::full);
    EXPECT_EQ(h.count(report::kind::not_stored), 1u);
}

// ---- the real webhook sink against a loopback receiver ----

namespace {

struct received {
    std::string id, timestamp, signature, content_type, body, target;
};

struct receiver {
    net::ip::tcp::acceptor acceptor;
    std::deque<int> statuses;  // answers in order; 200 after
    std::vector<received> got;
    std::vector<std::shared_ptr<net::ip::tcp::socket>> conns;
    explicit receiver(net::any_io_executor ex)
        : acceptor(ex, {net::ip::make_address("127.0.0.1"), 0}) {}
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) +
               "/hooks/keyrotd";
    }
    void close() {
        boost::system::error_code ec;
        acceptor.close(ec);
        for (auto& c : conns) c->close(ec);
    }
};

net::awaitable<void> serve(receiver& r, std::shared_ptr<net::ip::tcp::socket> sock) {
    beast::flat_buffer buf;
    for (;;) {
        bhttp::request<bhttp::string_body> req;
        boost::system::error_code ec;
        co_await bhttp::async_read(*sock, buf, req, net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        r.got.push_back({std::string(req["webhook-id"]), std::string(req["webhook-timestamp"]),
                         std::string(req["webhook-signature"]), std::string(req["content-type"]),
                         req.body(), std::string(req.target())});
        const int status = r.statuses.empty() ? 200 : r.statuses.front();
        if (!r.statuses.empty()) r.statuses.pop_front();
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
        res.keep_alive(req.keep_alive());
        res.body() = "{}";
        res.prepare_payload();
        co_await bhttp::async_write(*sock, res, net::redirect_error(net::use_awaitable, ec));
        if (ec || !res.keep_alive()) co_return;
    }
}

net::awaitable<void> accept_loop(receiver& r) {
    for (;;) {
        boost::system::error_code ec;
        auto s = std::make_shared<net::ip::tcp::socket>(co_await net::this_coro::executor);
        co_await r.acceptor.async_accept(*s, net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        r.conns.push_back(s);
        net::co_spawn(r.acceptor.get_executor(), serve(r, s), net::detached);
    }
}

net::awaitable<void> loopback(harness& h, receiver& r, dispatcher& d, std::vector<event> events,
                              std::function<bool()> until) {
    net::co_spawn(co_await net::this_coro::executor, accept_loop(r), net::detached);
    co_await publish_and_wait(h, d, std::move(events), std::move(until));
    r.close();
}

webhook_config loopback_config(const receiver& r, const fs::path& secret_file) {
    webhook_config c;
    c.name = "hub";
    c.url = r.url();
    c.secret_files = {secret_file};
    c.timeout = 2 * k_second;
    return c;
}

}  // namespace

TEST(NotifyLoopback, ServerErrorThenDelivered) {
    net::io_context io;
    harness h;
    receiver r(io.get_executor());
    r.statuses = {500};
    write_file(h.dir.path / "whsec", k_whsec_a);
    auto s = webhook_sink::create(io.get_executor(), loopback_config(r, h.dir.path / "whsec"));
    ASSERT_TRUE(s.ok()) << s.err().describe();
    std::vector<std::unique_ptr<sink>> sinks;
    sinks.push_back(std::move(s.value()));
    dispatcher d(io.get_executor(), *h.box, std::move(sinks), h.opts);
    const auto e = make(rotated());
    drive(io, loopback(h, r, d, {e}, [&] { return h.count(report::kind::delivered) == 1; }));

    ASSERT_EQ(r.got.size(), 2u);
    EXPECT_EQ(h.reports[0].what, report::kind::retrying);
    EXPECT_EQ(h.reports[0].status, 500);
    for (const auto& g : r.got) {
        EXPECT_EQ(g.target, "/hooks/keyrotd");
        EXPECT_EQ(g.id, e.id);
        EXPECT_EQ(g.body, e.body);
        EXPECT_EQ(g.content_type, "application/json");
        const long long ts = std::stoll(g.timestamp);
        EXPECT_NEAR(static_cast<double>(ts), static_cast<double>(std::time(nullptr)), 5.0);
        // Verified as a receiver would: HMAC over id.timestamp.body with the shared secret.
        EXPECT_EQ(g.signature,
                  "v1," + hmac_b64(k_whsec_a, g.id + "." + g.timestamp + "." + g.body));
    }
    EXPECT_EQ(h.box->depth(), 0u);
}

TEST(NotifyLoopback, GoneDisables) {
    net::io_context io;
    harness h;
    receiver r(io.get_executor());
    r.statuses = {410};
    write_file(h.dir.path / "whsec", k_whsec_a);
    auto s = webhook_sink::create(io.get_executor(), loopback_config(r, h.dir.path / "whsec"));
    ASSERT_TRUE(s.ok()) << s.err().describe();
    std::vector<std::unique_ptr<sink>> sinks;
    sinks.push_back(std::move(s.value()));
    dispatcher d(io.get_executor(), *h.box, std::move(sinks), h.opts);
    drive(io, loopback(h, r, d, {numbered_event(1), numbered_event(2)},
                       [&] { return h.count(report::kind::disabled) == 1; }));
    EXPECT_EQ(r.got.size(), 1u);
    EXPECT_TRUE(d.disabled("hub"));
    EXPECT_EQ(h.box->depth(), 0u);
}

TEST(NotifyLoopback, NoReceiverIsRetriedAndTheErrorHidesThePath) {
    net::io_context io;
    harness h;
    // A port nobody listens on: bind one, note it, close it.
    std::string url;
    {
        receiver gone(io.get_executor());
        url = gone.url();
        gone.close();
    }
    write_file(h.dir.path / "whsec", k_whsec_a);
    webhook_config c;
    c.name = "hub";
    c.url = url;
    c.secret_files = {h.dir.path / "whsec"};
    c.timeout = 1 * k_second;
    auto s = webhook_sink::create(io.get_executor(), c);
    ASSERT_TRUE(s.ok());
    std::vector<std::unique_ptr<sink>> sinks;
    sinks.push_back(std::move(s.value()));
    dispatcher d(io.get_executor(), *h.box, std::move(sinks), h.opts);
    drive(io, publish_and_wait(h, d, {numbered_event(1)},
                               [&] { return h.count(report::kind::retrying) >= 2; }));
    EXPECT_EQ(h.reports[0].status, 0);
    EXPECT_FALSE(h.reports[0].error.empty());
    EXPECT_EQ(h.reports[0].error.find("/hooks/keyrotd"), std::string::npos) << h.reports[0].error;
    EXPECT_EQ(h.box->depth(), 1u);
}

TEST(NotifyLoopback, RefusesPlainHttpToARemoteHostAndUnsignedHooks) {
    net::io_context io;
    temp_dir d;
    write_file(d.path / "whsec", k_whsec_a);
    webhook_config c;
    c.name = "hub";
    c.url = "http://hooks.example.com/x";
    c.secret_files = {d.path / "whsec"};
    EXPECT_FALSE(webhook_sink::create(io.get_executor(), c).ok());
    c.url = "https://hooks.example.com/x";
    c.secret_files.clear();
    EXPECT_FALSE(webhook_sink::create(io.get_executor(), c).ok());
    EXPECT_EQ(split_url("https://h:8443"),
              (std::pair<std::string, std::string>{"https://h:8443", "/"}));
    EXPECT_EQ(split_url("https://h/a/b/"),
              (std::pair<std::string, std::string>{"https://h", "/a/b/"}));
}

}  // namespace notify_test
