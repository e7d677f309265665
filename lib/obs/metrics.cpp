#include "obs/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <type_traits>

namespace keyrot::obs {

namespace {

using prometheus::Histogram;

// Passes take seconds to many minutes (a large org at 20 requests a second).
Histogram::BucketBoundaries pass_buckets() {
    return {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
}
Histogram::BucketBoundaries request_buckets() {
    return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// A bounded label value: Apigee calls only use these methods.
std::string method_label(std::string_view method) {
    std::string m(method);
    std::transform(m.begin(), m.end(), m.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    for (const char* known : {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"})
        if (m == known) return m;
    return "OTHER";
}

std::string code_label(int code) {
    if (code <= 0 || code > 999) return "error";
    return std::to_string(code);
}

double seconds_of(sys_ms ts) {
    return std::chrono::duration<double>(ts.time_since_epoch()).count();
}

template <typename R>
const char* classify_failed(const R& r) {
    if constexpr (requires { r.kind; }) {
        using K = std::remove_cvref_t<decltype(r.kind)>;
        if constexpr (std::is_same_v<K, plan::action_kind>) {
            switch (r.kind) {
                case plan::action_kind::revoke_key:
                    return "revocation";
                case plan::action_kind::delete_key:
                    return "deletion";
                default:
                    return "rotation";
            }
        } else {
            std::string_view k(r.kind);
            if (k.find("revoke") != std::string_view::npos) return "revocation";
            if (k.find("delete") != std::string_view::npos) return "deletion";
            return "rotation";
        }
    } else {
        return "rotation";
    }
}

}  // namespace

const char* failed_action_class(const exec::action_record& r) { return classify_failed(r); }

metrics::metrics(std::shared_ptr<prometheus::Registry> registry, metrics_options opt)
    : registry_(std::move(registry)),
      per_key_(opt.per_key),
      build_info_(prometheus::BuildGauge()
                      .Name("keyrotd_build_info")
                      .Help("Always 1; the version label says which keyrotd runs")
                      .Register(*registry_)),
      rotations_(prometheus::BuildCounter()
                     .Name("keyrotd_rotations_total")
                     .Help("Successor keys created (success) or that could not be (failure)")
                     .Register(*registry_)),
      revocations_(prometheus::BuildCounter()
                       .Name("keyrotd_revocations_total")
                       .Help("Keys revoked by keyrotd, by outcome")
                       .Register(*registry_)),
      deletions_(prometheus::BuildCounter()
                     .Name("keyrotd_deletions_total")
                     .Help("Replaced keys deleted by keyrotd, by outcome")
                     .Register(*registry_)),
      late_rotations_(prometheus::BuildCounter()
                          .Name("keyrotd_late_rotations_total")
                          .Help("Successors created for keys that had already expired")
                          .Register(*registry_)),
      drift_(prometheus::BuildCounter()
                 .Name("keyrotd_drift_total")
                 .Help("Old keys left approved because their successor lost products (per pass)")
                 .Register(*registry_)),
      dry_run_actions_(prometheus::BuildCounter()
                           .Name("keyrotd_dry_run_actions_total")
                           .Help("Actions a dry run logged instead of doing")
                           .Register(*registry_)),
      keys_(prometheus::BuildGauge()
                .Name("keyrotd_keys")
                .Help("Keys of matched apps at the last pass, by state")
                .Register(*registry_)),
      apps_without_valid_key_(prometheus::BuildGauge()
                                  .Name("keyrotd_apps_without_valid_key")
                                  .Help("Matched apps that have no valid key at the last pass")
                                  .Register(*registry_)),
      policy_apps_(prometheus::BuildGauge()
                       .Name("keyrotd_policy_apps")
                       .Help("Apps each policy governs at the last pass (0: it matches nothing)")
                       .Register(*registry_)),
      apps_skipped_(prometheus::BuildGauge()
                        .Name("keyrotd_apps_skipped")
                        .Help("Apps of the organization keyrotd leaves alone at the last pass, "
                              "by reason")
                        .Register(*registry_)),
      key_expiry_(prometheus::BuildGauge()
                      .Name("keyrotd_key_expiry_timestamp_seconds")
                      .Help("Expiry of each working key (fingerprint) that expires")
                      .Register(*registry_)),
      next_action_(prometheus::BuildGauge()
                       .Name("keyrotd_next_action_timestamp_seconds")
                       .Help("When the earliest known future action is due; absent if none")
                       .Register(*registry_)),
      deliveries_(prometheus::BuildCounter()
                      .Name("keyrotd_key_deliveries_total")
                      .Help("Deliveries of keys to their apps' targets (delivered and read back), "
                            "by stage and outcome")
                      .Register(*registry_)),
      revocations_held_(prometheus::BuildGauge()
                            .Name("keyrotd_revocations_held")
                            .Help("Old keys whose revocation was held at the last pass because "
                                  "their successor is not delivered to every target")
                            .Register(*registry_)),
      held_expiry_(prometheus::BuildGauge()
                       .Name("keyrotd_revocation_held_expiry_timestamp_seconds")
                       .Help("Earliest expiry among the old keys held for delivery; absent if "
                             "none (or none expires)")
                       .Register(*registry_)),
      pass_duration_(prometheus::BuildHistogram()
                         .Name("keyrotd_pass_duration_seconds")
                         .Help("Duration of a full pass over one organization")
                         .Register(*registry_)),
      passes_(prometheus::BuildCounter()
                  .Name("keyrotd_passes_total")
                  .Help("Passes over one organization, by outcome")
                  .Register(*registry_)),
      last_success_(prometheus::BuildGauge()
                        .Name("keyrotd_last_successful_pass_timestamp_seconds")
                        .Help("End of the last pass that read everything and failed nothing")
                        .Register(*registry_)),
      requests_(prometheus::BuildCounter()
                    .Name("keyrotd_apigee_requests_total")
                    .Help("Apigee management API request attempts, by method and HTTP status "
                          "(error: no response)")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("keyrotd_apigee_request_duration_seconds")
                            .Help("Duration of Apigee management API request attempts")
                            .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("keyrotd_config_reloads_total")
                   .Help("Configuration reloads (SIGHUP), by outcome")
                   .Register(*registry_)),
      audit_failures_(prometheus::BuildCounter()
                          .Name("keyrotd_audit_write_failures_total")
                          .Help("Audit records that could not be made durable")
                          .Register(*registry_)),
      leader_(prometheus::BuildGauge()
                  .Name("keyrotd_leader")
                  .Help("1 when this instance may write to Apigee")
                  .Register(*registry_)
                  .Add({})),
      interval_(prometheus::BuildGauge()
                    .Name("keyrotd_interval_seconds")
                    .Help("Configured interval between full passes")
                    .Register(*registry_)
                    .Add({})) {
    build_info_.Add({{"version", opt.version}}).Set(1);
    for (const char* outcome : {"success", "failure"}) reloads_.Add({{"outcome", outcome}});
    audit_failures_.Add({});
    leader_.Set(opt.leader ? 1 : 0);
}

void metrics::count_outcome(prometheus::Family<prometheus::Counter>& family,
                            const exec::action_record& r, const char* outcome) {
    family.Add({{"organization", r.organization}, {"policy", r.policy}, {"outcome", outcome}})
        .Increment();
}

void metrics::on_action(const exec::action_record& r) {
    if (r.dry_run) {
        // Nothing happened in Apigee: keep the real counters honest.
        dry_run_actions_
            .Add({{"organization", r.organization},
                  {"policy", r.policy},
                  {"action", std::string(exec::to_string(r.action))}})
            .Increment();
        return;
    }
    if (r.action == exec::audit_action::created) {
        count_outcome(rotations_, r, "success");
        if (r.late)
            late_rotations_.Add({{"organization", r.organization}, {"policy", r.policy}})
                .Increment();
    } else if (r.action == exec::audit_action::revoked) {
        count_outcome(revocations_, r, "success");
    } else if (r.action == exec::audit_action::deleted) {
        count_outcome(deletions_, r, "success");
    } else if (r.action == exec::audit_action::failed) {
        std::string_view what = failed_action_class(r);
        if (what == "revocation")
            count_outcome(revocations_, r, "failure");
        else if (what == "deletion")
            count_outcome(deletions_, r, "failure");
        else
            count_outcome(rotations_, r, "failure");
    } else if (r.action == exec::audit_action::skipped) {
        if (r.detail.find("drift") != std::string::npos)
            drift_.Add({{"organization", r.organization}, {"policy", r.policy}}).Increment();
    }
    // completed: the rotation was counted when the successor was created.
}

void metrics::on_delivery(const exec::delivery_record& d) {
    deliveries_
        .Add({{"organization", d.organization},
              {"policy", d.policy},
              {"stage", d.stage},
              {"outcome", d.ok ? "success" : "failure"}})
        .Increment();
}

void metrics::on_pass(const exec::pass_summary& s) {
    const std::string& org = s.organization;
    pass_duration_.Add({{"organization", org}}, pass_buckets()).Observe(s.took.count());
    passes_.Add({{"organization", org}, {"outcome", s.ok ? "success" : "failure"}}).Increment();
    if (s.ok)
        last_success_.Add({{"organization", org}})
            .Set(seconds_of(s.started) + std::max(0.0, s.took.count()));
    if (s.next_wake.is_never()) {
        if (next_action_.Has({{"organization", org}}))
            next_action_.Remove(&next_action_.Add({{"organization", org}}));
    } else {
        next_action_.Add({{"organization", org}}).Set(seconds_of(s.next_wake.at()));
    }

    // A failed pass that saw nothing (inventory unreadable) says nothing about the
    // keys: keep the last known values rather than dropping every series.
    const bool saw_state = s.ok || !s.by_policy.empty() || !s.keys.empty();
    if (!saw_state) return;

    std::lock_guard lock(mu_);
    org_series& series = orgs_[org];

    std::set<std::string> policies;
    for (const auto& c : s.by_policy) {
        policies.insert(c.policy);
        auto set = [&](const char* state, int n) {
            keys_.Add({{"organization", org}, {"policy", c.policy}, {"state", state}}).Set(n);
        };
        set("valid", c.valid);
        set("due", c.due);
        set("overlap", c.overlap);
        set("expired", c.expired);
        set("revoked", c.revoked);
        set("skipped", c.skipped);
        apps_without_valid_key_.Add({{"organization", org}, {"policy", c.policy}})
            .Set(c.apps_without_valid_key);
        policy_apps_.Add({{"organization", org}, {"policy", c.policy}}).Set(c.apps);
        revocations_held_.Add({{"organization", org}, {"policy", c.policy}})
            .Set(c.revocations_held);
        prometheus::Labels l{{"organization", org}, {"policy", c.policy}};
        if (c.revocations_held > 0 && !c.held_expiry.is_never())
            held_expiry_.Add(l).Set(seconds_of(c.held_expiry.at()));
        else if (held_expiry_.Has(l))
            held_expiry_.Remove(&held_expiry_.Add(l));
    }
    for (const auto& gone : series.policies) {
        if (policies.count(gone)) continue;
        for (const char* state : {"valid", "due", "overlap", "expired", "revoked", "skipped"}) {
            prometheus::Labels l{{"organization", org}, {"policy", gone}, {"state", state}};
            if (keys_.Has(l)) keys_.Remove(&keys_.Add(l));
        }
        prometheus::Labels l{{"organization", org}, {"policy", gone}};
        if (apps_without_valid_key_.Has(l))
            apps_without_valid_key_.Remove(&apps_without_valid_key_.Add(l));
        if (policy_apps_.Has(l)) policy_apps_.Remove(&policy_apps_.Add(l));
        if (revocations_held_.Has(l)) revocations_held_.Remove(&revocations_held_.Add(l));
        if (held_expiry_.Has(l)) held_expiry_.Remove(&held_expiry_.Add(l));
    }
    series.policies = std::move(policies);

    // Skipped apps by reason: the known reasons always have a series (0 when
    // none), so an alert on them never sees "no data"; others appear as seen.
    // ("team-app" is no longer used: team apps are rotated; it stays 0.)
    std::set<std::string> reasons = {"team-app",    "developer-inactive", "developer-unknown",
                                     "app-revoked", "team-inactive",      "team-unknown"};
    for (const auto& [reason, n] : s.skipped_apps) reasons.insert(reason);
    for (const auto& reason : reasons) {
        auto it = s.skipped_apps.find(reason);
        apps_skipped_.Add({{"organization", org}, {"reason", reason}})
            .Set(it == s.skipped_apps.end() ? 0 : it->second);
    }
    for (const auto& gone : series.skip_reasons) {
        if (reasons.count(gone)) continue;
        prometheus::Labels l{{"organization", org}, {"reason", gone}};
        if (apps_skipped_.Has(l)) apps_skipped_.Remove(&apps_skipped_.Add(l));
    }
    series.skip_reasons = std::move(reasons);

    if (!per_key_) return;
    std::map<key_labels, prometheus::Gauge*> expiry;
    for (const auto& k : s.keys) {
        if (!plan::key_works(k.key.state) || k.key.expires_at.is_never()) continue;
        key_labels id{k.team.empty() ? k.developer : "\x01" + k.team, k.app, k.key.fingerprint};
        prometheus::Labels labels{{"organization", org},
                                  {"developer", k.developer},
                                  {"app", k.app},
                                  {"key", k.key.fingerprint}};
        if (!k.team.empty()) labels["team"] = k.team;  // a team (AppGroup) app
        auto& g = key_expiry_.Add(labels);
        g.Set(seconds_of(k.key.expires_at.at()));
        expiry.emplace(std::move(id), &g);
    }
    for (const auto& [id, gauge] : series.expiry)
        if (!expiry.count(id)) key_expiry_.Remove(gauge);
    series.expiry = std::move(expiry);
}

void metrics::on_apigee_request(std::string_view method, int code, double seconds) {
    std::string m = method_label(method);
    requests_.Add({{"method", m}, {"code", code_label(code)}}).Increment();
    request_duration_.Add({{"method", m}}, request_buckets()).Observe(std::max(0.0, seconds));
}

std::function<void(std::string_view, int, double)> metrics::request_observer() {
    return [this](std::string_view method, int code, double seconds) {
        on_apigee_request(method, code, seconds);
    };
}

void metrics::on_config_reload(bool ok) {
    reloads_.Add({{"outcome", ok ? "success" : "failure"}}).Increment();
}

void metrics::on_audit_failure() { audit_failures_.Add({}).Increment(); }

void metrics::set_leader(bool leader) { leader_.Set(leader ? 1 : 0); }

void metrics::set_interval(double seconds) { interval_.Set(seconds); }

void metrics::enable_notify(const std::vector<std::string>& sinks) {
    std::lock_guard lock(mu_);
    if (notify_depth_ == nullptr) {
        notify_depth_ = &prometheus::BuildGauge()
                             .Name("keyrotd_notify_outbox_depth")
                             .Help("Notifications recorded in the outbox and not yet delivered")
                             .Register(*registry_);
        notify_oldest_ = &prometheus::BuildGauge()
                              .Name("keyrotd_notify_outbox_oldest_seconds")
                              .Help("Age of the oldest undelivered notification (0: none)")
                              .Register(*registry_);
        notify_deliveries_ = &prometheus::BuildCounter()
                                  .Name("keyrotd_notify_deliveries_total")
                                  .Help("Webhook delivery results, by sink and outcome")
                                  .Register(*registry_);
        notify_dropped_ = &prometheus::BuildCounter()
                               .Name("keyrotd_notify_dropped_total")
                               .Help("Notifications dropped with a disabled or removed webhook")
                               .Register(*registry_);
        notify_disabled_ = &prometheus::BuildGauge()
                                .Name("keyrotd_notify_sink_disabled")
                                .Help("1 when a webhook answered 410 Gone and is off until restart")
                                .Register(*registry_);
        notify_events_ = &prometheus::BuildCounter()
                              .Name("keyrotd_notify_events_total")
                              .Help("Notifications handed to the outbox, by type and result")
                              .Register(*registry_);
        notify_depth_->Add({}).Set(0);
        notify_oldest_->Add({}).Set(0);
    }
    for (const auto& s : sinks) {
        for (const char* o : {"delivered", "retrying", "abandoned", "disabled"})
            notify_deliveries_->Add({{"sink", s}, {"outcome", o}});
        notify_dropped_->Add({{"sink", s}});
        notify_disabled_->Add({{"sink", s}}).Set(0);
    }
}

void metrics::set_notify_outbox(std::size_t depth, double oldest_seconds) {
    if (notify_depth_ == nullptr) return;
    notify_depth_->Add({}).Set(static_cast<double>(depth));
    notify_oldest_->Add({}).Set(oldest_seconds);
}

void metrics::on_notify_delivery(const std::string& sink, const char* outcome,
                                 std::size_t dropped) {
    if (notify_deliveries_ == nullptr) return;
    if (std::string_view(outcome) != "dropped")
        notify_deliveries_->Add({{"sink", sink}, {"outcome", outcome}}).Increment();
    if (dropped > 0) notify_dropped_->Add({{"sink", sink}}).Increment(static_cast<double>(dropped));
}

void metrics::set_notify_sink_disabled(const std::string& sink, bool disabled) {
    if (notify_disabled_ == nullptr) return;
    notify_disabled_->Add({{"sink", sink}}).Set(disabled ? 1 : 0);
}

void metrics::on_notify_event(const std::string& type, const char* result) {
    if (notify_events_ == nullptr) return;
    notify_events_->Add({{"type", type}, {"result", result}}).Increment();
}

}  // namespace keyrot::obs
