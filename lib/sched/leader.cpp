#include "sched/leader.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

#include "common/host_port.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "common/time.hpp"
#include "sched/kube.hpp"

namespace keyrot::sched {

using json = nlohmann::json;  // (as kube.cpp: one alias when a unity build merges them)

namespace {

constexpr const char* k_api_version = "coordination.k8s.io/v1";
constexpr auto k_warn_every = std::chrono::minutes(1);
constexpr int k_release_tries = 3;

steady_time steady_now() { return std::chrono::steady_clock::now(); }

std::string getenv_str(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return ss.str();
}

std::chrono::milliseconds env_span(const char* name, std::chrono::milliseconds fallback) {
    const std::string v = getenv_str(name);
    if (v.empty()) return fallback;
    auto d = parse_duration(v);  // "500ms" too
    if (!d) throw std::runtime_error(std::string(name) + ": not a duration: \"" + v + "\"");
    return *d;
}

bool dns_name(const std::string& s) {
    if (s.empty() || s.size() > 253) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
}

void put_time(json& spec, const char* field, const std::optional<sys_ms>& t) {
    if (t)
        spec[field] = format_time_us(*t);
    else
        spec.erase(field);
}

void write_spec(json& spec, const lease_record& rec) {
    spec["holderIdentity"] = rec.holder;
    spec["leaseDurationSeconds"] = rec.lease_duration_seconds;
    put_time(spec, "acquireTime", rec.acquire_time);
    put_time(spec, "renewTime", rec.renew_time);
    spec["leaseTransitions"] = rec.lease_transitions;
}

error protocol_error(std::string msg) {
    error e;
    e.what = error::kind::protocol;
    e.message = std::move(msg);
    return e;
}

}  // namespace

// ---------------------------------------------------------------- config

std::optional<lease_config> lease_config_from_env() {
    const std::string mode = ascii_lower(getenv_str("KEYROTD_LEADER_ELECTION"));
    if (mode == "off" || mode == "false" || mode == "0" || mode == "no") return std::nullopt;

    lease_config cfg;
    const std::string url = getenv_str("KEYROTD_LEASE_URL");
    const std::string host = getenv_str("KUBERNETES_SERVICE_HOST");
    if (!url.empty()) {
        cfg.api_url = url;
    } else if (!host.empty()) {
        std::string port = getenv_str("KUBERNETES_SERVICE_PORT");
        if (port.empty()) port = "443";
        cfg.api_url = "https://" + join_host_port(host, port);
    } else {
        return std::nullopt;  // not in a cluster: no election
    }

    if (env_set("KEYROTD_LEASE_TOKEN_FILE"))
        cfg.token_file = getenv_str("KEYROTD_LEASE_TOKEN_FILE");
    if (env_set("KEYROTD_LEASE_CA_FILE")) cfg.ca_file = getenv_str("KEYROTD_LEASE_CA_FILE");
    if (const auto n = getenv_str("KEYROTD_LEASE_NAME"); !n.empty()) cfg.name = n;
    cfg.state_configmap = cfg.name + "-state";
    if (const auto n = getenv_str("KEYROTD_STATE_CONFIGMAP"); !n.empty()) cfg.state_configmap = n;

    cfg.namespace_ = getenv_str("POD_NAMESPACE");
    if (cfg.namespace_.empty()) {
        const auto dir = cfg.token_file.substr(0, cfg.token_file.rfind('/') + 1);
        if (auto ns = read_file(dir + "namespace")) cfg.namespace_ = std::string(trim_space(*ns));
        if (cfg.namespace_.empty())
            if (auto ns = read_file("/var/run/secrets/kubernetes.io/serviceaccount/namespace"))
                cfg.namespace_ = std::string(trim_space(*ns));
    }
    if (cfg.namespace_.empty())
        throw std::runtime_error(
            "leader election: no namespace (set POD_NAMESPACE, or KEYROTD_LEADER_ELECTION=off)");

    cfg.identity = getenv_str("POD_NAME");
    if (cfg.identity.empty()) {
        char buf[256] = {};
        if (gethostname(buf, sizeof buf - 1) == 0) cfg.identity = buf;
    }
    cfg.lease_duration = env_span("KEYROTD_LEASE_DURATION", cfg.lease_duration);
    cfg.renew_deadline = env_span("KEYROTD_LEASE_RENEW_DEADLINE", cfg.renew_deadline);
    cfg.retry_period = env_span("KEYROTD_LEASE_RETRY_PERIOD", cfg.retry_period);
    if (auto v = validate(cfg); !v) throw std::runtime_error("leader election: " + v.err().message);
    return cfg;
}

result<void> validate(const lease_config& cfg) {
    auto bad = [](std::string m) {
        error e;
        e.what = error::kind::config;
        e.message = std::move(m);
        return e;
    };
    if (cfg.api_url.empty()) return bad("no API server URL");
    if (!dns_name(cfg.namespace_)) return bad("namespace \"" + cfg.namespace_ + "\" is not valid");
    if (!dns_name(cfg.name)) return bad("lease name \"" + cfg.name + "\" is not valid");
    if (!dns_name(cfg.state_configmap))
        return bad("state ConfigMap name \"" + cfg.state_configmap + "\" is not valid");
    if (cfg.identity.empty()) return bad("no identity (POD_NAME or the host name)");
    const std::int64_t lease = cfg.lease_duration.count(), renew = cfg.renew_deadline.count(),
                       retry = cfg.retry_period.count();
    if (retry <= 0) return bad("retry period must be positive");
    // client-go: renewDeadline must be greater than retryPeriod*JitterFactor.
    if (static_cast<double>(renew) <= k_jitter_factor * static_cast<double>(retry))
        return bad("renew deadline (" + std::to_string(renew) +
                   " ms) must exceed 1.2 x the retry period (" + std::to_string(retry) + " ms)");
    if (lease <= renew)
        return bad("lease duration (" + std::to_string(lease) +
                   " ms) must exceed the renew deadline (" + std::to_string(renew) + " ms)");
    return ok_t{};
}

http::options lease_http_options(const lease_config& cfg) {
    http::options o;
    o.base_url = cfg.api_url;
    o.ca_file = cfg.ca_file;
    // A renewal is worth nothing after the deadline: one attempt, bounded well below it.
    o.timeout = std::max<milliseconds>(cfg.renew_deadline / 2, milliseconds(100));
    o.connect_timeout = o.timeout;
    o.max_attempts = 1;
    o.requests_per_second = 0;
    o.max_concurrency = 2;
    o.max_idle_connections = 2;
    o.idle_timeout = 30 * k_second;
    return o;
}

// ---------------------------------------------------------------- pure parts

result<lease_object> parse_lease(std::string_view text) {
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object()) return protocol_error("lease: not a JSON object");
    if (auto k = j.find("kind"); k != j.end() && (!k->is_string() || *k != "Lease"))
        return protocol_error("lease: kind is not Lease");
    auto md = j.find("metadata");
    if (md == j.end() || !md->is_object()) return protocol_error("lease: no metadata");
    auto rv = md->find("resourceVersion");
    if (rv == md->end() || !rv->is_string() || rv->get<std::string>().empty())
        return protocol_error("lease: no metadata.resourceVersion");
    lease_object out;
    out.resource_version = rv->get<std::string>();
    auto spec = j.find("spec");
    if (spec != j.end() && !spec->is_null()) {
        if (!spec->is_object()) return protocol_error("lease: spec is not an object");
        auto field = [&](const char* name) -> const json* {
            auto it = spec->find(name);
            return it == spec->end() || it->is_null() ? nullptr : &*it;
        };
        if (const json* v = field("holderIdentity")) {
            if (!v->is_string()) return protocol_error("lease: holderIdentity is not a string");
            out.spec.holder = v->get<std::string>();
        }
        for (auto [name, dst] :
             {std::pair{"leaseDurationSeconds", &out.spec.lease_duration_seconds},
              std::pair{"leaseTransitions", &out.spec.lease_transitions}}) {
            if (const json* v = field(name)) {
                if (!v->is_number_integer() || v->get<std::int64_t>() < 0 ||
                    v->get<std::int64_t>() > 1'000'000'000)
                    return protocol_error(std::string("lease: ") + name + " is not a count");
                *dst = v->get<int>();
            }
        }
        for (auto [name, dst] : {std::pair{"acquireTime", &out.spec.acquire_time},
                                 std::pair{"renewTime", &out.spec.renew_time}}) {
            if (const json* v = field(name)) {
                std::optional<sys_ms> t;
                if (v->is_string()) t = parse_time(v->get<std::string>());
                if (!t) return protocol_error(std::string("lease: ") + name + " is not a time");
                *dst = *t;
            }
        }
    }
    out.raw = std::string(text);
    return out;
}

int lease_seconds(std::chrono::milliseconds lease_duration) {
    const auto s = std::chrono::ceil<std::chrono::seconds>(lease_duration).count();
    return static_cast<int>(std::clamp<std::int64_t>(s, 1, 1'000'000'000));
}

std::string lease_create_body(const std::string& namespace_, const std::string& name,
                              const lease_record& rec) {
    json j = {{"apiVersion", k_api_version},
              {"kind", "Lease"},
              {"metadata", {{"name", name}, {"namespace", namespace_}}},
              {"spec", json::object()}};
    write_spec(j["spec"], rec);
    return j.dump();
}

std::string lease_update_body(const lease_object& current, const lease_record& rec) {
    json j = json::parse(current.raw, nullptr, false);
    if (!j.is_object()) j = json::object();  // parse_lease accepted it, so it is one
    if (!j.contains("apiVersion")) j["apiVersion"] = k_api_version;
    if (!j.contains("kind")) j["kind"] = "Lease";
    j["metadata"]["resourceVersion"] = current.resource_version;
    if (!j["spec"].is_object()) j["spec"] = json::object();
    write_spec(j["spec"], rec);
    return j.dump();
}

steady_time lease_expiry(const lease_record& rec, steady_time observed_at) {
    return observed_at + std::chrono::seconds(rec.lease_duration_seconds);
}

std::chrono::milliseconds retry_wait(std::chrono::milliseconds period, double u01) {
    u01 = std::clamp(u01, 0.0, 1.0);
    return period + std::chrono::milliseconds(static_cast<milliseconds::rep>(
                        static_cast<double>(period.count()) * k_jitter_factor * u01));
}

lease_record next_record(const std::optional<lease_record>& current, const std::string& identity,
                         sys_ms now, int duration_seconds) {
    lease_record rec;
    rec.holder = identity;
    rec.lease_duration_seconds = duration_seconds;
    rec.renew_time = now;
    if (current && current->holder == identity && current->acquire_time) {
        rec.acquire_time = current->acquire_time;
        rec.lease_transitions = current->lease_transitions;
    } else {
        rec.acquire_time = now;
        rec.lease_transitions = current ? current->lease_transitions + 1 : 0;
    }
    return rec;
}

lease_record release_record(const lease_record& current, sys_ms now) {
    lease_record rec;
    rec.holder = "";
    rec.lease_duration_seconds = 1;
    rec.acquire_time = now;
    rec.renew_time = now;
    rec.lease_transitions = current.lease_transitions;
    return rec;
}

// ---------------------------------------------------------------- the elector

leader_elector::leader_elector(net::any_io_executor ex, http::client& client, lease_config cfg,
                               std::function<sys_ms()> wall_clock)
    : ex_(std::move(ex)),
      client_(client),
      cfg_(std::move(cfg)),
      wall_clock_(std::move(wall_clock)),
      timer_(ex_),
      deadline_timer_(ex_),
      jitter_state_(std::random_device{}() | 1u) {
    if (!wall_clock_)
        wall_clock_ = [] {
            return std::chrono::time_point_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now());
        };
}

leader_elector::~leader_elector() = default;

bool leader_elector::may_write() const {
    return !stopping_ && holding_ && steady_now() < write_deadline_;
}

void leader_elector::stop() {
    stopping_ = true;
    timer_.cancel();
    deadline_timer_.cancel();
    update_state();
}

std::string leader_elector::lease_path() const {
    return "/apis/coordination.k8s.io/v1/namespaces/" + cfg_.namespace_ + "/leases/" + cfg_.name;
}

double leader_elector::next_u01() {
    jitter_state_ ^= jitter_state_ << 13;
    jitter_state_ ^= jitter_state_ >> 7;
    jitter_state_ ^= jitter_state_ << 17;
    return static_cast<double>(jitter_state_ >> 11) * 0x1.0p-53;
}

void leader_elector::warn(const std::string& what) {
    const auto now = steady_now();
    if (what == last_warning_ && now - last_warning_at_ < k_warn_every) return;
    last_warning_ = what;
    last_warning_at_ = now;
    spdlog::warn("leader election: lease={}/{} identity={} holding={} error=\"{}\"",
                 cfg_.namespace_, cfg_.name, cfg_.identity, holding_, what);
}

void leader_elector::update_state() {
    const bool now = may_write();
    if (now == reported_) return;
    reported_ = now;
    spdlog::info("leader election: lease={}/{} identity={} may_write={}{}", cfg_.namespace_,
                 cfg_.name, cfg_.identity, now,
                 now || stopping_ || !holding_ ? "" : " (renew deadline passed)");
    if (on_change) on_change(now);
}

void leader_elector::arm_deadline() {
    // One millisecond past the deadline, so that may_write() is false when it fires.
    deadline_timer_.expires_at(write_deadline_ + std::chrono::milliseconds(1));
    // A cancelled wait returns without touching `this` (the elector may be gone).
    deadline_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        update_state();
    });
}

