// Helpers the keyrotd commands share (daemon/*.cmd.cpp): the command line,
// the executor's observer, one organisation's link, notifications, tables.
// Internal to the daemon; inline so that each command is its own file.
#pragma once

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
#include "app.hpp"
#include "auth/token_source.hpp"
#include "common/asio.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
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

#ifndef KEYROTD_VERSION
#define KEYROTD_VERSION "0.0.0"
#endif

namespace keyrot::daemon {

inline const char* usage_text =
    "usage: keyrotd COMMAND [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  run        the daemon: passes every `interval` and when an action falls due\n"
    "  once       one pass over all policies, then exit (0 done, 1 an action failed)\n"
    "  plan       what a pass would do; changes nothing (0 nothing to do, 2 pending, 1 error)\n"
    "  validate   check config and policies (0 valid, 1 invalid)\n"
    "  inventory  every matched key: app, fingerprint, state, expiry, lineage (0, 1 error)\n"
    "  rotate     rotate one app now: --app ORG/DEVELOPER/APP [--revoke-now] (0 rotated, 1 not)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE  config file (default $KEYROTD_CONFIG, then /etc/keyrotd/keyrotd.yaml)\n"
    "  --json             plan / inventory: machine-readable output\n"
    "  --within DURATION  plan: also list what falls due within DURATION (e.g. 7d)\n"
    "  --dry-run          run / once / rotate: every write is a logged no-op\n"
    "  --app O/D/A        rotate: the app to rotate\n"
    "  --revoke-now       rotate: revoke the old key as soon as its successor is complete\n"
    "  --version          print the version\n"
    "\n"
    "exit codes: 64 usage, 75 stateDir in use by another keyrotd, 78 configuration,\n"
    "130 / 143 once or rotate stopped by SIGINT / SIGTERM (docs/cli.md)\n";

struct cli {
    std::string command;
    std::string config;
    bool json = false;
    bool dry_run = false;
    bool revoke_now = false;
    std::string app;                     // ORG/DEVELOPER/APP
    std::optional<milliseconds> within;  // plan --within: the forecast's window
    std::set<std::string> given;         // options given, by their long name
};

// The options each command takes; anything else is a usage error (64).
inline const std::map<std::string, std::set<std::string>>& command_options() {
    static const std::map<std::string, std::set<std::string>> t = {
        {"run", {"--config", "--dry-run"}},
        {"once", {"--config", "--dry-run"}},
        {"plan", {"--config", "--json", "--within"}},
        {"validate", {"--config"}},
        {"inventory", {"--config", "--json"}},
        {"rotate", {"--config", "--app", "--revoke-now", "--dry-run"}},
    };
    return t;
}

// "1 policy", "2 policies".
inline std::string count_of(long n, std::string_view one, std::string_view many) {
    return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// Refused calls carry this in their error, so the observer can tell "not sent
// because keyrotd is stopping" from a real failure.
constexpr std::string_view k_stopping = "keyrotd is stopping; call not sent";

// trace: every Apigee request, attempt by attempt (method, redacted path,
// status, seconds). Checked per call, so a SIGHUP that changes the level counts.
inline http::tracer_fn request_tracer() {
    return [](std::string_view request, int status, double seconds) {
        if (!spdlog::should_log(spdlog::level::trace)) return;
        obs::log_event(spdlog::level::trace, "request",
                       {{"request", request}, {"status", status}, {"seconds", seconds}});
    };
}

// The executor's observer: obs::recorder (audit log first, then log line and
// metrics), plus a count of failures for exit codes and readiness.
class counting_observer : public exec::observer {
  public:
    counting_observer(obs::audit_log* audit, obs::metrics* m, const bool* stopping = nullptr)
        : inner_(audit, m), stopping_(stopping) {}
    bool on_action(const exec::action_record& r) override {
        if (r.action == exec::audit_action::failed && stopping() &&
            r.detail.find(k_stopping) != std::string::npos) {
            // Nothing was sent: not a failed action, just work left for the next start.
            obs::log_event(spdlog::level::info, "not started: stopping",
                           {{"organization", r.organization},
                            {"developer", r.developer},
                            {"app", r.app},
                            {"policy", r.policy},
                            {"key", r.key},
                            {"replaces", r.replaces}});
            return true;
        }
        if (r.action == exec::audit_action::failed) {
            ++failed_;
            if (last_failure_.empty()) last_failure_ = r.detail;
        }
        if (r.action == exec::audit_action::created) ++created_;
        if (r.action == exec::audit_action::completed) ++completed_;
        if (r.dry_run) ++dry_run_[r.organization];
        return inner_.on_action(r);
    }
    void on_pass(const exec::pass_summary& s) override {
        log_decisions(s);
        last_dry_run_[s.organization] = dry_run_[s.organization];
        dry_run_.erase(s.organization);
        if (!s.ok && stopping()) {
            obs::log_event(spdlog::level::info, "pass cut short: stopping",
                           {{"organization", s.organization}, {"actions_done", s.actions_done}});
            return;
        }
        if (s.ok) last_ok_[s.organization] = system_now();
        inner_.on_pass(s);
    }
    bool wants_keys() const override { return inner_.wants_keys(); }
    void on_app(const exec::app_decision& d) override { inner_.on_app(d); }
    bool wants_decisions() const override { return inner_.wants_decisions(); }
    void on_delivery(const exec::delivery_record& d) override { inner_.on_delivery(d); }
    obs::recorder& recorder() { return inner_; }
    int failed() const { return failed_; }
    int created() const { return created_; }
    int completed() const { return completed_; }
    // Actions of the organisation's last pass that were dry-run records only.
    int last_dry_run(const std::string& org) const {
        auto it = last_dry_run_.find(org);
        return it == last_dry_run_.end() ? 0 : it->second;
    }
    const std::string& last_failure() const { return last_failure_; }
    // When each organisation's last successful pass ended (absent: never).
    const std::map<std::string, sys_ms>& last_ok() const { return last_ok_; }

  private:
    bool stopping() const { return stopping_ != nullptr && *stopping_; }

    // debug: what the pass read and what it decided, policy by policy.
    static void log_decisions(const exec::pass_summary& s) {
        if (!spdlog::should_log(spdlog::level::debug)) return;
        std::vector<obs::field> read = {{"organization", s.organization},
                                        {"apps_seen", s.apps_seen},
                                        {"apps_matched", s.apps_matched}};
        std::vector<std::string> names;
        names.reserve(s.skipped_apps.size());
        for (const auto& [reason, n] : s.skipped_apps) {
            names.push_back("skipped_" + reason);
            read.emplace_back(names.back(), n);
        }
        obs::log_event(spdlog::level::debug, "pass read", read);
        for (const auto& c : s.by_policy)
            obs::log_event(spdlog::level::debug, "policy decided",
                           {{"organization", s.organization},
                            {"policy", c.policy},
                            {"apps", c.apps},
                            {"valid", c.valid},
                            {"due", c.due},
                            {"overlap", c.overlap},
                            {"expired", c.expired},
                            {"revoked", c.revoked},
                            {"skipped", c.skipped},
                            {"apps_without_valid_key", c.apps_without_valid_key}});
    }

    obs::recorder inner_;
    const bool* stopping_;
    int failed_ = 0;
    int created_ = 0;
    int completed_ = 0;
    std::map<std::string, int> dry_run_, last_dry_run_;  // per organization
    std::string last_failure_;
    std::map<std::string, sys_ms> last_ok_;
};

// Wraps the session's token source: once `closed` is set, every new Apigee call
// is refused before it is sent. Calls already sent finish (each bounded by
// apigee.timeout); a pass then unwinds at its next call. What that leaves (a
// pending successor, an unrevoked key) is what a crash leaves, and the next
// start completes it.
class stop_gate final : public auth::token_source {
  public:
    stop_gate(std::unique_ptr<auth::token_source> inner, const bool& closed)
        : inner_(std::move(inner)), closed_(closed) {}
    net::awaitable<result<secret>> authorization_header() override {
        if (closed_) {
            error e;
            e.what = error::kind::auth;
            e.message = std::string(k_stopping);
            co_return e;
        }
        auto header = co_await inner_->authorization_header();
        co_return header;
    }
    void invalidate() override { inner_->invalidate(); }
    std::string describe() const override { return inner_->describe(); }

  private:
    std::unique_ptr<auth::token_source> inner_;
    const bool& closed_;
};

// Everything needed to talk to one organisation. All organisations share one
// apigee::session: one connection pool and one requestsPerSecond budget, which
// is Apigee's per-caller quota.
struct org_link {
    std::string organization;
    std::vector<policy::policy> policies;
    std::unique_ptr<apigee::api> api;
    std::unique_ptr<exec::executor> exec;
};

// `store`: where crash-recovery state goes (default: stateDir/journal).
inline std::unique_ptr<org_link> link_org(apigee::session& s, const policy::config& cfg,
                                          const std::string& org, exec::observer& obs,
                                          exec::state_store* store = nullptr,
                                          exec::delivery* delivery = nullptr) {
    auto link = std::make_unique<org_link>();
    link->organization = org;
    for (const auto& p : cfg.policies)
        if (p.organization == org) link->policies.push_back(p);
    link->api = s.for_organization(org);
    link->exec =
        std::make_unique<exec::executor>(*link->api, obs, cfg.state_dir, system_now, store);
    link->exec->set_delivery(delivery);  // the revocation gate (docs/delivery.md); null: none
    return link;
}

inline std::vector<std::string> organizations(const policy::config& cfg) {
    std::set<std::string> orgs;
    for (const auto& p : cfg.policies) orgs.insert(p.organization);
    return {orgs.begin(), orgs.end()};
}

inline void print_diagnostics(const std::vector<policy::diagnostic>& ds) {
    for (const auto& d : ds) std::cerr << policy::to_string(d) << "\n";
}

template <typename T>
net::awaitable<void> store(net::awaitable<T> aw, std::optional<T>& out) {
    out.emplace(co_await std::move(aw));
}

// Runs a coroutine to completion on `io`; rethrows its exception. (Asio 1.18's
// co_spawn wants default-constructible results, which result<T> is not.)
// `done` runs when the coroutine ends: it cancels what else keeps `io` busy
// (a signal wait), so that io.run() returns.
template <typename T>
T run_sync(net::io_context& io, net::awaitable<T> aw, std::function<void()> done = {}) {
    std::optional<T> out;
    std::exception_ptr err;
    net::co_spawn(io, store(std::move(aw), out), [&err, &done](std::exception_ptr e) {
        err = std::move(e);
        if (done) done();
    });
    io.run();
    io.restart();
    if (err) std::rethrow_exception(err);
    return std::move(*out);
}

inline bool is_write(const plan::action& a) { return a.kind != plan::action_kind::report; }

// ---- notifications (docs/notifications.md) -----------------------------------

// The `notify` section through notify::parse_config, its problems as
// diagnostics naming the config file, line and field like every other
// config error. `out` gets the parsed section when there is none.
inline std::vector<policy::diagnostic> load_notify(const policy::config& cfg, notify::config& out) {
    std::vector<policy::diagnostic> ds;
    nlohmann::json section;
    if (!cfg.notify_json.empty()) section = nlohmann::json::parse(cfg.notify_json);
    auto parsed = notify::parse_config(section);
    if (parsed) {
        out = std::move(parsed.value());
        return ds;
    }
    // "notify.webhooks[0].url: …; notify.maxAge: …": one diagnostic each.
    const std::string& all = parsed.err().message;
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        const auto next = all.find("; notify", start);
        parts.push_back(all.substr(start, next == std::string::npos ? next : next - start));
        if (next == std::string::npos) break;
        start = next + 2;
    }
    for (const auto& part : parts) {
        policy::diagnostic d;
        d.file = cfg.source;
        const auto colon = part.find(": ");
        d.field = colon == std::string::npos ? "notify" : part.substr(0, colon);
        d.message = colon == std::string::npos ? part : part.substr(colon + 2);
        // The closest enclosing path whose position the loader recorded.
        for (std::string f = d.field; !f.empty();) {
            if (auto it = cfg.positions.find(f); it != cfg.positions.end()) {
                d.line = it->second.first;
                d.column = it->second.second;
                break;
            }
            const auto cut = f.find_last_of(".[");
            f = cut == std::string::npos ? "" : f.substr(0, cut);
        }
        ds.push_back(std::move(d));
    }
    return ds;
}

// The outbox under stateDir, one webhook sink each, the dispatcher, and the
// observer-side notifier that turns audit records and passes into events.
struct notify_stack {
    std::unique_ptr<notify::outbox> box;
    std::unique_ptr<notify::dispatcher> disp;
    std::unique_ptr<obs::notifier> notifier;
    std::vector<std::string> sinks;
    obs::metrics* metrics = nullptr;
    std::set<std::string> failed_sinks;  // `once`: sinks that failed during the drain

