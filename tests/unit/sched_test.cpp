// Leader election's pure parts: MicroTime, Lease JSON both ways, expiry and the
// records a candidate writes; lease_config_from_env on a scripted environment.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sched/leader.hpp"

namespace keyrot::sched::sched_test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr sys_ms k_t0{std::chrono::milliseconds{1795608000000}};  // 2026-11-25T12:00:00Z

// What the API server answers for a Lease.
std::string api_lease(const std::string& holder, const std::string& rv) {
    return json{{"kind", "Lease"},
                {"apiVersion", "coordination.k8s.io/v1"},
                {"metadata",
                 {{"name", "keyrotd"},
                  {"namespace", "keyrotd"},
                  {"uid", "3d5d1c0e"},
                  {"resourceVersion", rv},
                  {"labels", {{"team", "sre"}}},
                  {"creationTimestamp", "2026-11-25T11:00:00Z"}}},
                {"spec",
                 {{"holderIdentity", holder},
                  {"leaseDurationSeconds", 15},
                  {"acquireTime", "2026-11-25T11:59:00.000000Z"},
                  {"renewTime", "2026-11-25T12:00:00.250000Z"},
                  {"leaseTransitions", 3}}}}
        .dump();
}

TEST(LeaseJson, Parses) {
    auto obj = parse_lease(api_lease("pod-a", "1234"));
    ASSERT_TRUE(obj.ok()) << obj.err().describe();
    EXPECT_EQ(obj->resource_version, "1234");
    EXPECT_EQ(obj->spec.holder, "pod-a");
    EXPECT_EQ(obj->spec.lease_duration_seconds, 15);
    EXPECT_EQ(obj->spec.acquire_time, k_t0 - 60000ms);
    EXPECT_EQ(obj->spec.renew_time, k_t0 + 250ms);
    EXPECT_EQ(obj->spec.lease_transitions, 3);
}

TEST(LeaseJson, EmptySpecAndNullsAreAFreeLease) {
    for (
        const char* body :
        {R"({"kind":"Lease","metadata":{"resourceVersion":"7"}})",
         R"({"metadata":{"resourceVersion":"7"},"spec":{}})",
         R"({"metadata":{"resourceVersion":"7"},"spec":null})",
         R"({"metadata":{"resourceVersion":"7"},"spec":{"holderIdentity":null,"renewTime":null}})"}) {
        auto obj = parse_lease(body);
        ASSERT_TRUE(obj.ok()) << body;
        EXPECT_EQ(obj->spec, lease_record{}) << body;
    }
}

TEST(LeaseJson, RejectsWhatIsNotALease) {
    for (const char* body :
         {"", "[]", "not json", R"({"kind":"Status","metadata":{"resourceVersion":"1"}})",
          R"({"metadata":{}})", R"({"metadata":{"resourceVersion":""}})",
          R"({"metadata":{"resourceVersion":5}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":[]})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"holderIdentity":5}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"leaseDurationSeconds":"15"}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"leaseDurationSeconds":-1}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"leaseTransitions":1.5}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"renewTime":"yesterday"}})",
          R"({"metadata":{"resourceVersion":"1"},"spec":{"acquireTime":12}})"}) {
        auto obj = parse_lease(body);
        EXPECT_FALSE(obj.ok()) << body;
        if (!obj.ok()) {
            EXPECT_EQ(obj.err().what, error::kind::protocol);
        }
    }
}

TEST(LeaseJson, CreateBody) {
    lease_record rec{"pod-a", 15, k_t0, k_t0 + 1ms, 0};
    auto j = json::parse(lease_create_body("ns1", "keyrotd", rec));
    EXPECT_EQ(j["apiVersion"], "coordination.k8s.io/v1");
    EXPECT_EQ(j["kind"], "Lease");
    EXPECT_EQ(j["metadata"], (json{{"name", "keyrotd"}, {"namespace", "ns1"}}));
    EXPECT_EQ(j["spec"], (json{{"holderIdentity", "pod-a"},
                               {"leaseDurationSeconds", 15},
                               {"acquireTime", "2026-11-25T12:00:00.000000Z"},
                               {"renewTime", "2026-11-25T12:00:00.001000Z"},
                               {"leaseTransitions", 0}}));
    // What we write, we read back the same.
    j["metadata"]["resourceVersion"] = "1";
    auto back = parse_lease(j.dump());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->spec, rec);
}