void leader_elector::observe(const lease_object& obj) {
    // client-go keeps the time it saw the record change, never the record's own
    // times: those come from the holder's clock.
    if (!observed_ || observed_->resource_version != obj.resource_version ||
        observed_->spec != obj.spec) {
        observed_ = obj;
        observed_at_ = steady_now();
    }
    observed_holder_ = obj.spec.holder;
}

void leader_elector::renewed(steady_time sent_at, result<lease_object> obj) {
    if (obj) {
        observe(*obj);
        cached_ = std::move(obj.value());
    } else {
        // Written (2xx) but unreadable: the next attempt re-reads (slow path).
        warn("lease written, but the answer: " + obj.err().describe());
        observed_holder_ = cfg_.identity;
    }
    if (!holding_)
        spdlog::info("leader election: lease={}/{} identity={} acquired (transitions={})",
                     cfg_.namespace_, cfg_.name, cfg_.identity,
                     cached_ ? cached_->spec.lease_transitions : -1);
    holding_ = true;
    write_deadline_ = sent_at + cfg_.renew_deadline;
    last_warning_.clear();
    arm_deadline();
    if (on_renew) on_renew(write_deadline_);
}

net::awaitable<result<http::response>> leader_elector::call(std::string method, std::string target,
                                                            std::string body) {
    auto r =
        co_await kube_call(client_, cfg_, std::move(method), std::move(target), std::move(body));
    co_return r;
}