    void refresh_gauges() const {
        if (metrics)
            metrics->set_notify_outbox(disp->depth(),
                                       std::chrono::duration<double>(disp->oldest_age()).count());
    }
    // Nothing left that `once` can deliver now: no attempt in flight, and every
    // sink is disabled, failed during this drain, or has nothing due.
    bool idle(sys_ms now) const {
        if (disp->in_flight() > 0) return false;
        for (const auto& s : sinks) {
            if (disp->disabled(s) || failed_sinks.count(s)) continue;
            const auto first = box->earliest(s);
            if (first && first->first <= now) return false;
        }
        return true;
    }
};

// Start-up: every error is a configuration error (exit 78): the outbox cannot
// be opened, a signing key or CA file cannot be read or is malformed.
inline result<std::unique_ptr<notify_stack>> open_notify(const net::any_io_executor& ex,
                                                         const policy::config& cfg,
                                                         const notify::config& ncfg,
                                                         obs::metrics* m) {
    auto ns = std::make_unique<notify_stack>();
    ns->metrics = m;
    auto box =
        notify::outbox::open(std::filesystem::path(cfg.state_dir) / "outbox", ncfg.outbox_max);
    if (!box) return box.err();
    ns->box = std::move(box.value());
    const auto& rep = ns->box->loaded();
    if (rep.loaded || rep.corrupt || rep.leftovers)
        obs::log_event(rep.corrupt ? spdlog::level::warn : spdlog::level::info,
                       "notification outbox loaded",
                       {{"pending", static_cast<long long>(rep.loaded)},
                        {"corrupt", static_cast<long long>(rep.corrupt)},
                        {"half_written_removed", static_cast<long long>(rep.leftovers)}});
    auto made = notify::make_sinks(ex, ncfg);  // webhooks, then emails
    if (!made) return made.err();
    ns->sinks = made->names;
    std::vector<std::unique_ptr<notify::sink>> sinks = std::move(made->sinks);
    if (m) m->enable_notify(ns->sinks);
    notify::dispatcher_options opt;
    opt.max_age = ncfg.max_age;
    opt.clock = system_now;
    notify_stack* self = ns.get();
    opt.on_report = [self](const notify::report& r) {
        if (r.what == notify::report::kind::retrying) self->failed_sinks.insert(r.sink);
        if (self->notifier) self->notifier->on_report(r);
        self->refresh_gauges();
    };
    ns->disp = std::make_unique<notify::dispatcher>(ex, *ns->box, std::move(sinks), std::move(opt));
    ns->notifier = std::make_unique<obs::notifier>(
        [self](const notify::event& e) {
            auto r = self->disp->publish(e);
            self->refresh_gauges();
            return r;
        },
        obs::notify_policies(cfg, ncfg), std::filesystem::path(cfg.state_dir) / "notify-sent.json",
        m, system_now);
    ns->notifier->set_max_age(ncfg.max_age);
    ns->refresh_gauges();
    return ns;
}

inline void spawn_dispatcher(net::io_context& io, notify_stack& ns) {
    net::co_spawn(io, ns.disp->run(), [](const std::exception_ptr& e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            obs::log_event(spdlog::level::critical, "notification dispatcher died",
                           {{"error", ex.what()}});
        }
    });
}

