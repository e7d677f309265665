// `run` (docs/cli.md, docs/deployment.md): the daemon loop, reload on SIGHUP
// (reading the config again: reload.cpp), leader election, metrics,
// notifications.
#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "apigee/api.hpp"
#include "apigee/connect.hpp"
#include "auth/token_source.hpp"
#include "commands.hpp"
#include "common/asio.hpp"
#include "common/duration.hpp"
#include "delivery.hpp"
#include "exec/executor.hpp"
#include "http/client.hpp"
#include "notify.hpp"
#include "notify/config.hpp"
#include "notify/dispatcher.hpp"
#include "notify/outbox.hpp"
#include "notify/sinks.hpp"
#include "obs/audit.hpp"
#include "obs/http_server.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "obs/notifier.hpp"
#include "obs/recorder.hpp"
#include "plan/forecast.hpp"
#include "policy/config.hpp"
#include "reload.hpp"
#include "sched/kube.hpp"
#include "sched/leader.hpp"
#include "sched/schedule.hpp"
#include "support.hpp"

#ifndef KEYROTD_VERSION
#define KEYROTD_VERSION "0.0.0"
#endif

namespace keyrot::daemon {
namespace {

using steady = std::chrono::steady_clock;

// Systemd wants MONOTONIC_USEC beside RELOADING=1 (Type=notify-reload).
std::string monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::to_string(static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000);
}

// STATUS= and log values are one line.
std::string one_line(std::string s, std::size_t max = 240) {
    for (auto& ch : s)
        if (ch == '\n' || ch == '\r') ch = ' ';
    if (s.size() > max) s = s.substr(0, max - 3) + "...";
    return s;
}

inline constexpr milliseconds k_fence_margin{500};

// `keyrotd run`. One thread runs the io_context: per organisation a loop that
// runs a pass, then sleeps until the earliest of the next full pass (interval
// ±10%) and the next due action (the planner's next_wake), or backs off after a
// failed pass. Passes of one organisation never overlap; organisations run
// concurrently (sharing one HTTP client and its request budget). Signals, the
// systemd watchdog and the HTTP endpoint run on the same loop.
class daemon_loop {
  public:
    daemon_loop(net::io_context& io, std::shared_ptr<const policy::config> cfg, notify::config ncfg,
                std::string path, bool dry_run)
        : io_(io),
          cfg_(std::move(cfg)),
          ncfg_(std::move(ncfg)),
          path_(std::move(path)),
          dry_run_(dry_run),
          audit_(cfg_->state_dir),
          registry_(std::make_shared<prometheus::Registry>()),
          metrics_(registry_, obs::metrics_options{KEYROTD_VERSION, cfg_->metrics_per_key, true}),
          rec_(&audit_, &metrics_, &stopping_),
          signals_(io, SIGINT, SIGTERM, SIGHUP),
          watchdog_(io),
          stop_deadline_(io),
          server_(
              io, registry_, [this] { return ready(); }, obs::http_server_options{cfg_->listen}) {}

