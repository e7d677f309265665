// keyrot::sched leader election through a coordination.k8s.io/v1 Lease, as
// client-go's leaderelection (leaderelection.go, resourcelock/leaselock.go) does it.
//
// Contract:
// - One Lease (namespace_/name) names the holder. A candidate GETs it; creates it
//   when absent (POST); takes it when its holder is empty, is itself, or the lease
//   has expired; otherwise waits retry_period x (1 + u x 1.2), u uniform in [0, 1)
//   (client-go's JitterFactor). Takeover and renewal are PUTs carrying
//   metadata.resourceVersion: the API server's optimistic concurrency (409
//   Conflict) makes at most one of two racing candidates win. The holder renews
//   every retry_period, without jitter.
// - Two clocks. The wall clock (`wall_clock`) only produces the acquireTime and
//   renewTime written into the Lease; nothing reads them back to decide. Every
//   decision and deadline runs on std::chrono::steady_clock. A lease held by
//   another is valid until leaseDurationSeconds after the moment this process
//   OBSERVED the record change (a new resourceVersion or spec), as client-go:
//   the holder's clock, however skewed or stepped, neither delays nor hastens a
//   takeover; a fresh candidate waits one lease duration.
// - Renewal, as client-go: the fast path PUTs the holder's last written object.
//   When that fails for any reason (409 because an outside writer added a label,
//   a lost answer, 5xx), the same attempt takes the slow path: GET the lease
//   again; if it still names this identity, PUT with the fresh resourceVersion
//   (keeping acquireTime, leaseTransitions and others' labels); if another
//   holder's lease is valid, leadership is lost. A failed attempt does not drop
//   leadership: the holder retries every retry_period until its renew deadline.
//   A write whose answer was lost is found by the next read (holder = self) and
//   completed without counting a new transition.
// - may_write() is true only while this process holds the lease AND steady now <
//   (send time of its last successful write) + renew_deadline. Because
//   renew_deadline < lease_duration and others count the lease from when they
//   saw that write (after it was sent), a leader that cannot renew stops writing
//   before any other candidate may take the lease: two processes never both may
//   write (given clocks that run at the same rate; their offsets do not matter).
// - on_change(bool) is called whenever may_write() changes, also when the renew
//   deadline passes while a request hangs (a steady timer watches it) and on stop().
// - stop(): may_write() turns false at once; run() then releases a lease it holds
//   (holderIdentity "", leaseDurationSeconds 1, as client-go's ReleaseOnCancel):
//   it re-reads and retries on 409 while the lease still names it (at most 3
//   tries, within renew_deadline), so that another replica takes over within a
//   retry period, and returns.
// - The bearer token is re-read from token_file before every request (the
//   kubelet rotates projected tokens). Failures (403 from RBAC included) are
//   logged at warn (once per distinct error and then at most once a minute) and
//   retried; nothing throws at run time.
// - The http::client should come from lease_http_options(): one attempt per
//   request (a retried renewal would only outlive the deadline) and a per-attempt
//   timeout below renew_deadline. It honours NO_PROXY, CIDR entries included.
// - Outside Kubernetes lease_config_from_env() returns nullopt: no election,
//   the instance always writes.
// - One thread runs the io_context; the elector and the client must outlive run().
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "common/result.hpp"
#include "http/client.hpp"