// `once`: how long delivery may go on after the passes (docs/cli.md).
inline constexpr milliseconds k_once_drain = 10 * k_second;

// Terminal columns of one code point: combining marks and zero-width
// characters take none, East Asian wide and emoji two.
inline int char_width(char32_t cp) {
    if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
        (cp >= 0x1dc0 && cp <= 0x1dff) || (cp >= 0x20d0 && cp <= 0x20ff) ||
        (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0xfe20 && cp <= 0xfe2f) ||
        (cp >= 0x200b && cp <= 0x200f))
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
        (cp >= 0x3041 && cp <= 0x33ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
        (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
        (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd))
        return 2;
    return 1;
}

// Columns a UTF-8 string takes in a terminal (a stray byte counts as one).
inline std::size_t display_width(std::string_view s) {
    std::size_t w = 0;
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + static_cast<std::size_t>(len) > s.size()) {
            ++w;
            ++i;
            continue;
        }
        char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        for (int k = 1; k < len; ++k)
            cp =
                (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) & 0x3f);
        i += static_cast<std::size_t>(len);
        w += static_cast<std::size_t>(char_width(cp));
    }
    return w;
}

inline std::string pad(std::string s, std::size_t w) {
    const std::size_t have = display_width(s);
    if (have < w) s.append(w - have, ' ');
    return s;
}