    int run() {
        metrics_.set_interval(std::chrono::duration<double>(cfg_->interval).count());
        auto request_observer = metrics_.request_observer();
        auto session = apigee::open_session(
            io_.get_executor(), cfg_->apigee,
            [this, request_observer](std::string_view method, int code, double seconds) {
                last_progress_ = steady::now();
                request_observer(method, code, seconds);
            },
            request_tracer());
        if (!session) {
            obs::log_event(spdlog::level::critical, "cannot set up the Apigee client",
                           {{"error", session.err().describe()}});
            return k_exit_config;
        }
        session_ = std::move(session.value());
        session_->auth = std::make_unique<stop_gate>(std::move(session_->auth), stopping_);
        if (int rc = start_notify()) return rc;
        // The election first: with it, crash-recovery state lives in a ConfigMap.
        if (int rc = start_election()) return rc;
        auto gate = delivery_gate::create(io_.get_executor(), *cfg_, session_->auth.get(),
                                          [this]() -> std::optional<milliseconds> {
                                              if (!elector_) return std::nullopt;
                                              return write_budget();
                                          });
        if (!gate) {
            obs::log_event(spdlog::level::critical, "cannot set up delivery",
                           {{"error", gate.err().message}});
            return k_exit_config;
        }
        delivery_ = std::move(gate.value());
        for (const auto& org : organizations(*cfg_)) add_org(org);
        // Fenced writes: none in flight once this process may have lost the lease.
        if (elector_) session_->http->set_write_budget([this] { return write_budget(); });
        server_.start();  // throws when `listen` cannot be bound: a start-up error
        obs::log_event(spdlog::level::info, "serving /metrics /healthz /readyz",
                       {{"listen", cfg_->listen}, {"port", static_cast<int>(server_.port())}});
        wait_signal();
        for (auto& o : orgs_) start_loop(*o);
        if (notify_) {
            spawn_dispatcher(io_, *notify_);
            net::co_spawn(io_, notify_gauges(), [](const std::exception_ptr&) {});
        }
        if (const auto every = watchdog_interval()) {
            watchdog_every_ = *every;
            arm_watchdog();
        }
        sd_notify("READY=1\nSTATUS=" + status_line());
        obs::log_event(spdlog::level::info, "keyrotd running",
                       {{"version", KEYROTD_VERSION},
                        {"organizations", orgs_.size()},
                        {"policies", cfg_->policies.size()},
                        {"interval", format_duration(cfg_->interval)},
                        {"dry_run", dry_run_ ? "true" : "false"}});
        io_.run();
        if (forced_) {
            // Coroutines are still suspended inside the HTTP client: destroying
            // them after the client would touch freed memory. Every audit record
            // is already fsynced, so leave without unwinding.
            spdlog::default_logger()->flush();
            std::_Exit(k_exit_ok);
        }
        obs::log_event(spdlog::level::info, "stopped", {});
        return k_exit_ok;
    }

  private:
    struct org_state {
        explicit org_state(net::io_context& io) : timer(io) {}
        std::unique_ptr<org_link> link;
        net::steady_timer timer;
        bool running = false;  // a pass is in flight
        bool done = true;      // the loop has exited (or never started)
        bool retired = false;  // a reload removed its last policy
        steady::time_point pass_started{};
        time_or_never next_at;  // wall clock of the next pass
        std::string last;       // how the last pass went, for STATUS=
        // Backoff, spin guard, when the next full pass is due and the apps
        // whose actions fall due before it (re-read alone); the config the
        // last full pass ran with.
        sched::schedule_state schedule;
        std::shared_ptr<const policy::config> full_cfg;
    };

    // Leader election through a Kubernetes Lease when running in a cluster
    // (sched/leader.hpp); outside Kubernetes this instance always writes.
    int start_election() {
        std::optional<sched::lease_config> lease;
        try {
            lease = sched::lease_config_from_env();
        } catch (const std::exception& e) {
            obs::log_event(spdlog::level::critical, "leader election", {{"error", e.what()}});
            return k_exit_config;
        }
        if (!lease) return 0;
        auto c = http::client::create(io_.get_executor(), sched::lease_http_options(*lease));
        if (!c) {
            obs::log_event(spdlog::level::critical, "leader election",
                           {{"error", c.err().describe()}});
            return k_exit_config;
        }
        lease_client_ = std::move(c.value());
        // Its own connections: a queue of state writes never delays a renewal.
        auto sc = http::client::create(io_.get_executor(), sched::state_http_options(*lease));
        if (!sc) {
            obs::log_event(spdlog::level::critical, "crash-recovery state",
                           {{"error", sc.err().describe()}});
            return k_exit_config;
        }
        state_client_ = std::move(sc.value());
        state_store_ = std::make_unique<sched::configmap_store>(*state_client_, *lease);
        obs::log_event(spdlog::level::info, "crash-recovery state",
                       {{"store", state_store_->describe()}});
        elector_ =
            std::make_unique<sched::leader_elector>(io_.get_executor(), *lease_client_, *lease);
        metrics_.set_leader(false);
        elector_->on_change = [this](bool leading) {
            metrics_.set_leader(leading);
            obs::log_event(spdlog::level::info,
                           leading ? "leading: this instance writes"
                                   : "following: this instance does not write",
                           {});
            // The old leader's outbox may be lost with its disk: the next
            // full pass re-derives what it may not have delivered.
            if (leading && notify_) notify_->notifier->rederive();
            if (leading)
                for (auto& o : orgs_)
                    if (!o->running) o->timer.cancel();  // a pass now
        };
        net::co_spawn(io_, elector_->run(), [](const std::exception_ptr& e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                obs::log_event(spdlog::level::critical, "leader election died",
                               {{"error", ex.what()}});
            }
        });
        return 0;
    }