TEST(LeaseJson, UpdateKeepsMetadataAndUnknownFields) {
    auto cur = parse_lease(api_lease("pod-a", "1234"));
    ASSERT_TRUE(cur.ok());
    lease_record rec{"pod-b", 15, k_t0 + 5000ms, k_t0 + 5000ms, 4};
    auto j = json::parse(lease_update_body(*cur, rec));
    EXPECT_EQ(j["metadata"]["resourceVersion"], "1234");
    EXPECT_EQ(j["metadata"]["uid"], "3d5d1c0e");
    EXPECT_EQ(j["metadata"]["labels"]["team"], "sre");
    EXPECT_EQ(j["kind"], "Lease");
    auto back = parse_lease(j.dump());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->spec, rec);
    // A time left unset is removed, not kept from the old object.
    rec.acquire_time.reset();
    j = json::parse(lease_update_body(*cur, rec));
    EXPECT_FALSE(j["spec"].contains("acquireTime"));
}

TEST(LeaseMath, SecondsRoundUp) {
    EXPECT_EQ(lease_seconds(15s), 15);
    EXPECT_EQ(lease_seconds(2500ms), 3);
    EXPECT_EQ(lease_seconds(1ms), 1);
    EXPECT_EQ(lease_seconds(0ms), 1);
}

TEST(LeaseMath, ExpiryCountsFromTheObservationOnly) {
    // The steady clock's origin is arbitrary; any point will do.
    const steady_time seen = steady_time{} + std::chrono::hours(100);
    lease_record rec{"pod-a", 15, k_t0, k_t0, 0};
    EXPECT_EQ(lease_expiry(rec, seen), seen + std::chrono::seconds(15));
    // The holder's clock (renewTime) far ahead or far behind changes nothing
    // (client-go never trusts the record's timestamps).
    for (std::chrono::milliseconds skew : {-3'600'000ms, -4000ms, 0ms, 4000ms, 3'600'000ms}) {
        rec.renew_time = k_t0 + skew;
        EXPECT_EQ(lease_expiry(rec, seen), seen + std::chrono::seconds(15)) << skew.count();
    }
    rec.renew_time.reset();
    EXPECT_EQ(lease_expiry(rec, seen), seen + std::chrono::seconds(15));
    // A released lease (duration 1) expires a second after it was seen.
    EXPECT_EQ(lease_expiry(release_record(rec, k_t0), seen), seen + std::chrono::seconds(1));
}

lease_config valid_config() {
    lease_config cfg;
    cfg.api_url = "https://10.96.0.1:443";
    cfg.namespace_ = "keyrotd";
    cfg.identity = "pod-a";
    return cfg;
}

TEST(LeaseMath, RenewDeadlineEndsWritingBeforeExpiry) {
    // The invariant the design rests on, for every timing validate() accepts: a
    // holder stops writing at (send time of its last write) + renew_deadline;
    // another counts the lease (the record this holder wrote, its duration in
    // whole seconds) from when it saw that write, which is no earlier than it
    // was sent. Breaking validate()'s rule or rounding the duration down fails here.
    const steady_time sent = steady_time{} + std::chrono::hours(1);
    const std::int64_t grid[] = {100,  500,   999,   1000,  1001,  1500,  2000,  2400, 2401,
                                 9999, 10000, 10001, 10500, 14999, 15000, 15001, 60000};
    int accepted = 0, refused = 0;
    for (std::int64_t lease : grid)
        for (std::int64_t renew : grid)
            for (std::int64_t retry : grid) {
                lease_config cfg = valid_config();
                cfg.lease_duration = std::chrono::milliseconds(lease);
                cfg.renew_deadline = std::chrono::milliseconds(renew);
                cfg.retry_period = std::chrono::milliseconds(retry);
                if (!validate(cfg)) {
                    ++refused;
                    continue;
                }
                ++accepted;
                const auto rec =
                    next_record(std::nullopt, "pod-a", k_t0, lease_seconds(cfg.lease_duration));
                for (std::chrono::milliseconds after : {0ms, 1ms, 5 * k_second}) {
                    const steady_time seen = sent + after;
                    EXPECT_LT(sent + std::chrono::milliseconds(cfg.renew_deadline),
                              lease_expiry(rec, seen))
                        << "lease " << lease << " renew " << renew << " retry " << retry;
                }
            }
    EXPECT_GT(accepted, 0);
    EXPECT_GT(refused, 0);
}