inline void print_table(const std::vector<std::string>& head,
                        const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(head.size());
    for (std::size_t i = 0; i < head.size(); ++i) width[i] = display_width(head[i]);
    for (const auto& r : rows)
        for (std::size_t i = 0; i + 1 < r.size(); ++i)
            width[i] = std::max(width[i], display_width(r[i]));
    auto line = [&](const std::vector<std::string>& r) {
        std::string s;
        for (std::size_t i = 0; i < r.size(); ++i)
            s += i + 1 < r.size() ? pad(r[i], width[i] + 2) : r[i];
        std::cout << s << "\n";
    };
    line(head);
    for (const auto& r : rows) line(r);
}

// A 404 on the organisation itself: name the policies (and files) that use it.
inline std::string org_hint(const policy::config& cfg, const std::string& org, bool not_found) {
    if (!not_found) return "";
    std::string who;
    for (const auto& p : cfg.policies)
        if (p.organization == org)
            who += (who.empty() ? "" : ", ") + ("policy " + p.name + " (" + p.source + ")");
    return "; organization " + org +
           " does not exist or these credentials cannot see it: " + "check `organization` in " +
           who;
}

// A pass that read nothing and failed with 404 (or 403: Apigee's answer for an
// organisation these credentials cannot see) on the organisation's listing.
inline bool is_org_not_found(const exec::pass_summary& s) {
    return s.apps_seen == 0 && (s.error.find("HTTP 404") != std::string::npos ||
                                s.error.find("HTTP 403") != std::string::npos);
}