    bool may_write() const { return !elector_ || elector_->may_write(); }

    // Notifications (docs/notifications.md): outbox, webhook sinks, dispatcher.
    // Dry runs publish and deliver nothing.
    int start_notify() {
        if (!ncfg_.has_sinks()) return 0;
        if (dry_run_) {
            obs::log_event(spdlog::level::info, "notifications off: dry run", {});
            return 0;
        }
        auto opened = open_notify(io_.get_executor(), *cfg_, ncfg_, &metrics_);
        if (!opened) {
            obs::log_event(spdlog::level::critical, "cannot set up notifications",
                           {{"error", opened.err().describe()}});
            return k_exit_config;
        }
        notify_ = std::move(opened.value());
        rec_.recorder().set_notifier(notify_->notifier.get());
        notify_timer_ = std::make_unique<net::steady_timer>(io_);
        obs::log_event(spdlog::level::info, "notifications on",
                       {{"webhooks", static_cast<long long>(notify_->sinks.size())},
                        {"pending", static_cast<long long>(notify_->disp->depth())}});
        return 0;
    }

    // keyrotd_notify_outbox_oldest_seconds grows with time: refreshed every 5 s.
    net::awaitable<void> notify_gauges() {
        while (!stopping_) {
            notify_->refresh_gauges();
            notify_timer_->expires_after(std::chrono::seconds(5));
            boost::system::error_code ec;
            co_await notify_timer_->async_wait(net::redirect_error(net::use_awaitable, ec));
        }
    }

    // The write fence (http/client.hpp): how much longer a write may take before
    // another replica could hold the lease. A margin keeps a cut write's last
    // bytes, and clock granularity, inside the renew deadline.
    std::optional<milliseconds> write_budget() const {
        if (!elector_) return std::nullopt;
        if (!elector_->may_write()) return milliseconds(0);
        const auto left = elector_->write_deadline() - steady::now();
        return std::chrono::duration_cast<milliseconds>(left) - k_fence_margin;
    }

    void add_org(const std::string& org) {
        auto st = std::make_unique<org_state>(io_);
        st->link = link_org(*session_, *cfg_, org, rec_, state_store_.get(), delivery_.get());
        orgs_.push_back(std::move(st));
    }