// PUTs `current` with this identity's next record (a renewal when it names us,
// else a takeover).
net::awaitable<leader_elector::put_result> leader_elector::put(lease_object current) {
    const auto sent_at = steady_now();
    auto body = lease_update_body(current, next_record(current.spec, cfg_.identity, wall_clock_(),
                                                       lease_seconds(cfg_.lease_duration)));
    auto r = co_await call("PUT", lease_path(), std::move(body));
    if (!r) {
        warn("PUT lease: " + r.err().describe());
        co_return put_result::failed;
    }
    if (r->status == 200 || r->status == 201) {
        renewed(sent_at, parse_lease(r->body));
        co_return put_result::written;
    }
    if (r->status == 409) co_return put_result::conflict;
    warn("PUT lease: " + describe_kube_reply(*r));
    co_return put_result::failed;
}

net::awaitable<void> leader_elector::try_acquire_or_renew() {
    const std::string path = lease_path();
    // 1. Fast path: the holder renews what it wrote last, without a GET.
    if (holding_ && cached_) {
        lease_object mine = std::move(*cached_);
        cached_.reset();
        const auto r = co_await put(std::move(mine));
        if (r == put_result::written || stopping_) co_return;
        if (r == put_result::conflict)
            spdlog::info(
                "leader election: lease={}/{} identity={} renewal conflict (409): the lease "
                "was written by someone else; re-reading",
                cfg_.namespace_, cfg_.name, cfg_.identity);
        // Any failure: the slow path below, in this same attempt (client-go).
    }
    cached_.reset();

    // 2. Read (or create) the lease.
    auto got = co_await call("GET", path, "");
    if (!got) {
        warn("GET " + path + ": " + got.err().describe());
        co_return;
    }
    if (got->status == 404) {
        const auto sent_at = steady_now();
        auto body = lease_create_body(cfg_.namespace_, cfg_.name,
                                      next_record(std::nullopt, cfg_.identity, wall_clock_(),
                                                  lease_seconds(cfg_.lease_duration)));
        auto made = co_await call(
            "POST", "/apis/coordination.k8s.io/v1/namespaces/" + cfg_.namespace_ + "/leases",
            std::move(body));
        if (!made) {
            warn("POST lease: " + made.err().describe());
        } else if (made->status == 200 || made->status == 201) {
            renewed(sent_at, parse_lease(made->body));
        } else if (made->status != 409) {  // 409: another candidate created it first
            warn("POST lease: " + describe_kube_reply(*made));
        }
        co_return;
    }
    if (got->status != 200) {
        warn("GET lease: " + describe_kube_reply(*got));
        co_return;
    }
    auto obj = parse_lease(got->body);
    if (!obj) {
        warn("GET lease: " + obj.err().describe());
        co_return;
    }

    // 3. Held by another and not expired by our own observation: wait.
    observe(*obj);
    const auto& spec = obj->spec;
    if (!spec.holder.empty() && spec.holder != cfg_.identity &&
        steady_now() < lease_expiry(spec, observed_at_)) {
        if (holding_) {
            holding_ = false;
            spdlog::warn("leader election: lease={}/{} identity={} lost to {}", cfg_.namespace_,
                         cfg_.name, cfg_.identity, spec.holder);
        }
        co_return;
    }

    // 4. Renew (it still names us, also after a write whose answer was lost) or
    // take over, with the fresh resourceVersion.
    const auto r = co_await put(std::move(obj.value()));
    // 409: someone wrote it between our GET and PUT. A holder keeps its deadline
    // and retries next period; a candidate (lost a race) reads again next time.
    if (r == put_result::conflict && holding_)
        warn("PUT lease: HTTP 409 Conflict after a fresh read");
}