TEST(LeaseMath, RetryJitterAsClientGo) {
    // JitterFactor 1.2: retry_period x (1 + u x 1.2).
    EXPECT_EQ(retry_wait(2000ms, 0.0), 2000ms);
    EXPECT_EQ(retry_wait(2000ms, 0.5), 3200ms);
    EXPECT_EQ(retry_wait(500ms, 0.999999), 1099ms);
    EXPECT_EQ(retry_wait(2000ms, 1.0), 4400ms);
    EXPECT_EQ(retry_wait(2000ms, -1.0), 2000ms);  // clamped
    EXPECT_EQ(retry_wait(2000ms, 7.0), 4400ms);
}

TEST(LeaseConfig, ValidateAsClientGo) {
    auto cfg = valid_config();
    EXPECT_TRUE(validate(cfg).ok());  // 15 s / 10 s / 2 s
    // renew deadline must exceed JitterFactor (1.2) x retry period.
    cfg.lease_duration = 3000ms;
    cfg.retry_period = 500ms;
    cfg.renew_deadline = 600ms;
    auto v = validate(cfg);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.err().what, error::kind::config);
    EXPECT_NE(v.err().message.find("1.2"), std::string::npos) << v.err().message;
    cfg.renew_deadline = 601ms;
    EXPECT_TRUE(validate(cfg).ok());
    cfg.renew_deadline = 550ms;  // above the retry period, not above 1.2 x
    EXPECT_FALSE(validate(cfg).ok());
    // lease duration must exceed the renew deadline.
    cfg.renew_deadline = 3000ms;
    EXPECT_FALSE(validate(cfg).ok());
    cfg.renew_deadline = 2000ms;
    cfg.retry_period = 0ms;
    EXPECT_FALSE(validate(cfg).ok());
    cfg.retry_period = 500ms;
    EXPECT_TRUE(validate(cfg).ok());
    cfg.identity = "";
    EXPECT_FALSE(validate(cfg).ok());
}

TEST(LeaseRecords, CreateTakeoverRenewRelease) {
    auto first = next_record(std::nullopt, "pod-a", k_t0, 15);
    EXPECT_EQ(first, (lease_record{"pod-a", 15, k_t0, k_t0, 0}));
    auto renewed = next_record(first, "pod-a", k_t0 + 2000ms, 15);
    EXPECT_EQ(renewed, (lease_record{"pod-a", 15, k_t0, k_t0 + 2000ms, 0}));
    auto taken = next_record(renewed, "pod-b", k_t0 + 20000ms, 15);
    EXPECT_EQ(taken, (lease_record{"pod-b", 15, k_t0 + 20000ms, k_t0 + 20000ms, 1}));
    auto released = release_record(taken, k_t0 + 21000ms);
    EXPECT_EQ(released, (lease_record{"", 1, k_t0 + 21000ms, k_t0 + 21000ms, 1}));
    // After a release the next holder counts a transition, as client-go does.
    EXPECT_EQ(next_record(released, "pod-b", k_t0 + 22000ms, 15).lease_transitions, 2);
}

class Env : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* n :
             {"KEYROTD_LEADER_ELECTION", "KEYROTD_LEASE_URL", "KUBERNETES_SERVICE_HOST",
              "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE", "POD_NAME", "KEYROTD_LEASE_TOKEN_FILE",
              "KEYROTD_LEASE_CA_FILE", "KEYROTD_LEASE_NAME", "KEYROTD_LEASE_DURATION",
              "KEYROTD_LEASE_RENEW_DEADLINE", "KEYROTD_LEASE_RETRY_PERIOD"})
            unsetenv(n);
    }
    void TearDown() override { SetUp(); }
};

TEST_F(Env, OutsideKubernetesNoElection) { EXPECT_FALSE(lease_config_from_env().has_value()); }

