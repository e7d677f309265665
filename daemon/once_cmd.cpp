// `once` and `rotate` (docs/cli.md): one pass (or one app) and exit.
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
#include "sched/kube.hpp"
#include "sched/leader.hpp"
#include "sched/schedule.hpp"
#include "support.hpp"

#ifndef KEYROTD_VERSION
#define KEYROTD_VERSION "0.0.0"
#endif

namespace keyrot::daemon {
namespace {

class signal_stop {
  public:
    signal_stop(net::io_context& io, milliseconds grace)
        : signals_(io, SIGINT, SIGTERM), deadline_(io), grace_(grace) {}
    // Waits for a signal; close() cancels the wait so that io.run() can return.
    void open() {
        if (waiting_) return;
        waiting_ = true;
        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            waiting_ = false;
            if (ec) return;
            if (stopping_) force("second signal");
            stopping_ = true;
            sig_ = sig;
            obs::log_event(spdlog::level::info,
                           "stopping: no new writes; writes in flight and their audit records "
                           "finish",
                           {{"signal", sig}, {"deadline", format_duration(grace_)}});
            deadline_.expires_after(grace_);
            deadline_.async_wait([this](boost::system::error_code e) {
                if (!e) force("deadline");
            });
            open();
        });
    }
    void close() {
        signals_.cancel();
        deadline_.cancel();
    }
    const bool& stopping() const { return stopping_; }
    int exit_code() const { return sig_ == SIGINT ? k_exit_sigint : k_exit_sigterm; }

  private:
    [[noreturn]] void force(const char* why) {
        obs::log_event(spdlog::level::warn,
                       "stopping now; the next pass completes what was left half done",
                       {{"reason", why}});
        spdlog::default_logger()->flush();
        std::_Exit(exit_code());
    }

    net::signal_set signals_;
    net::steady_timer deadline_;
    milliseconds grace_;
    bool waiting_ = false;
    bool stopping_ = false;
    int sig_ = 0;
};

// `rotate` made no successor: find out why, from the failure or from the app.
std::string why_not_rotated(net::io_context& io, org_link& link, const exec::run_options& opt,
                            const std::string& developer, const std::string& name,
                            const exec::pass_summary& sum, const counting_observer& rec,
                            int failed_before, int completed_before) {
    if (rec.failed() > failed_before) return "the rotation failed: " + rec.last_failure();
    if (rec.completed() > completed_before)
        return "it completed a successor an earlier pass had left pending, and made no new one "
               "(run rotate again to replace that one too)";
    if (!sum.error.empty()) return sum.error;
    exec::run_options all = opt;
    all.only_app.clear();
    auto inv = run_sync(io, link.exec->read_inventory(all));
    if (!inv) return "cannot read the organization: " + inv.err().describe();
    const app* found = nullptr;
    for (const auto& a : inv.value().apps)
        if (ascii_lower(a.developer_email) == ascii_lower(developer) && a.name == name) found = &a;
    const std::string org = link.organization;
    if (found == nullptr)
        return "organization " + org + " has no app " + name + " of developer " + developer;
    const policy::policy* p = plan::match_policy(*found, link.policies);
    if (p == nullptr) {
        std::string names;
        for (const auto& q : link.policies) names += (names.empty() ? "" : ", ") + q.name;
        return "no policy matches the app (policies of organization " + org + ": " + names + ")";
    }
    const auto ap = plan::plan_app(*found, *p, system_now(), opt.plan);
    if (ap.skipped) return "the app is left alone: " + ap.skip_reason;
    std::string keys;
    for (const auto& k : ap.keys) {
        keys += (keys.empty() ? "" : ", ") + k.fingerprint + " " + plan::to_string(k.state);
        if (!k.successor.empty()) keys += " (successor " + k.successor + ")";
    }
    return "policy " + p->name + " found no valid key without a successor to rotate (keys: " +
           (keys.empty() ? std::string("none") : keys) + ")";
}

// `once`: after the passes, delivers what the outbox holds until nothing is
// due, every sink has failed once, k_once_drain has passed, or a signal; then
// stops the dispatcher (an attempt in flight finishes within its timeout).
// (The executor comes as an argument: here clang 14's analyzer reports a
// false uninitialised pointer inside Boost's `co_await this_coro::executor`.)
net::awaitable<void> drain_watch(net::any_io_executor ex, notify_stack& ns, const signal_stop& stop,
                                 sys_ms until) {
    net::steady_timer t(ex);
    while (true) {
        t.expires_after(milliseconds(100));
        boost::system::error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        const sys_ms now = system_now();
        if (stop.stopping() || now >= until || ns.idle(now)) break;
    }
    ns.disp->stop();
}

}  // namespace

