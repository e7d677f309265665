#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "obs/recorder.hpp"
#include "temp_dir.hpp"

namespace obs_metrics_test {

using keyrot::exec::action_record;
using keyrot::exec::pass_summary;
using keyrot::obs::metrics;

namespace {

using label_map = std::map<std::string, std::string>;

// The value of one series (counter, gauge, or a histogram's sample count).
std::optional<double> value(const prometheus::Registry& reg, const std::string& name,
                            const label_map& labels) {
    for (const auto& family : reg.Collect()) {
        if (family.name != name) continue;
        for (const auto& m : family.metric) {
            label_map got;
            for (const auto& l : m.label) got[l.name] = l.value;
            if (got != labels) continue;
            switch (family.type) {
                case prometheus::MetricType::Counter:
                    return m.counter.value;
                case prometheus::MetricType::Gauge:
                    return m.gauge.value;
                case prometheus::MetricType::Histogram:
                    return static_cast<double>(m.histogram.sample_count);
                default:
                    return std::nullopt;
            }
        }
    }
    return std::nullopt;
}

std::size_t series(const prometheus::Registry& reg, const std::string& name) {
    for (const auto& family : reg.Collect())
        if (family.name == name) return family.metric.size();
    return 0;
}

std::string exposition(const prometheus::Registry& reg) {
    return prometheus::TextSerializer().Serialize(reg.Collect());
}

action_record record(std::string action) {
    action_record r;
    r.ts = keyrot::as_sys_ms(1795608000123);
    r.organization = "acme";
    r.developer = "dev@example.com";
    r.app = "billing";
    r.policy = "p90";
    r.action = keyrot::exec::parse_audit_action(action).value();
    r.key = "0123456789abcdef";
    return r;
}

keyrot::exec::key_record key(std::string app, std::string fp, keyrot::plan::key_state st,
                             keyrot::time_or_never expires) {
    keyrot::exec::key_record k;
    k.developer = "dev@example.com";
    k.app = std::move(app);
    k.policy = "p90";
    k.key.fingerprint = std::move(fp);
    k.key.state = st;
    k.key.expires_at = expires;
    return k;
}

pass_summary pass(bool ok) {
    pass_summary s;
    s.organization = "acme";
    s.ok = ok;
    s.started = keyrot::as_sys_ms(1795608000000);
    s.took = std::chrono::duration<double>(2.5);
    s.next_wake = keyrot::as_sys_ms(1795611600000);
    pass_summary::policy_counts c;
    c.policy = "p90";
    c.valid = 3;
    c.due = 1;
    c.overlap = 2;
    c.expired = 4;
    c.revoked = 5;
    c.apps_without_valid_key = 1;
    s.by_policy.push_back(c);
    return s;
}

struct obs_metrics_registry : ::testing::Test {
    std::shared_ptr<prometheus::Registry> reg = std::make_shared<prometheus::Registry>();
    metrics m{reg, {.version = "1.2.3"}};
};

}  // namespace

TEST_F(obs_metrics_registry, static_series_exist_from_the_start) {
    EXPECT_EQ(value(*reg, "keyrotd_build_info", {{"version", "1.2.3"}}), 1);
    EXPECT_EQ(value(*reg, "keyrotd_leader", {}), 1);
    EXPECT_EQ(value(*reg, "keyrotd_config_reloads_total", {{"outcome", "success"}}), 0);
    EXPECT_EQ(value(*reg, "keyrotd_config_reloads_total", {{"outcome", "failure"}}), 0);
    m.set_leader(false);
    m.set_interval(600);
    m.on_config_reload(true);
    m.on_config_reload(false);
    m.on_config_reload(false);
    EXPECT_EQ(value(*reg, "keyrotd_leader", {}), 0);
    EXPECT_EQ(value(*reg, "keyrotd_interval_seconds", {}), 600);
    EXPECT_EQ(value(*reg, "keyrotd_config_reloads_total", {{"outcome", "success"}}), 1);
    EXPECT_EQ(value(*reg, "keyrotd_config_reloads_total", {{"outcome", "failure"}}), 2);
}

TEST_F(obs_metrics_registry, actions_count_by_outcome) {
    m.on_action(record("created"));
    auto late = record("created");
    late.late = true;
    m.on_action(late);
    m.on_action(record("completed"));
    m.on_action(record("revoked"));
    m.on_action(record("deleted"));
    m.on_action(record("deleted"));
    m.on_action(record("failed"));
    auto drift = record("skipped");
    drift.detail = "overlap over, but successor ... not revoked (drift)";
    m.on_action(drift);
    m.on_action(record("skipped"));
    auto dry = record("created");
    dry.dry_run = true;
    m.on_action(dry);

    const label_map ok{{"organization", "acme"}, {"policy", "p90"}, {"outcome", "success"}};
    const label_map bad{{"organization", "acme"}, {"policy", "p90"}, {"outcome", "failure"}};
    EXPECT_EQ(value(*reg, "keyrotd_rotations_total", ok), 2);
    EXPECT_EQ(value(*reg, "keyrotd_rotations_total", bad), 1);
    EXPECT_EQ(value(*reg, "keyrotd_revocations_total", ok), 1);
    EXPECT_EQ(value(*reg, "keyrotd_deletions_total", ok), 2);
    EXPECT_EQ(
        value(*reg, "keyrotd_late_rotations_total", {{"organization", "acme"}, {"policy", "p90"}}),
        1);
    EXPECT_EQ(value(*reg, "keyrotd_drift_total", {{"organization", "acme"}, {"policy", "p90"}}), 1);
    EXPECT_EQ(value(*reg, "keyrotd_dry_run_actions_total",
                    {{"organization", "acme"}, {"policy", "p90"}, {"action", "created"}}),
              1);

    const std::string text = exposition(*reg);
    EXPECT_NE(
        text.find(
            "keyrotd_rotations_total{organization=\"acme\",outcome=\"success\",policy=\"p90\"} 2"),
        std::string::npos)
        << text;
}

TEST_F(obs_metrics_registry, pass_sets_gauges_histogram_and_timestamps) {
    m.on_pass(pass(true));
    const label_map p{{"organization", "acme"}, {"policy", "p90"}};
    auto state = [&](const char* s) {
        return value(*reg, "keyrotd_keys",
                     {{"organization", "acme"}, {"policy", "p90"}, {"state", s}});
    };
    EXPECT_EQ(state("valid"), 3);
    EXPECT_EQ(state("due"), 1);
    EXPECT_EQ(state("overlap"), 2);
    EXPECT_EQ(state("expired"), 4);
    EXPECT_EQ(state("revoked"), 5);
    EXPECT_EQ(value(*reg, "keyrotd_apps_without_valid_key", p), 1);
    EXPECT_EQ(value(*reg, "keyrotd_pass_duration_seconds", {{"organization", "acme"}}), 1);
    EXPECT_EQ(
        value(*reg, "keyrotd_last_successful_pass_timestamp_seconds", {{"organization", "acme"}}),
        1795608002.5);
    EXPECT_EQ(value(*reg, "keyrotd_next_action_timestamp_seconds", {{"organization", "acme"}}),
              1795611600);
    EXPECT_EQ(
        value(*reg, "keyrotd_passes_total", {{"organization", "acme"}, {"outcome", "success"}}), 1);

    // A failed pass that still saw the inventory updates the gauges but not the
    // last-success time; one that saw nothing keeps the last values.
    auto failed = pass(false);
    failed.started += std::chrono::seconds(60);
    failed.by_policy[0].valid = 7;
    m.on_pass(failed);
    EXPECT_EQ(state("valid"), 7);
    EXPECT_EQ(
        value(*reg, "keyrotd_last_successful_pass_timestamp_seconds", {{"organization", "acme"}}),
        1795608002.5);
    pass_summary blind;
    blind.organization = "acme";
    blind.ok = false;
    blind.next_wake = keyrot::time_or_never::never();
    m.on_pass(blind);
    EXPECT_EQ(state("valid"), 7);
    EXPECT_EQ(value(*reg, "keyrotd_pass_duration_seconds", {{"organization", "acme"}}), 3);
    EXPECT_EQ(
        value(*reg, "keyrotd_passes_total", {{"organization", "acme"}, {"outcome", "failure"}}), 2);
    // Nothing scheduled: no next-action series.
    EXPECT_FALSE(value(*reg, "keyrotd_next_action_timestamp_seconds", {{"organization", "acme"}}));

    // A policy that disappears (reload) loses its series.
    auto renamed = pass(true);
    renamed.by_policy[0].policy = "p30";
    m.on_pass(renamed);
    EXPECT_FALSE(state("valid"));
    EXPECT_FALSE(value(*reg, "keyrotd_apps_without_valid_key", p));
    EXPECT_EQ(value(*reg, "keyrotd_keys",
                    {{"organization", "acme"}, {"policy", "p30"}, {"state", "valid"}}),
              3);
}

TEST_F(obs_metrics_registry, per_key_expiry_series_follow_the_keys) {
    using st = keyrot::plan::key_state;
    auto s = pass(true);
    s.keys = {key("a", "1111111111111111", st::valid, keyrot::as_sys_ms(1800000000000)),
              key("a", "2222222222222222", st::overlap, keyrot::as_sys_ms(1800000001000)),
              key("b", "3333333333333333", st::due, keyrot::as_sys_ms(1800000002000)),
              key("b", "4444444444444444", st::revoked,
                  keyrot::as_sys_ms(1800000003000)),  // revoked: not a series
              key("c", "5555555555555555", st::valid,
                  keyrot::time_or_never::never())};  // never: not a series
    m.on_pass(s);
    EXPECT_EQ(series(*reg, "keyrotd_key_expiry_timestamp_seconds"), 3u);
    EXPECT_EQ(value(*reg, "keyrotd_key_expiry_timestamp_seconds",
                    {{"organization", "acme"},
                     {"developer", "dev@example.com"},
                     {"app", "a"},
                     {"key", "2222222222222222"}}),
              1800000001);

    s.keys.erase(s.keys.begin(), s.keys.begin() + 2);  // app a's keys are gone
    m.on_pass(s);
    EXPECT_EQ(series(*reg, "keyrotd_key_expiry_timestamp_seconds"), 1u);
    EXPECT_FALSE(value(*reg, "keyrotd_key_expiry_timestamp_seconds",
                       {{"organization", "acme"},
                        {"developer", "dev@example.com"},
                        {"app", "a"},
                        {"key", "1111111111111111"}}));

    // Another organization's series are its own.
    auto other = pass(true);
    other.organization = "beta";
    other.keys = {key("z", "9999999999999999", st::valid, keyrot::as_sys_ms(1800000000000))};
    m.on_pass(other);
    EXPECT_EQ(series(*reg, "keyrotd_key_expiry_timestamp_seconds"), 2u);
    s.keys.clear();
    m.on_pass(s);
    EXPECT_EQ(series(*reg, "keyrotd_key_expiry_timestamp_seconds"), 1u);
}

TEST(obs_metrics, per_key_off_exports_no_key_series) {
    auto reg = std::make_shared<prometheus::Registry>();
    metrics m{reg, {.version = "x", .per_key = false}};
    keyrot::obs::recorder rec(nullptr, &m);
    EXPECT_FALSE(rec.wants_keys());
    auto s = pass(true);
    s.keys = {key("a", "1111111111111111", keyrot::plan::key_state::valid,
                  keyrot::as_sys_ms(1800000000000))};
    m.on_pass(s);
    EXPECT_EQ(series(*reg, "keyrotd_key_expiry_timestamp_seconds"), 0u);
}

TEST_F(obs_metrics_registry, apigee_requests) {
    m.on_apigee_request("get", 200, 0.02);
    m.on_apigee_request("GET", 200, 0.03);
    m.on_apigee_request("POST", 429, 0.1);
    m.on_apigee_request("POST", 0, 30);
    m.on_apigee_request("BREW", 418, 1);
    std::function<void(std::string_view, int, double)> cb = m.request_observer();
    cb("GET", 200, 0.5);
    EXPECT_EQ(value(*reg, "keyrotd_apigee_requests_total", {{"method", "GET"}, {"code", "200"}}),
              3);
    EXPECT_EQ(value(*reg, "keyrotd_apigee_requests_total", {{"method", "POST"}, {"code", "429"}}),
              1);
    EXPECT_EQ(value(*reg, "keyrotd_apigee_requests_total", {{"method", "POST"}, {"code", "error"}}),
              1);
    EXPECT_EQ(value(*reg, "keyrotd_apigee_requests_total", {{"method", "OTHER"}, {"code", "418"}}),
              1);
    EXPECT_EQ(value(*reg, "keyrotd_apigee_request_duration_seconds", {{"method", "POST"}}), 2);
    const std::string text = exposition(*reg);
    EXPECT_NE(
        text.find("keyrotd_apigee_request_duration_seconds_bucket{method=\"GET\",le=\"0.025\"} 1"),
        std::string::npos)
        << text;
}

TEST_F(obs_metrics_registry, recorder_audits_then_counts) {
    keyrot::obs::recorder rec(nullptr, &m);
    EXPECT_TRUE(rec.wants_keys());
    EXPECT_TRUE(rec.on_action(record("created")));
    rec.on_pass(pass(true));
    EXPECT_EQ(value(*reg, "keyrotd_rotations_total",
                    {{"organization", "acme"}, {"policy", "p90"}, {"outcome", "success"}}),
              1);
    EXPECT_EQ(
        value(*reg, "keyrotd_passes_total", {{"organization", "acme"}, {"outcome", "success"}}), 1);
    EXPECT_EQ(keyrot::obs::action_log_level(keyrot::exec::audit_action::failed),
              spdlog::level::err);
    EXPECT_EQ(keyrot::obs::action_log_level(keyrot::exec::audit_action::skipped),
              spdlog::level::warn);
    EXPECT_EQ(keyrot::obs::action_log_level(keyrot::exec::audit_action::revoked),
              spdlog::level::info);
}

TEST_F(obs_metrics_registry, recorder_reports_an_audit_failure) {
    const keyrot::testing::temp_dir dir("obs_rec");
    keyrot::obs::audit_log audit(dir.path.string());
    keyrot::obs::recorder rec(&audit, &m);
    std::ostringstream out;
    keyrot::obs::setup_logging("info", "text",
                               std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    auto bad = record("created");
    bad.key = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";  // a raw key by mistake
    EXPECT_FALSE(rec.on_action(bad));
    keyrot::obs::setup_logging("info", "text");
    EXPECT_EQ(out.str().find("AbCdEf"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("audit record refused"), std::string::npos) << out.str();
    EXPECT_EQ(value(*reg, "keyrotd_audit_write_failures_total", {}), 1);
    EXPECT_TRUE(rec.on_action(record("revoked")));
}

TEST_F(obs_metrics_registry, policy_apps_skipped_apps_and_skipped_keys) {
    auto s = pass(true);
    s.by_policy[0].apps = 4;
    s.by_policy[0].skipped = 2;
    pass_summary::policy_counts idle;
    idle.policy = "typo";
    s.by_policy.push_back(idle);
    s.skipped_apps = {{"team-app", 3}, {"developer-inactive", 1}};
    m.on_pass(s);
    const auto org = std::string("acme");
    EXPECT_EQ(value(*reg, "keyrotd_policy_apps", {{"organization", org}, {"policy", "p90"}}), 4);
    EXPECT_EQ(value(*reg, "keyrotd_policy_apps", {{"organization", org}, {"policy", "typo"}}), 0);
    EXPECT_EQ(value(*reg, "keyrotd_keys",
                    {{"organization", org}, {"policy", "p90"}, {"state", "skipped"}}),
              2);
    EXPECT_EQ(value(*reg, "keyrotd_apps_skipped", {{"organization", org}, {"reason", "team-app"}}),
              3);
    // Every known reason has a series, 0 when none.
    EXPECT_EQ(value(*reg, "keyrotd_apps_skipped",
                    {{"organization", org}, {"reason", "developer-unknown"}}),
              0);
    // Next pass: the team apps are gone, the idle policy removed (reload).
    s.skipped_apps = {};
    s.by_policy.pop_back();
    m.on_pass(s);
    EXPECT_EQ(value(*reg, "keyrotd_apps_skipped", {{"organization", org}, {"reason", "team-app"}}),
              0);
    EXPECT_FALSE(value(*reg, "keyrotd_policy_apps", {{"organization", org}, {"policy", "typo"}}));
}

TEST_F(obs_metrics_registry, delivery_counts_and_held_revocations) {
    keyrot::exec::delivery_record d;
    d.organization = "acme";
    d.developer = "dev@example.com";
    d.app = "billing";
    d.policy = "p90";
    d.key = "0123456789abcdef";
    d.stage = "gate";
    d.ok = false;
    keyrot::obs::recorder rec(nullptr, &m);
    rec.on_delivery(d);
    d.ok = true;
    rec.on_delivery(d);
    rec.on_delivery(d);
    auto deliveries = [&](const char* stage, const char* outcome) {
        return value(
            *reg, "keyrotd_key_deliveries_total",
            {{"organization", "acme"}, {"policy", "p90"}, {"stage", stage}, {"outcome", outcome}});
    };
    EXPECT_EQ(deliveries("gate", "failure"), 1);
    EXPECT_EQ(deliveries("gate", "success"), 2);
    EXPECT_FALSE(deliveries("overlap", "success"));

    // Held revocations: a series per policy (0 when none), and the earliest
    // expiry among the held keys only while some are held and expire.
    const label_map p{{"organization", "acme"}, {"policy", "p90"}};
    auto s = pass(true);
    m.on_pass(s);
    EXPECT_EQ(value(*reg, "keyrotd_revocations_held", p), 0);
    EXPECT_FALSE(value(*reg, "keyrotd_revocation_held_expiry_timestamp_seconds", p));
    s.by_policy[0].revocations_held = 2;
    s.by_policy[0].held_expiry = keyrot::as_sys_ms(1795700000000);
    m.on_pass(s);
    EXPECT_EQ(value(*reg, "keyrotd_revocations_held", p), 2);
    EXPECT_EQ(value(*reg, "keyrotd_revocation_held_expiry_timestamp_seconds", p), 1795700000);
    s.by_policy[0].held_expiry = keyrot::time_or_never::never();  // held keys that never expire
    m.on_pass(s);
    EXPECT_FALSE(value(*reg, "keyrotd_revocation_held_expiry_timestamp_seconds", p));
    s.by_policy[0].revocations_held = 0;
    m.on_pass(s);
    EXPECT_EQ(value(*reg, "keyrotd_revocations_held", p), 0);
    // A policy that disappears loses both.
    s.by_policy[0].policy = "p30";
    m.on_pass(s);
    EXPECT_FALSE(value(*reg, "keyrotd_revocations_held", p));
}

TEST(earliest, never_is_later_than_any_instant) {
    const keyrot::sys_ms t5 = keyrot::as_sys_ms(5), t7 = keyrot::as_sys_ms(7);
    EXPECT_EQ(keyrot::earliest(keyrot::time_or_never::never(), t5), t5);
    EXPECT_EQ(keyrot::earliest(t5, keyrot::time_or_never::never()), t5);
    EXPECT_EQ(keyrot::earliest(t7, t5), t5);
    EXPECT_EQ(keyrot::earliest(keyrot::time_or_never::never(), keyrot::time_or_never::never()),
              keyrot::time_or_never::never());
}

}  // namespace obs_metrics_test