namespace keyrot::sched {

// client-go's JitterFactor: candidates wait retry_period x (1 + u x 1.2).
inline constexpr double k_jitter_factor = 1.2;

// The monotonic clock every elector deadline runs on.
using steady_time = std::chrono::steady_clock::time_point;

struct lease_config {
    std::string api_url;  // https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
    std::string namespace_;
    std::string name = "keyrotd";
    // The ConfigMap that holds crash-recovery state (sched/kube.hpp): NAME-state.
    std::string state_configmap = "keyrotd-state";
    std::string identity;  // pod name
    std::chrono::milliseconds lease_duration = std::chrono::seconds(15);
    std::chrono::milliseconds renew_deadline = std::chrono::seconds(10);
    std::chrono::milliseconds retry_period = std::chrono::seconds(2);
    std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
};

// In a cluster (KUBERNETES_SERVICE_HOST set) or with KEYROTD_LEASE_URL: the
// config; otherwise nullopt. KEYROTD_LEADER_ELECTION=off gives nullopt too.
//   namespace: POD_NAMESPACE, else the service account's namespace file
//   identity:  POD_NAME, else the host name
//   overrides: KEYROTD_LEASE_URL, KEYROTD_LEASE_TOKEN_FILE, KEYROTD_LEASE_CA_FILE
//              (empty: system store only), KEYROTD_LEASE_NAME,
//              KEYROTD_STATE_CONFIGMAP (default: the lease name + "-state"),
//              KEYROTD_LEASE_DURATION, KEYROTD_LEASE_RENEW_DEADLINE,
//              KEYROTD_LEASE_RETRY_PERIOD ("15s", "500ms", ISO 8601)
// Throws std::runtime_error (a start-up error) when the namespace cannot be
// found or the durations are garbled or break validate()'s rule.
std::optional<lease_config> lease_config_from_env();

// client-go's rule: lease_duration > renew_deadline > k_jitter_factor x retry_period,
// retry_period > 0; valid namespace, name and identity.
result<void> validate(const lease_config& cfg);

// Options for the elector's own http::client (see the contract above).
http::options lease_http_options(const lease_config& cfg);

// ---- pure parts (tests/unit/sched_test.cpp) ----

// The spec of a Lease as leader election uses it.
struct lease_record {
    std::string holder;  // "" when released or never held
    int lease_duration_seconds = 0;
    std::optional<sys_ms> acquire_time;
    std::optional<sys_ms> renew_time;
    int lease_transitions = 0;
    friend bool operator==(const lease_record&, const lease_record&) = default;
};

// A Lease as read from the API: its spec, resourceVersion and the raw JSON (an
// update sends the object back with only the spec changed, so labels,
// annotations and fields this code does not know survive).
struct lease_object {
    lease_record spec;
    std::string resource_version;
    std::string raw;
};

// Lease times (acquireTime, renewTime) are Kubernetes MicroTime: written with
// format_time_us, read with parse_time (common/time.hpp).

// A Lease object (JSON) to its fields; error kind protocol when it is not one.
result<lease_object> parse_lease(std::string_view json);

// leaseDurationSeconds for a configured span: whole seconds, rounded up, >= 1.
int lease_seconds(std::chrono::milliseconds lease_duration);

// The POST body that creates namespace_/name with spec `rec`.
std::string lease_create_body(const std::string& namespace_, const std::string& name,
                              const lease_record& rec);
// The PUT body: `current` with its spec replaced by `rec` (resourceVersion kept).
std::string lease_update_body(const lease_object& current, const lease_record& rec);

// When a lease whose record this process saw change at `observed_at` (steady
// clock) stops being valid: observed_at + leaseDurationSeconds. The record's
// renewTime is deliberately ignored: it is the holder's wall clock.
steady_time lease_expiry(const lease_record& rec, steady_time observed_at);

// A candidate's wait between attempts: period x (1 + u01 x k_jitter_factor), u01 in [0, 1).
std::chrono::milliseconds retry_wait(std::chrono::milliseconds period, double u01);

// What `identity` writes to take or renew the lease at `now`: renewal keeps
// acquireTime and leaseTransitions; a takeover sets acquireTime and counts a
// transition (as client-go, also after a release).
lease_record next_record(const std::optional<lease_record>& current, const std::string& identity,
                         sys_ms now, int duration_seconds);

// What a holder writes to give the lease up at `now`.
lease_record release_record(const lease_record& current, sys_ms now);

// ---- the elector ----

class leader_elector {
  public:
    // `wall_clock` gives the instants written as acquireTime/renewTime,
    // and nothing else (default: the system clock). Deadlines use steady_clock.
    leader_elector(net::any_io_executor ex, http::client& client, lease_config cfg,
                   std::function<sys_ms()> wall_clock = {});
    ~leader_elector();
    leader_elector(const leader_elector&) = delete;
    leader_elector& operator=(const leader_elector&) = delete;

    // The election loop; returns after stop() (having released a held lease).
    net::awaitable<void> run();
    void stop();

    // True only while holding the lease and before the renew deadline.
    bool may_write() const;
    bool holding() const { return holding_; }
    // (send time of the last successful write) + renew_deadline, on the steady
    // clock; steady_time{} before any.
    steady_time write_deadline() const { return write_deadline_; }
    // The holder as last seen ("" unknown or none).
    const std::string& observed_holder() const { return observed_holder_; }
    const lease_config& config() const { return cfg_; }

    // Called with may_write()'s new value whenever it changes.
    std::function<void(bool)> on_change;
    // Called after each successful take-over or renewal with the new write_deadline().
    std::function<void(steady_time)> on_renew;

  private:
    enum class put_result { written, conflict, failed };

    net::awaitable<void> try_acquire_or_renew();
    net::awaitable<put_result> put(lease_object current);
    net::awaitable<result<http::response>> call(std::string method, std::string target,
                                                std::string body);
    net::awaitable<void> release();
    void renewed(steady_time sent_at, result<lease_object> obj);
    void observe(const lease_object& obj);
    void update_state();
    void arm_deadline();
    void warn(const std::string& what);
    std::string lease_path() const;
    double next_u01();

    net::any_io_executor ex_;
    http::client& client_;
    lease_config cfg_;
    std::function<sys_ms()> wall_clock_;
    net::steady_timer timer_;
    net::steady_timer deadline_timer_;
    std::optional<lease_object> cached_;  // our last written lease, while holding
    std::optional<lease_object> observed_;
    steady_time observed_at_{};
    std::string observed_holder_;
    bool holding_ = false;
    steady_time write_deadline_{};
    bool reported_ = false;
    bool stopping_ = false;
    std::string last_warning_;
    steady_time last_warning_at_{};
    std::uint64_t jitter_state_;
};

}  // namespace keyrot::sched