    void start_loop(org_state& o) {
        o.done = false;
        net::co_spawn(io_, org_loop(o), [this, &o](const std::exception_ptr& e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    obs::log_event(spdlog::level::critical, "organization loop died",
                                   {{"organization", o.link->organization}, {"error", ex.what()}});
                }
                o.running = false;
                o.last = "loop died";
            }
            o.done = true;
            maybe_finish_stop();
        });
    }

    std::vector<policy::policy> policies_of(const policy::config& cfg, const std::string& org) {
        std::vector<policy::policy> out;
        for (const auto& p : cfg.policies)
            if (p.organization == org) out.push_back(p);
        return out;
    }

    net::awaitable<void> org_loop(org_state& o) {
        std::mt19937_64 rng(std::random_device{}());
        const std::string& org = o.link->organization;
        while (!stopping_ && !o.retired) {
            if (!may_write()) {  // a follower: wait for leadership (on_change wakes us)
                o.timer.expires_after(elector_->config().retry_period);
                boost::system::error_code ec;
                co_await o.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
                continue;
            }
            auto cfg = cfg_;  // a reload swaps cfg_; this pass keeps its own
            exec::run_options opt;
            opt.dry_run = dry_run_;
            opt.concurrency = cfg->apigee.max_concurrency;
            opt.may_write = [this] { return may_write(); };  // checked before every write
            const auto policies = policies_of(*cfg, org);
            o.running = true;
            o.pass_started = steady::now();
            last_progress_ = o.pass_started;
            // Before the next full pass, an action falling due on a few apps
            // needs only those apps read again, not the whole organisation
            // (sched::choose_pass).
            const sched::pass_plan plan =
                sched::choose_pass(system_now(), o.schedule, o.full_cfg == cfg, cfg->interval);
            opt.wake_horizon = plan.wake_horizon;
            exec::pass_summary sum;
            if (plan.targeted) {
                const auto& due = plan.due;
                obs::log_event(spdlog::level::info, "re-reading apps with an action due",
                               {{"organization", org}, {"apps", static_cast<int>(due.size())}});
                sum = co_await o.link->exec->run_apps(policies, due, opt);
                obs::log_event(sum.ok ? spdlog::level::info : spdlog::level::err, "apps re-read",
                               {{"organization", org},
                                {"seconds", sum.took.count()},
                                {"apps_seen", sum.apps_seen},
                                {"actions_done", sum.actions_done},
                                {"actions_failed", sum.actions_failed},
                                {"error", sum.error}});
            } else {
                log_pass_start(org, policies, "", dry_run_);
                sum = co_await o.link->exec->run_pass(policies, opt);
                o.full_cfg = cfg;
            }
            // The wakes, and whether the next pass must read everything.
            sched::after_pass(plan, {sum.ok, sum.error.empty(), std::move(sum.wakes)}, o.schedule);
            o.running = false;
            if (!sum.ok && is_org_not_found(sum))
                obs::log_event(
                    spdlog::level::err, "organization not found",
                    {{"organization", org}, {"hint", org_hint(*cfg, org, true).substr(2)}});
            // A pass over a large organisation leaves freed heap behind: give it
            // back, so the daemon is small between passes.
            ::malloc_trim(0);
            if (stopping_ || o.retired) break;

            const sys_ms now = system_now();
            sched::pass_result pr;
            pr.ok = sum.ok;
            pr.targeted = plan.targeted;
            pr.config_changed = cfg_ != cfg;
            pr.now = now;
            pr.interval = cfg->interval;
            pr.next_action = sched::next_action(o.schedule).instant();
            const sched::decision next =
                sched::next_pass(pr, o.schedule, [&rng](milliseconds lo, milliseconds hi) {
                    return milliseconds(std::uniform_int_distribution<milliseconds::rep>(
                        lo.count(), hi.count())(rng));
                });
            const milliseconds wait = next.wait;
            const std::string why = next.why;
            o.next_at = now + wait;
            char secs[32];
            std::snprintf(secs, sizeof secs, "%.1fs", sum.took.count());
            o.last = sum.ok
                         ? std::string("ok at ") + format_time(now) + " (" + secs + ", " +
                               count_of(std::max(0, sum.actions_done - rec_.last_dry_run(org)),
                                        "action", "actions") +
                               (rec_.last_dry_run(org) > 0
                                    ? ", " + count_of(rec_.last_dry_run(org), "dry-run action",
                                                      "dry-run actions")
                                    : std::string()) +
                               ")"
                         : "FAILED at " + format_time(now) + ": " +
                               (sum.error.empty()
                                    ? count_of(sum.actions_failed, "action", "actions") + " failed"
                                    : sum.error);
            obs::log_event(spdlog::level::debug, "next pass",
                           {{"organization", org},
                            {"at", format_time(o.next_at)},
                            {"in", format_duration(wait)},
                            {"reason", why}});
            sd_notify("STATUS=" + status_line());
            if (wait > milliseconds(0)) {
                o.timer.expires_after(wait);
                boost::system::error_code ec;
                co_await o.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
        }
        o.next_at = time_or_never::never();
    }

    // One line for systemd's STATUS=: how each organisation's last pass went and
    // when the next one is.
    std::string status_line() const {
        if (stopping_) {
            int busy = 0;
            for (const auto& o : orgs_) busy += o->running ? 1 : 0;
            return "stopping: " + std::to_string(busy) + " pass(es) finishing";
        }
        int active = 0, ok = 0, failed = 0, never = 0;
        time_or_never next;
        std::string failing;
        for (const auto& o : orgs_) {
            if (o->retired) continue;
            ++active;
            if (o->last.empty()) {
                ++never;
            } else if (o->last.rfind("ok", 0) == 0) {
                ++ok;
            } else {
                ++failed;
                if (failing.empty()) failing = o->link->organization + " " + o->last;
            }
            if (!o->running) next = earliest(next, o->next_at);
        }
        std::string s;
        if (active == 1) {
            const auto& o = **std::find_if(orgs_.begin(), orgs_.end(),
                                           [](const auto& x) { return !x->retired; });
            s = o.link->organization + ": " +
                (o.running        ? std::string("pass running")
                 : o.last.empty() ? std::string("starting")
                                  : "last pass " + o.last);
        } else {
            s = std::to_string(active) + " organizations: " + std::to_string(ok) + " ok, " +
                std::to_string(failed) + " failing, " + std::to_string(never) + " starting";
            if (!failing.empty()) s += "; " + failing;
        }
        if (!next.is_never()) s += "; next pass " + format_time(next.at());
        return one_line(s);
    }

    void wait_signal() {
        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                if (!stopping_) reload();
            } else {
                begin_stop(sig);
            }
            if (!finished_) wait_signal();
        });
    }

    // SIGTERM/SIGINT: no new pass, no new Apigee call (stop_gate); calls in
    // flight finish. Bounded: after apigee.timeout + 5 s (at most 80 s, inside
    // systemd's TimeoutStopSec=90s), or on a second signal, keyrotd exits anyway.
    // The lease is released only once the writes in flight have drained (the
    // elector renews it meanwhile): a new leader never writes beside them.
    void begin_stop(int sig) {
        if (stopping_) {
            force_stop("second signal");
            return;
        }
        stopping_ = true;
        int busy = 0;
        for (const auto& o : orgs_) busy += o->running ? 1 : 0;
        const milliseconds grace =
            std::min<milliseconds>(cfg_->apigee.timeout + 5 * k_second, 80 * k_second);
        obs::log_event(
            spdlog::level::info, "stopping: no new work; in-flight calls finish",
            {{"signal", sig}, {"passes_in_flight", busy}, {"deadline", format_duration(grace)}});
        sd_notify("STOPPING=1\nSTATUS=" + status_line());
        for (auto& o : orgs_) o->timer.cancel();
        watchdog_.cancel();
        stop_deadline_.expires_after(grace);
        stop_deadline_.async_wait([this](boost::system::error_code ec) {
            if (!ec && !finished_) force_stop("deadline");
        });
        maybe_finish_stop();
    }

    void maybe_finish_stop() {
        if (!stopping_ || finished_) return;
        for (const auto& o : orgs_)
            if (!o->done) return;
        finished_ = true;
        if (elector_) elector_->stop();  // drained: hand the lease over at once
        stop_deadline_.cancel();
        signals_.cancel();
        server_.stop();
        if (notify_) {  // an attempt in flight finishes; the rest stays in the outbox
            notify_->disp->stop();
            notify_timer_->cancel();
        }
        if (session_ && session_->http) session_->http->close_idle();
        // io_.run() returns once nothing is pending.
    }

    void force_stop(const char* why) {
        std::string busy;
        for (const auto& o : orgs_)
            if (o->running) busy += (busy.empty() ? "" : ",") + o->link->organization;
        obs::log_event(spdlog::level::warn,
                       "stopping now; the next start completes what was left half done",
                       {{"reason", why}, {"organizations_in_pass", busy}});
        forced_ = true;
        io_.stop();
    }

    void reload() {
        sd_notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec() + "\nSTATUS=reloading");
        bool ok = false;
        try {
            ok = apply_reload();
        } catch (const std::exception& e) {
            obs::log_event(spdlog::level::err, "reload failed; the old config stays in force",
                           {{"error", e.what()}});
        }
        metrics_.on_config_reload(ok);
        if (!audit_.reopen())  // a rotated audit file is picked up
            obs::log_event(spdlog::level::err,
                           "cannot reopen the audit log; still using the old file",
                           {{"path", audit_.path().string()}});
        sd_notify("READY=1\nSTATUS=" + std::string(ok ? "" : "reload FAILED, old config kept; ") +
                  status_line());
    }

    bool apply_reload() {
        auto loaded = load_for_reload(path_);
        if (!loaded) return false;
        const std::shared_ptr<const policy::config> next = loaded->cfg;
        // Lead times (expiringAt) apply now; webhooks, maxAge, outboxMax at restart.
        if (notify_) notify_->notifier->set_policies(obs::notify_policies(*next, loaded->notify));
        for (const auto& what : restart_only_changes(*cfg_, *next))
            obs::log_event(spdlog::level::warn, "changed setting takes effect after a restart",
                           {{"setting", what}});
        if (next->log_level != cfg_->log_level || next->log_format != cfg_->log_format)
            obs::setup_logging(next->log_level, next->log_format);
        cfg_ = next;
        metrics_.set_interval(std::chrono::duration<double>(cfg_->interval).count());

        // Organisations: new ones get a loop now, removed ones stop after their pass.
        const auto orgs = organizations(*cfg_);
        for (auto& o : orgs_) {
            const bool wanted = std::count(orgs.begin(), orgs.end(), o->link->organization) > 0;
            if (!wanted && !o->retired) {
                o->retired = true;
                o->timer.cancel();
                obs::log_event(spdlog::level::info, "organization has no policy any more",
                               {{"organization", o->link->organization}});
            } else if (wanted && o->retired) {
                o->retired = false;
                if (o->done) start_loop(*o);
            }
        }
        for (const auto& org : orgs) {
            if (std::any_of(orgs_.begin(), orgs_.end(),
                            [&](const auto& o) { return o->link->organization == org; }))
                continue;
            add_org(org);
            start_loop(*orgs_.back());
            obs::log_event(spdlog::level::info, "new organization", {{"organization", org}});
        }
        obs::log_event(spdlog::level::info, "config reloaded",
                       {{"policies", cfg_->policies.size()},
                        {"organizations", orgs.size()},
                        {"interval", format_duration(cfg_->interval)}});
        // A pass with the new policies now; a running pass goes again when it ends.
        for (auto& o : orgs_)
            if (!o->running) o->timer.cancel();
        return true;
    }

    // Ready (docs/deployment.md): the config is loaded (or we would not run),
    // the process is not stopping, and its loop is not stuck. Apigee failing is
    // NOT unready: a failing leader must stay in the Service's endpoints so its
    // metrics are scraped and the alerts fire, and with two replicas behind a
    // PodDisruptionBudget an unready pod would block draining the other node.
    // A follower is ready. The body says how the passes go, for people.
    std::pair<bool, std::string> ready() const {
        if (stopping_) return {false, "stopping"};
        if (!may_write()) return {true, "follower"};
        if (const std::string stuck = stuck_org(); !stuck.empty())
            return {false, "organization " + stuck + ": pass stuck"};
        const sys_ms now = system_now();
        std::string notes;
        for (const auto& o : orgs_) {
            if (o->retired) continue;
            const auto& org = o->link->organization;
            auto it = rec_.last_ok().find(org);
            std::string note;
            if (it == rec_.last_ok().end())
                note = "organization " + org + ": no successful pass yet";
            else if (now - it->second > 2 * cfg_->interval)
                note = "organization " + org + ": last successful pass " + format_time(it->second) +
                       ", over 2x interval ago";
            if (!note.empty()) notes += (notes.empty() ? "" : "; ") + note;
        }
        return {true, notes.empty() ? "ok" : "ok (" + notes + ")"};
    }

    // A pass in flight with no Apigee request finished for this long is stuck:
    // every request attempt is bounded by apigee.timeout, retries by a few
    // minutes, and a rate limit still lets requests through.
    milliseconds stuck_after() const {
        return std::max<milliseconds>(5 * k_minute, 3 * cfg_->apigee.timeout + 2 * k_minute);
    }

    std::string stuck_org() const {
        const auto now = steady::now();
        for (const auto& o : orgs_)
            if (o->running && now - std::max(last_progress_, o->pass_started) > stuck_after())
                return o->link->organization;
        return {};
    }

    // WATCHDOG=1 from the event loop at half $WATCHDOG_USEC: a blocked loop stops
    // it, and so does a pass that makes no progress, so systemd restarts us.
    void arm_watchdog() {
        watchdog_.expires_after(watchdog_every_);
        watchdog_.async_wait([this](boost::system::error_code ec) {
            if (ec || stopping_) return;
            const std::string stuck = stuck_org();
            if (stuck.empty()) {
                sd_notify("WATCHDOG=1");
                stuck_reported_ = false;
            } else if (!stuck_reported_) {
                stuck_reported_ = true;
                obs::log_event(
                    spdlog::level::err, "pass makes no progress; withholding the watchdog ping",
                    {{"organization", stuck}, {"for_over", format_duration(stuck_after())}});
                sd_notify("STATUS=stuck: organization " + stuck + " pass makes no progress");
            }
            arm_watchdog();
        });
    }

    net::io_context& io_;
    std::shared_ptr<const policy::config> cfg_;
    notify::config ncfg_;  // as at start-up: webhooks change with a restart
    std::string path_;
    bool dry_run_;
    bool stopping_ = false;
    bool finished_ = false;
    bool forced_ = false;
    bool stuck_reported_ = false;
    std::chrono::microseconds watchdog_every_{0};
    steady::time_point last_progress_{};  // when the last Apigee request attempt finished
    obs::audit_log audit_;
    std::shared_ptr<prometheus::Registry> registry_;
    obs::metrics metrics_;
    counting_observer rec_;
    net::signal_set signals_;
    net::steady_timer watchdog_;
    net::steady_timer stop_deadline_;
    obs::http_server server_;
    std::unique_ptr<apigee::session> session_;  // before orgs_: their apis refer to it
    std::unique_ptr<http::client> lease_client_;
    std::unique_ptr<sched::leader_elector> elector_;
    // With leader election: the generate journal and audit intents live in a
    // ConfigMap the next leader reads (sched/kube.hpp), not on the pod's disk.
    std::unique_ptr<http::client> state_client_;
    std::unique_ptr<sched::configmap_store> state_store_;
    std::unique_ptr<delivery_gate> delivery_;  // null: no policy delivers
    std::vector<std::unique_ptr<org_state>> orgs_;
    std::unique_ptr<notify_stack> notify_;  // null: no webhooks, or --dry-run
    std::unique_ptr<net::steady_timer> notify_timer_;
};

}  // namespace

int cmd_run(const policy::config& cfg, const notify::config& ncfg, const cli& c) {
    net::io_context io;
    daemon_loop d(io, std::make_shared<const policy::config>(cfg), ncfg, c.config, c.dry_run);
    return d.run();
}

}  // namespace keyrot::daemon
