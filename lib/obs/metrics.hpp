// Prometheus metrics (docs/metrics.md; docs/metrics.md lists them all).
// Every name starts with keyrotd_. `metrics` owns the families in a registry
// the caller shares with the HTTP server; it does no I/O and reads no clock:
// timestamps come from the records and summaries it is given.
//
// Thread-safety: prometheus-cpp's metrics are thread-safe, and the bookkeeping
// of which per-organization series exist is guarded by a mutex, so a scrape on
// another thread is always safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "exec/observer.hpp"

namespace keyrot::obs {

struct metrics_options {
    std::string version;  // keyrotd_build_info{version}
    bool per_key = true;  // keyrotd_key_expiry_timestamp_seconds (config metrics.perKey)
    bool leader = true;   // initial keyrotd_leader: outside Kubernetes this instance writes
};

class metrics {
  public:
    explicit metrics(std::shared_ptr<prometheus::Registry> registry, metrics_options opt = {});

    const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
    bool per_key() const { return per_key_; }

    // One audit record: counters by action (see docs/metrics.md for the mapping).
    void on_action(const exec::action_record& r);
    // After each pass of one organization: key gauges, per-key expiry series (stale
    // ones removed), pass duration, last successful pass, next action.
    void on_pass(const exec::pass_summary& s);
    void on_delivery(const exec::delivery_record& d);
    // One Apigee request attempt; `code` 0 means no response (label "error").
    // Matches http::observer_fn.
    void on_apigee_request(std::string_view method, int code, double seconds);
    // on_apigee_request as a callback, for http::options::observer. `this` must
    // outlive the client.
    std::function<void(std::string_view, int, double)> request_observer();
    void on_config_reload(bool ok);
    void on_audit_failure();
    void set_leader(bool leader);
    void set_interval(double seconds);

    // Notifications (docs/notifications.md). The keyrotd_notify_* families exist
    // only once enable_notify() was called, with the configured webhooks' names.
    void enable_notify(const std::vector<std::string>& sinks);
    void set_notify_outbox(std::size_t depth, double oldest_seconds);
    // A dispatcher report: outcome delivered | retrying | abandoned | disabled |
    // dropped; `dropped` events went with a disabled or unknown sink.
    void on_notify_delivery(const std::string& sink, const char* outcome, std::size_t dropped);
    void set_notify_sink_disabled(const std::string& sink, bool disabled);
    // An event handed to the outbox: result queued | duplicate | refused.
    void on_notify_event(const std::string& type, const char* result);

  private:
    using key_labels = std::tuple<std::string, std::string, std::string>;  // developer, app, key
    struct org_series {
        std::set<std::string> policies;      // policies with keys/apps_without_valid_key series
        std::set<std::string> skip_reasons;  // reasons with an apps_skipped series
        std::map<key_labels, prometheus::Gauge*> expiry;
    };

    void count_outcome(prometheus::Family<prometheus::Counter>& family,
                       const exec::action_record& r, const char* outcome);

    std::shared_ptr<prometheus::Registry> registry_;
    bool per_key_;

    prometheus::Family<prometheus::Gauge>& build_info_;
    prometheus::Family<prometheus::Counter>& rotations_;
    prometheus::Family<prometheus::Counter>& revocations_;
    prometheus::Family<prometheus::Counter>& deletions_;
    prometheus::Family<prometheus::Counter>& late_rotations_;
    prometheus::Family<prometheus::Counter>& drift_;
    prometheus::Family<prometheus::Counter>& dry_run_actions_;
    prometheus::Family<prometheus::Gauge>& keys_;
    prometheus::Family<prometheus::Gauge>& apps_without_valid_key_;
    prometheus::Family<prometheus::Gauge>& policy_apps_;
    prometheus::Family<prometheus::Gauge>& apps_skipped_;
    prometheus::Family<prometheus::Gauge>& key_expiry_;
    prometheus::Family<prometheus::Gauge>& next_action_;
    prometheus::Family<prometheus::Counter>& deliveries_;
    prometheus::Family<prometheus::Gauge>& revocations_held_;
    prometheus::Family<prometheus::Gauge>& held_expiry_;
    prometheus::Family<prometheus::Histogram>& pass_duration_;
    prometheus::Family<prometheus::Counter>& passes_;
    prometheus::Family<prometheus::Gauge>& last_success_;
    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Family<prometheus::Histogram>& request_duration_;
    prometheus::Family<prometheus::Counter>& reloads_;
    prometheus::Family<prometheus::Counter>& audit_failures_;
    prometheus::Gauge& leader_;
    prometheus::Gauge& interval_;
    prometheus::Family<prometheus::Gauge>* notify_depth_ = nullptr;
    prometheus::Family<prometheus::Gauge>* notify_oldest_ = nullptr;
    prometheus::Family<prometheus::Counter>* notify_deliveries_ = nullptr;
    prometheus::Family<prometheus::Counter>* notify_dropped_ = nullptr;
    prometheus::Family<prometheus::Gauge>* notify_disabled_ = nullptr;
    prometheus::Family<prometheus::Counter>* notify_events_ = nullptr;

    std::mutex mu_;
    std::map<std::string, org_series> orgs_;
};

// Which counter a `failed` record belongs to: "rotation", "revocation" or "deletion".
// Uses action_record::kind (plan::action_kind) when the record has one; a record
// without it counts as a failed rotation.
const char* failed_action_class(const exec::action_record& r);

}  // namespace keyrot::obs