TEST_F(Env, InCluster) {
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    setenv("POD_NAMESPACE", "keyrotd", 1);
    setenv("POD_NAME", "keyrotd-5d9f-abcde", 1);
    auto cfg = lease_config_from_env();
    ASSERT_TRUE(cfg.has_value());
    EXPECT_EQ(cfg->api_url, "https://10.96.0.1:6443");
    EXPECT_EQ(cfg->namespace_, "keyrotd");
    EXPECT_EQ(cfg->identity, "keyrotd-5d9f-abcde");
    EXPECT_EQ(cfg->name, "keyrotd");
    EXPECT_EQ(cfg->lease_duration, 15000ms);
    EXPECT_EQ(cfg->renew_deadline, 10000ms);
    EXPECT_EQ(cfg->retry_period, 2000ms);
    EXPECT_EQ(cfg->token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
    EXPECT_EQ(cfg->ca_file, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    auto o = lease_http_options(*cfg);
    EXPECT_EQ(o.base_url, "https://10.96.0.1:6443");
    EXPECT_EQ(o.max_attempts, 1);
    EXPECT_LT(o.timeout, cfg->renew_deadline);

    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    unsetenv("KUBERNETES_SERVICE_PORT");
    EXPECT_EQ(lease_config_from_env()->api_url, "https://[fd00::1]:443");

    setenv("KEYROTD_LEADER_ELECTION", "off", 1);
    EXPECT_FALSE(lease_config_from_env().has_value());
}

TEST_F(Env, TestOverridesAndShortDurations) {
    setenv("KEYROTD_LEASE_URL", "http://127.0.0.1:8080", 1);
    setenv("POD_NAMESPACE", "ns", 1);
    setenv("POD_NAME", "a", 1);
    setenv("KEYROTD_LEASE_TOKEN_FILE", "/tmp/tok", 1);
    setenv("KEYROTD_LEASE_CA_FILE", "", 1);
    setenv("KEYROTD_LEASE_DURATION", "3s", 1);
    setenv("KEYROTD_LEASE_RENEW_DEADLINE", "2s", 1);
    setenv("KEYROTD_LEASE_RETRY_PERIOD", "500ms", 1);
    auto cfg = lease_config_from_env();
    ASSERT_TRUE(cfg.has_value());
    EXPECT_EQ(cfg->api_url, "http://127.0.0.1:8080");
    EXPECT_EQ(cfg->token_file, "/tmp/tok");
    EXPECT_EQ(cfg->ca_file, "");
    EXPECT_EQ(cfg->lease_duration, 3000ms);
    EXPECT_EQ(cfg->renew_deadline, 2000ms);
    EXPECT_EQ(cfg->retry_period, 500ms);
}

TEST_F(Env, StartUpErrorsThrow) {
    setenv("KEYROTD_LEASE_URL", "http://127.0.0.1:8080", 1);
    setenv("POD_NAME", "a", 1);
    setenv("KEYROTD_LEASE_TOKEN_FILE", "/nonexistent/token", 1);
    EXPECT_THROW(lease_config_from_env(), std::runtime_error);  // no namespace
    setenv("POD_NAMESPACE", "ns", 1);
    setenv("KEYROTD_LEASE_DURATION", "2s", 1);  // not above the 10 s renew deadline
    EXPECT_THROW(lease_config_from_env(), std::runtime_error);
    setenv("KEYROTD_LEASE_DURATION", "soon", 1);
    EXPECT_THROW(lease_config_from_env(), std::runtime_error);
    setenv("KEYROTD_LEASE_DURATION", "15s", 1);
    setenv("KEYROTD_LEASE_RETRY_PERIOD", "9s", 1);  // 10 s renew deadline <= 1.2 x 9 s
    EXPECT_THROW(lease_config_from_env(), std::runtime_error);
    setenv("KEYROTD_LEASE_RETRY_PERIOD", "8s", 1);  // 10 s > 9.6 s: fine
    EXPECT_NO_THROW(lease_config_from_env());
    setenv("POD_NAMESPACE", "Not_A_Namespace", 1);
    EXPECT_THROW(lease_config_from_env(), std::runtime_error);
}

}  // namespace
}  // namespace keyrot::sched::sched_test