int cmd_once(const policy::config& cfg, const notify::config& ncfg, const cli& c) {
    net::io_context io;
    signal_stop stop(io, std::min<milliseconds>(cfg.apigee.timeout + 5 * k_second, 80 * k_second));
    obs::audit_log audit(cfg.state_dir);
    // Dry runs publish nothing: no notification is made or delivered.
    std::unique_ptr<notify_stack> ns;
    if (!c.dry_run && ncfg.has_sinks()) {
        auto opened = open_notify(io.get_executor(), cfg, ncfg, nullptr);
        if (!opened) {
            obs::log_event(spdlog::level::critical, "cannot set up notifications",
                           {{"error", opened.err().describe()}});
            return k_exit_config;
        }
        ns = std::move(opened.value());
    }
    counting_observer rec(&audit, nullptr, &stop.stopping());
    if (ns) rec.recorder().set_notifier(ns->notifier.get());
    bool ok = true;
    const bool rotate = c.command == "rotate";
    // `rotate` looks at one app: every other policy governs none of it.
    if (rotate) rec.recorder().warn_idle_policies(false);
    std::string only_org, developer, app_name;
    if (rotate) {
        const auto first = c.app.find('/');
        const auto second = c.app.find('/', first + 1);
        only_org = c.app.substr(0, first);
        developer = c.app.substr(first + 1, second - first - 1);
        app_name = c.app.substr(second + 1);
    }
    auto session = apigee::open_session(io.get_executor(), cfg.apigee, {}, request_tracer());
    if (!session) {
        // Set-up is local (key file, CA file, proxy): a configuration error.
        obs::log_event(spdlog::level::err, "cannot set up the Apigee client",
                       {{"error", session.err().describe()}});
        return k_exit_config;
    }
    auto gate = delivery_gate::create(io.get_executor(), cfg, session.value()->auth.get(), {});
    if (!gate) {
        obs::log_event(spdlog::level::err, "cannot set up delivery",
                       {{"error", gate.err().message}});
        return k_exit_config;
    }
    bool org_found = !rotate;
    std::string not_rotated;
    for (const auto& org : organizations(cfg)) {
        if (stop.stopping()) break;
        if (rotate && org != only_org) continue;
        org_found = true;
        auto link = link_org(*session.value(), cfg, org, rec, nullptr, gate.value().get());
        exec::run_options opt;
        opt.dry_run = c.dry_run;
        opt.concurrency = cfg.apigee.max_concurrency;
        opt.may_write = [&stop] { return !stop.stopping(); };  // checked before every write
        if (rotate) {
            // Apigee matches developer emails case-insensitively; so does keyrotd.
            opt.only_app = ascii_lower(developer) + "/" + app_name;
            opt.plan.force_rotate = true;
            opt.plan.revoke_now = c.revoke_now;
        }
        log_pass_start(org, link->policies, c.app, c.dry_run);
        const int created_before = rec.created();
        const int failed_before = rec.failed();
        const int completed_before = rec.completed();
        stop.open();
        auto sum =
            run_sync(io, link->exec->run_pass(link->policies, opt), [&stop] { stop.close(); });
        if (!sum.ok) ok = false;
        if (!sum.ok && is_org_not_found(sum))
            obs::log_event(spdlog::level::err, "organization not found",
                           {{"organization", org}, {"hint", org_hint(cfg, org, true).substr(2)}});
        if (rotate && !stop.stopping() && rec.created() == created_before)
            not_rotated = why_not_rotated(io, *link, opt, developer, app_name, sum, rec,
                                          failed_before, completed_before);
    }
    if (ns && !stop.stopping()) {
        // What this run queued (and what earlier runs left), delivered now if
        // the receivers answer; the rest waits in the outbox for `run`.
        spawn_dispatcher(io, *ns);
        net::co_spawn(io, drain_watch(io.get_executor(), *ns, stop, system_now() + k_once_drain),
                      [&stop](const std::exception_ptr&) { stop.close(); });
        stop.open();
        io.run();
        io.restart();
        if (const auto left = ns->disp->depth())
            obs::log_event(spdlog::level::info, "notifications left in the outbox for `run`",
                           {{"pending", static_cast<long long>(left)}});
    }
    if (stop.stopping()) {
        obs::log_event(spdlog::level::info, "stopped by a signal",
                       {{"exit_code", stop.exit_code()}});
        return stop.exit_code();
    }
    if (!org_found) not_rotated = "no policy names organization " + only_org;
    if (!not_rotated.empty()) {
        std::cerr << "keyrotd: " << c.app << " not rotated: " << not_rotated << "\n";
        return k_exit_failed;
    }
    return ok && rec.failed() == 0 ? k_exit_ok : k_exit_failed;
}

}  // namespace keyrot::daemon