net::awaitable<void> leader_elector::release() {
    std::optional<lease_object> current = std::move(cached_);
    cached_.reset();
    const auto give_up_at = steady_now() + cfg_.renew_deadline;
    std::string why = "no attempt";
    for (int attempt = 0; attempt < k_release_tries && steady_now() < give_up_at; ++attempt) {
        if (!current) {
            auto got = co_await call("GET", lease_path(), "");
            if (!got) {
                why = "GET: " + got.err().describe();
                break;
            }
            if (got->status != 200) {
                why = "GET: " + describe_kube_reply(*got);
                break;
            }
            auto obj = parse_lease(got->body);
            if (!obj) {
                why = "GET: " + obj.err().describe();
                break;
            }
            current = std::move(obj.value());
        }
        if (current->spec.holder != cfg_.identity) co_return;  // not ours (any more)
        auto body = lease_update_body(*current, release_record(current->spec, wall_clock_()));
        auto r = co_await call("PUT", lease_path(), std::move(body));
        if (r && r->status == 200) {
            spdlog::info("leader election: lease={}/{} identity={} released", cfg_.namespace_,
                         cfg_.name, cfg_.identity);
            co_return;
        }
        why = r ? describe_kube_reply(*r) : r.err().describe();
        if (!r || r->status != 409) break;
        current.reset();  // written by someone else since: re-read, release if still ours
    }
    spdlog::warn("leader election: lease={}/{} identity={} release failed: {}", cfg_.namespace_,
                 cfg_.name, cfg_.identity, why);
}

net::awaitable<void> leader_elector::run() {
    spdlog::info(
        "leader election: lease={}/{} identity={} api={} lease_duration={}ms "
        "renew_deadline={}ms retry_period={}ms",
        cfg_.namespace_, cfg_.name, cfg_.identity, cfg_.api_url, cfg_.lease_duration.count(),
        cfg_.renew_deadline.count(), cfg_.retry_period.count());
    while (!stopping_) {
        co_await try_acquire_or_renew();
        update_state();
        if (stopping_) break;
        // The holder renews every retry period (client-go's renew loop has no
        // jitter); candidates spread out so that they do not race in lock step.
        const std::chrono::milliseconds wait =
            holding_ ? cfg_.retry_period : retry_wait(cfg_.retry_period, next_u01());
        timer_.expires_after(wait);
        boost::system::error_code ec;
        co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (holding_) co_await release();
    holding_ = false;
    update_state();
}

}  // namespace keyrot::sched