// The info line that starts a pass: organisation, policies, what it reads.
inline void log_pass_start(const std::string& org, const std::vector<policy::policy>& policies,
                           const std::string& app, bool dry_run) {
    std::string names;
    bool revoked = false;
    for (const auto& p : policies) {
        names += (names.empty() ? "" : ",") + p.name;
        revoked = revoked || p.rotation.deletes_revoked();
    }
    std::vector<obs::field> f = {
        {"organization", org},
        {"policies", names},
        {"reading", std::string("developers, apps with approved keys") +
                        (revoked ? ", apps with revoked keys (deleteRevokedAfter)" : "")}};
    if (!app.empty()) f.emplace_back("app", app);
    if (dry_run) f.emplace_back("dry_run", "true");
    obs::log_event(spdlog::level::info, "pass starting", f);
}

// "1 app not rotated: developer inactive" (pass_summary::skipped_apps).
inline std::string skipped_line(const std::string& reason, int n) {
    if (reason == "team-inactive")
        return count_of(n, "team app", "team apps") + " not rotated: team (AppGroup) inactive";
    if (reason == "team-unknown")
        return count_of(n, "team app", "team apps") +
               " not rotated: team's status unknown (never written to)";
    if (reason == "developer-inactive")
        return count_of(n, "app", "apps") + " not rotated: developer inactive";
    if (reason == "developer-unknown")
        return count_of(n, "app", "apps") +
               " not rotated: developer's status unknown (never written to)";
    if (reason == "app-revoked") return count_of(n, "revoked app", "revoked apps") + " not rotated";
    return count_of(n, "app", "apps") + " not rotated: " + reason;
}

// `plan --within`: one organisation's forecast, from a listing of every app
// with all its keys (the listing's approved and revoked phases joined per
// app). Developer statuses the listing does not give are taken from the plan
}  // namespace keyrot::daemon
