#include "app.hpp"

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

#ifndef KEYROTD_VERSION
#define KEYROTD_VERSION "0.0.0"
#endif

namespace keyrot::daemon {
namespace {

millis wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

const char* usage_text =
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
    std::string app;               // ORG/DEVELOPER/APP
    std::optional<millis> within;  // plan --within: the forecast's window
    std::set<std::string> given;   // options given, by their long name
};

// The options each command takes; anything else is a usage error (64).
const std::map<std::string, std::set<std::string>>& command_options() {
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

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

// "1 policy", "2 policies".
std::string count_of(long n, std::string_view one, std::string_view many) {
    return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// Refused calls carry this in their error, so the observer can tell "not sent
// because keyrotd is stopping" from a real failure.
constexpr std::string_view k_stopping = "keyrotd is stopping; call not sent";

// trace: every Apigee request, attempt by attempt (method, redacted path,
// status, seconds). Checked per call, so a SIGHUP that changes the level counts.
http::tracer_fn request_tracer() {
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
        if (r.action == "failed" && stopping() && r.detail.find(k_stopping) != std::string::npos) {
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
        if (r.action == "failed") {
            ++failed_;
            if (last_failure_.empty()) last_failure_ = r.detail;
        }
        if (r.action == "created") ++created_;
        if (r.action == "completed") ++completed_;
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
        if (s.ok) last_ok_[s.organization] = wall_now();
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
    const std::map<std::string, millis>& last_ok() const { return last_ok_; }

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
    std::map<std::string, millis> last_ok_;
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
std::unique_ptr<org_link> link_org(apigee::session& s, const policy::config& cfg,
                                   const std::string& org, exec::observer& obs,
                                   exec::state_store* store = nullptr,
                                   exec::delivery* delivery = nullptr) {
    auto link = std::make_unique<org_link>();
    link->organization = org;
    for (const auto& p : cfg.policies)
        if (p.organization == org) link->policies.push_back(p);
    link->api = s.for_organization(org);
    link->exec = std::make_unique<exec::executor>(*link->api, obs, cfg.state_dir, wall_now, store);
    link->exec->set_delivery(delivery);  // the revocation gate (docs/delivery.md); null: none
    return link;
}

std::vector<std::string> organizations(const policy::config& cfg) {
    std::set<std::string> orgs;
    for (const auto& p : cfg.policies) orgs.insert(p.organization);
    return {orgs.begin(), orgs.end()};
}

void print_diagnostics(const std::vector<policy::diagnostic>& ds) {
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
        err = e;
        if (done) done();
    });
    io.run();
    io.restart();
    if (err) std::rethrow_exception(err);
    return std::move(*out);
}

bool is_write(const plan::action& a) { return a.kind != plan::action_kind::report; }

// ---- notifications (docs/notifications.md) -----------------------------------

// The `notify` section through notify::parse_config, its problems as
// diagnostics naming the config file, line and field like every other
// config error. `out` gets the parsed section when there is none.
std::vector<policy::diagnostic> load_notify(const policy::config& cfg, notify::config& out) {
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
                                       static_cast<double>(disp->oldest_age()) / 1000.0);
    }
    // Nothing left that `once` can deliver now: no attempt in flight, and every
    // sink is disabled, failed during this drain, or has nothing due.
    bool idle(millis now) const {
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
result<std::unique_ptr<notify_stack>> open_notify(net::any_io_executor ex,
                                                  const policy::config& cfg,
                                                  const notify::config& ncfg, obs::metrics* m) {
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
    opt.clock = wall_now;
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
        m, wall_now);
    ns->notifier->set_max_age(ncfg.max_age);
    ns->refresh_gauges();
    return ns;
}

void spawn_dispatcher(net::io_context& io, notify_stack& ns) {
    net::co_spawn(io, ns.disp->run(), [](std::exception_ptr e) {
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
inline constexpr millis k_once_drain = 10 * k_second;

// Terminal columns of one code point: combining marks and zero-width
// characters take none, East Asian wide and emoji two.
int char_width(char32_t cp) {
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
std::size_t display_width(std::string_view s) {
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

std::string pad(std::string s, std::size_t w) {
    const std::size_t have = display_width(s);
    if (have < w) s.append(w - have, ' ');
    return s;
}

void print_table(const std::vector<std::string>& head,
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
std::string org_hint(const policy::config& cfg, const std::string& org, bool not_found) {
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
bool is_org_not_found(const exec::pass_summary& s) {
    return s.apps_seen == 0 && (s.error.find("HTTP 404") != std::string::npos ||
                                s.error.find("HTTP 403") != std::string::npos);
}

// The info line that starts a pass: organisation, policies, what it reads.
void log_pass_start(const std::string& org, const std::vector<policy::policy>& policies,
                    const std::string& app, bool dry_run) {
    std::string names;
    bool revoked = false;
    for (const auto& p : policies) {
        names += (names.empty() ? "" : ",") + p.name;
        revoked = revoked || p.rotation.delete_revoked_after > 0;
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

// "3 team (AppGroup) apps not rotated: not supported yet" (pass_summary::skipped_apps).
std::string skipped_line(const std::string& reason, int n) {
    if (reason == "team-app")
        return count_of(n, "team (AppGroup) app", "team (AppGroup) apps") +
               " not rotated: not supported yet";
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
// (`planned`), which learnt those it needed.
struct forecast_row {
    millis at = 0;
    int calls = 0;  // Apigee requests of its action (plan::forecast_item::apigee_calls)
    nlohmann::json json;
    std::vector<std::string> text;
};

std::vector<forecast_row> forecast_org(const std::string& org, std::vector<app> listed,
                                       const std::vector<exec::planned_app>& planned,
                                       const std::vector<policy::policy>& policies, millis now,
                                       millis until, long& apps_listed, long& developers_listed) {
    std::map<std::string, std::string> status;  // lower(developer) \n app -> status
    for (const auto& pa : planned)
        status[lower(pa.snapshot.developer_email) + "\n" + pa.snapshot.name] =
            pa.snapshot.developer_status;
    std::map<std::string, app> apps;  // owner \n app -> the app with every key
    std::vector<std::string> order;
    for (auto& a : listed) {
        const std::string id =
            (a.app_group.empty() ? lower(a.developer_email) : "team:" + a.app_group) + "\n" +
            a.name;
        auto it = apps.find(id);
        if (it == apps.end()) {
            order.push_back(id);
            apps.emplace(id, std::move(a));
            continue;
        }
        for (auto& k : a.credentials) {
            const bool seen =
                std::any_of(it->second.credentials.begin(), it->second.credentials.end(),
                            [&](const credential& o) { return o.fingerprint == k.fingerprint; });
            if (!seen) it->second.credentials.push_back(std::move(k));
        }
    }
    std::vector<forecast_row> rows;
    apps_listed = static_cast<long>(order.size());
    std::set<std::string> developers;
    for (const auto& id : order)
        if (const auto& a = apps.at(id); a.app_group.empty())
            developers.insert(lower(a.developer_email));
    developers_listed = static_cast<long>(developers.size());
    for (const auto& id : order) {
        app& a = apps.at(id);
        const policy::policy* p = a.app_group.empty() ? plan::match_policy(a, policies) : nullptr;
        if (p != nullptr && a.developer_status.empty()) {
            auto known = status.find(lower(a.developer_email) + "\n" + a.name);
            if (known != status.end()) a.developer_status = known->second;
        }
        const std::string owner = a.app_group.empty() ? a.developer_email : "team:" + a.app_group;
        for (const auto& it : plan::forecast_app(a, p, now, until)) {
            const std::string kind = plan::to_string(it.kind);
            forecast_row r;
            r.at = it.at;
            r.calls = it.apigee_calls;
            r.json = {{"at", format_time(it.at)},
                      {"forecast", true},
                      {"organization", org},
                      {"developer", a.developer_email},
                      {"app", a.name},
                      {"policy", p != nullptr ? p->name : ""},
                      {"action", kind},
                      // As in the rows due now: a `create` names the key it
                      // replaces; a successor not made yet is "(successor of FP)".
                      {"key", it.kind == plan::forecast_kind::rotate ? std::string() : it.key},
                      {"replaces", it.kind == plan::forecast_kind::rotate ? it.key : it.replaces},
                      {"expiresAt", it.kind == plan::forecast_kind::rotate ||
                                            it.kind == plan::forecast_kind::expire
                                        ? format_time(it.expires_at)
                                        : ""},
                      {"reason", it.reason},
                      {"apiCalls", it.apigee_calls}};
            if (!a.app_group.empty()) r.json["team"] = a.app_group;
            r.text = {format_time(it.at),           org,  owner,  a.name,
                      p != nullptr ? p->name : "-", kind, it.key, it.reason};
            rows.push_back(std::move(r));
        }
    }
    return rows;
}

// `plan --within`: the Apigee requests one organisation's forecast needs,
// against the quota (Apigee: 6,000 a minute per organisation, shared with
// every other client) and keyrotd's own limit (apigee.requestsPerSecond).
std::string quota_line(const std::string& org, const std::vector<forecast_row>& rows, long apps,
                       long developers, bool revoked, const policy::config& cfg, millis window) {
    long actions = 0;
    std::map<millis, long> by_day, by_minute;
    std::set<std::string> wakes;  // (app, moment): `run` re-reads the app then (one GET)
    for (const auto& r : rows) {
        if (r.calls == 0) continue;
        const bool wake = wakes
                              .insert(r.json.value("developer", "") + "\n" +
                                      r.json.value("app", "") + "\n" + std::to_string(r.at))
                              .second;
        const long n = r.calls + (wake ? 1 : 0);
        actions += n;
        by_day[r.at / k_day] += n;
        by_minute[r.at / k_minute] += n;
    }
    auto busiest = [](const std::map<millis, long>& m) {
        return *std::max_element(m.begin(), m.end(),
                                 [](const auto& x, const auto& y) { return x.second < y.second; });
    };
    const long per_pass = plan::pass_calls(apps, developers, 1000, revoked);
    const long passes_a_day = cfg.interval > 0 ? k_day / cfg.interval : 0;
    const long list_reads =
        cfg.interval > 0 ? static_cast<long>(window / cfg.interval) * per_pass : 0;
    std::string out = "Apigee requests for " + org + " within " + format_duration(window) + ": " +
                      std::to_string(actions) + " for these actions";
    if (actions > 0) {
        const auto day = busiest(by_day);
        const auto minute = busiest(by_minute);
        out += " (busiest day " + format_time(day.first * k_day).substr(0, 10) + ": " +
               std::to_string(day.second) + "; busiest minute " +
               format_time(minute.first * k_minute).substr(0, 16) +
               "Z: " + std::to_string(minute.second) + ")";
    }
    out += ", and about " + std::to_string(list_reads) + " list reads for the passes (" +
           std::to_string(passes_a_day) + " a day, " + std::to_string(per_pass) +
           " each). Apigee's quota is 6,000 a minute per organization, shared with every other "
           "client; keyrotd sends at most " +
           std::to_string(static_cast<long>(cfg.apigee.requests_per_second * 60)) +
           " a minute (apigee.requestsPerSecond).";
    return out;
}

// `plan`/`inventory`: where a key is among its app's delivery targets
// (docs/delivery.md), from delivery_gate::inspect. `json` is null for a policy
// that does not deliver.
struct delivery_view {
    nlohmann::json json;
    std::string text = "-";
};

delivery_view view_delivery(const result<std::vector<exec::target_state>>* states,
                            const std::string& fp, bool working) {
    delivery_view v;
    if (states == nullptr) return v;  // the policy does not deliver
    if (!*states) {
        v.json = {{"error", states->err().message}};
        v.text = "? (" + states->err().message + ")";
        return v;
    }
    int targets = 0, current = 0, previous = 0;
    nlohmann::json errors = nlohmann::json::array(), skipped = nlohmann::json::array(),
                   holding = nlohmann::json::array();
    for (const auto& t : states->value()) {
        if (!t.skipped.empty()) {
            skipped.push_back(t.skipped);
            continue;
        }
        ++targets;
        if (!t.error.empty()) {
            errors.push_back(t.target + ": " + t.error);
            continue;
        }
        const char* as = t.key == fp ? "current" : t.previous == fp ? "previous" : "no";
        if (t.key == fp) ++current;
        if (t.previous == fp) ++previous;
        holding.push_back({{"target", t.target}, {"holds", as}, {"key", t.key}});
    }
    v.json = {{"targets", targets}, {"current", current}, {"previous", previous},
              {"holding", holding}, {"errors", errors},   {"skipped", skipped}};
    const std::string of = "/" + std::to_string(targets);
    if (targets == 0)
        v.text = "no target";
    else if (current > 0)
        v.text = "current " + std::to_string(current) + of;
    else if (previous > 0)
        v.text = "previous " + std::to_string(previous) + of;
    else
        v.text = working ? "not delivered 0" + of : "-";
    if (!errors.empty()) v.text += ", " + std::to_string(errors.size()) + " unreadable";
    return v;
}

int cmd_plan(const policy::config& cfg, const cli& c, bool inventory_mode) {
    net::io_context io;
    counting_observer rec(nullptr, nullptr);
    nlohmann::json out = nlohmann::json::array();
    int pending = 0;
    int apps = 0;
    std::vector<std::string> errors;
    std::map<std::string, int> skipped;  // skip reason -> apps
    std::vector<std::vector<std::string>> rows;
    std::vector<forecast_row> ahead;  // plan --within
    std::vector<std::string> quotas;  // plan --within: the Apigee requests it needs, per org
    auto fail = [&](const std::string& why) {
        std::cerr << "keyrotd: " << why << "\n";
        errors.push_back(why);
    };
    auto session = apigee::open_session(io.get_executor(), cfg.apigee, {}, request_tracer());
    if (!session) {  // local set-up (key file, CA file, proxy): a configuration error
        const std::string why = "apigee: " + session.err().describe();
        std::cerr << "keyrotd: " << why << "\n";
        if (c.json) std::cout << nlohmann::json{{"error", why}}.dump(2) << "\n";
        return k_exit_config;
    }
    // Delivery targets, read only: where each successor is (docs/delivery.md).
    std::unique_ptr<delivery_gate> gate;
    std::string gate_error;
    if (std::any_of(cfg.policies.begin(), cfg.policies.end(),
                    [](const policy::policy& p) { return !p.deliver_json.empty(); })) {
        auto g = delivery_gate::create(io.get_executor(), cfg, session.value()->auth.get(), {});
        if (g) {
            gate = std::move(g.value());
        } else {
            gate_error = g.err().message;
            std::cerr << "keyrotd: delivery state unknown: " << gate_error << "\n";
        }
    }
    // inspect() of one app, or null when its policy does not deliver.
    auto inspect =
        [&](const exec::planned_app& pa) -> std::optional<result<std::vector<exec::target_state>>> {
        if (pa.policy->deliver_json.empty()) return std::nullopt;
        if (!gate) {
            error e;
            e.what = error::kind::config;
            e.message = gate_error;
            return result<std::vector<exec::target_state>>(e);
        }
        return run_sync(io, gate->inspect(pa.snapshot, *pa.policy));
    };
    for (const auto& org : organizations(cfg)) {
        auto link = link_org(*session.value(), cfg, org, rec);
        exec::run_options opt;
        opt.concurrency = cfg.apigee.max_concurrency;
        opt.list_revoked = inventory_mode;          // every key, revoked ones too
        opt.learn_all_developers = inventory_mode;  // every key's state, also when no work
        auto planned = run_sync(io, link->exec->plan(link->policies, opt));
        if (!planned) {
            fail("organization " + org + ": " + planned.err().describe() +
                 org_hint(cfg, org, planned.err().is_status(404) || planned.err().is_status(403)));
            continue;
        }
        for (const auto& [reason, n] : link->exec->skipped_apps()) skipped[reason] += n;
        if (c.within && !inventory_mode) {
            exec::run_options lopt;
            lopt.list_revoked = std::any_of(
                link->policies.begin(), link->policies.end(),
                [](const policy::policy& p) { return p.rotation.delete_revoked_after > 0; });
            auto listed = run_sync(io, link->exec->read_inventory(lopt));
            if (!listed) {
                fail("organization " + org + ": " + listed.err().describe());
                continue;
            }
            const millis now = wall_now();
            long listed_apps = 0, listed_developers = 0;
            std::vector<forecast_row> org_rows =
                forecast_org(org, std::move(listed.value().apps), planned.value(), link->policies,
                             now, now + *c.within, listed_apps, listed_developers);
            quotas.push_back(quota_line(org, org_rows, listed_apps, listed_developers,
                                        lopt.list_revoked, cfg, *c.within));
            for (auto& r : org_rows) ahead.push_back(std::move(r));
        }
        for (const auto& pa : planned.value()) {
            const auto& a = pa.snapshot;
            ++apps;
            const auto states = pa.plan.skipped ? std::nullopt : inspect(pa);
            const auto* st = states ? &*states : nullptr;
            if (inventory_mode) {
                for (const auto& k : pa.plan.keys) {
                    const bool working = k.state == plan::key_state::valid ||
                                         k.state == plan::key_state::due ||
                                         k.state == plan::key_state::overlap;
                    const delivery_view dv = view_delivery(st, k.fingerprint, working);
                    out.push_back({{"organization", org},
                                   {"developer", a.developer_email},
                                   {"app", a.name},
                                   {"policy", pa.policy->name},
                                   {"key", k.fingerprint},
                                   {"state", plan::to_string(k.state)},
                                   {"issuedAt", format_time(k.issued_at)},
                                   {"expiresAt", format_time(k.expires_at)},
                                   {"replaces", k.replaces},
                                   {"pending", k.pending},
                                   {"successor", k.successor},
                                   {"appSkipped", pa.plan.skip_reason},
                                   {"delivery", dv.json}});
                    rows.push_back(
                        {org, a.developer_email, a.name, pa.policy->name, k.fingerprint,
                         plan::to_string(k.state), format_time(k.expires_at),
                         k.replaces.empty() ? "-" : k.replaces + (k.pending ? " (pending)" : ""),
                         dv.text, pa.plan.skip_reason.empty() ? "-" : pa.plan.skip_reason});
                }
                continue;
            }
            for (const auto& act : pa.plan.actions) {
                if (is_write(act)) ++pending;
                // An old key's revocation waits for its successor in every target.
                std::string succ;
                if (act.kind == plan::action_kind::revoke_key && act.replaces.empty())
                    for (const auto& v : pa.plan.keys)
                        if (v.fingerprint == act.key) succ = v.successor;
                const delivery_view dv =
                    succ.empty() ? delivery_view{} : view_delivery(st, succ, true);
                std::string reason = act.reason;
                if (!dv.json.is_null())
                    reason += "; successor in targets: " + dv.text +
                              " (delivered and read back before the revocation; held if not)";
                out.push_back(
                    {{"organization", org},
                     {"developer", a.developer_email},
                     {"app", a.name},
                     {"policy", pa.policy->name},
                     {"action", plan::to_string(act.kind)},
                     // As in the audit log: `key` is the key the action makes
                     // or acts on (a successor not made yet has none),
                     // `replaces` the key it replaces.
                     {"key",
                      act.kind == plan::action_kind::create_successor ? std::string() : act.key},
                     {"replaces",
                      act.kind == plan::action_kind::create_successor ? act.key : act.replaces},
                     {"expiresAt", act.kind == plan::action_kind::create_successor
                                       ? format_time(act.expires_at)
                                       : ""},
                     {"late", act.late},
                     {"failed", act.failed},
                     {"reason", act.reason}});
                if (!dv.json.is_null()) out.back()["successorDelivery"] = dv.json;
                rows.push_back({org, a.developer_email, a.name, pa.policy->name,
                                plan::to_string(act.kind), act.key, reason});
            }
        }
    }
    if (!errors.empty()) {
        // A partial answer would read as the whole truth: print no result at all.
        if (c.json) {
            std::string all;
            for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
            std::cout << nlohmann::json{{"error", all}}.dump(2) << "\n";
        }
        return k_exit_failed;
    }
    std::stable_sort(ahead.begin(), ahead.end(),
                     [](const forecast_row& x, const forecast_row& y) { return x.at < y.at; });
    if (c.json) {
        if (c.within) {
            // Rows due now first (marked "forecast": false), then the forecast.
            const std::string at = format_time(wall_now());
            for (auto& row : out) {
                row["at"] = at;
                row["forecast"] = false;
            }
            for (auto& r : ahead) out.push_back(std::move(r.json));
        }
        std::cout << out.dump(2) << "\n";
    } else {
        if (rows.empty()) {
            std::cout << (inventory_mode ? "no matched keys\n"
                          : c.within     ? "nothing to do now\n"
                                         : "nothing to do\n");
        } else if (inventory_mode) {
            print_table({"ORGANIZATION", "DEVELOPER", "APP", "POLICY", "KEY", "STATE", "EXPIRES",
                         "REPLACES", "DELIVERED", "APP SKIPPED"},
                        rows);
            std::cout << "\n"
                      << count_of(static_cast<long>(rows.size()), "key", "keys") << " in "
                      << count_of(apps, "matched app", "matched apps") << "\n";
        } else {
            print_table({"ORGANIZATION", "DEVELOPER", "APP", "POLICY", "ACTION", "KEY", "REASON"},
                        rows);
            const long reports = static_cast<long>(rows.size()) - pending;
            std::cout << "\n"
                      << count_of(pending, "action", "actions") << " pending"
                      << (reports > 0 ? " and " + count_of(reports, "report", "reports") : "")
                      << " over " << count_of(apps, "matched app", "matched apps") << "\n";
        }
        for (const auto& [reason, n] : skipped)
            if (n > 0) std::cout << skipped_line(reason, n) << "\n";
        if (c.within) {
            const std::string span = format_duration(*c.within);
            std::cout << "\n";
            if (ahead.empty()) {
                std::cout << "nothing falls due within " << span << "\n";
            } else {
                std::vector<std::vector<std::string>> trows;
                for (auto& r : ahead) trows.push_back(std::move(r.text));
                std::cout << "within " << span << ":\n";
                print_table({"WHEN", "ORGANIZATION", "DEVELOPER", "APP", "POLICY", "ACTION", "KEY",
                             "REASON"},
                            trows);
                std::cout << "\n"
                          << count_of(static_cast<long>(trows.size()), "item", "items")
                          << " falling due within " << span << "\n";
            }
            for (const auto& q : quotas) std::cout << q << "\n";
        }
    }
    if (inventory_mode) return k_exit_ok;
    return pending > 0 ? k_exit_pending : k_exit_ok;
}

// SIGINT / SIGTERM during `once` and `rotate`, as `run` handles them: no new
// write starts (run_options::may_write), writes in flight and their audit
// records finish. Bounded: after apigee.timeout + 5 s (at most 80 s), or at a
// second signal, keyrotd exits anyway; every audit record written so far is
// fsynced, and the next pass completes what was left half done.
class signal_stop {
  public:
    signal_stop(net::io_context& io, millis grace)
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
            deadline_.expires_after(std::chrono::milliseconds(grace_));
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
    millis grace_;
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
        if (lower(a.developer_email) == lower(developer) && a.name == name) found = &a;
    const std::string org = link.organization;
    if (found == nullptr)
        return "organization " + org + " has no app " + name + " of developer " + developer;
    const policy::policy* p = plan::match_policy(*found, link.policies);
    if (p == nullptr) {
        std::string names;
        for (const auto& q : link.policies) names += (names.empty() ? "" : ", ") + q.name;
        return "no policy matches the app (policies of organization " + org + ": " + names + ")";
    }
    const auto ap = plan::plan_app(*found, *p, wall_now(), opt.plan);
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
net::awaitable<void> drain_watch(notify_stack& ns, const signal_stop& stop, millis until) {
    net::steady_timer t(co_await net::this_coro::executor);
    while (true) {
        t.expires_after(std::chrono::milliseconds(100));
        boost::system::error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        const millis now = wall_now();
        if (stop.stopping() || now >= until || ns.idle(now)) break;
    }
    ns.disp->stop();
}

int cmd_once(const policy::config& cfg, const notify::config& ncfg, const cli& c) {
    net::io_context io;
    signal_stop stop(io, std::min<millis>(cfg.apigee.timeout + 5 * k_second, 80 * k_second));
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
            opt.only_app = lower(developer) + "/" + app_name;
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
        net::co_spawn(io, drain_watch(*ns, stop, wall_now() + k_once_drain),
                      [&stop](std::exception_ptr) { stop.close(); });
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

// ---- the daemon --------------------------------------------------------------

// Steady (monotonic) clock in ms: for timers and progress, never for key expiry.
millis steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

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

using sched::k_due_slack;
// A wake-up between full passes re-reads just the apps whose action falls due
// (one GET each) when there are at most this many; more, and a full pass is
// the cheaper read.
inline constexpr std::size_t k_targeted_max = 100;
inline constexpr millis k_fence_margin = 500;

// The notify section less expiringAt (which a reload applies).
std::string notify_without_leads(const std::string& text) {
    if (text.empty()) return text;
    auto j = nlohmann::json::parse(text);
    if (j.is_object()) j.erase("expiringAt");
    return j.dump();
}

// What a reload cannot change while running (only warned about).
std::vector<std::string> restart_only_changes(const policy::config& a, const policy::config& b) {
    std::vector<std::string> out;
    const auto& x = a.apigee;
    const auto& y = b.apigee;
    if (x.url != y.url || x.ca_file != y.ca_file || x.timeout != y.timeout ||
        x.max_concurrency != y.max_concurrency || x.requests_per_second != y.requests_per_second ||
        x.auth.method != y.auth.method || x.auth.path != y.auth.path || x.auth.env != y.auth.env ||
        x.auth.user_env != y.auth.user_env || x.auth.password_env != y.auth.password_env)
        out.emplace_back("apigee");
    if (a.listen != b.listen) out.emplace_back("listen");
    if (a.state_dir != b.state_dir) out.emplace_back("stateDir");
    if (a.metrics_per_key != b.metrics_per_key) out.emplace_back("metrics.perKey");
    if (notify_without_leads(a.notify_json) != notify_without_leads(b.notify_json))
        out.emplace_back("notify (webhooks, maxAge, outboxMax)");
    std::map<std::string, std::string> da, db;
    for (const auto& p : a.policies) da[p.name] = p.deliver_json;
    for (const auto& p : b.policies) db[p.name] = p.deliver_json;
    if (da != db) out.emplace_back("policies' deliver (revocations of those policies are held)");
    return out;
}

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
        metrics_.set_interval(static_cast<double>(cfg_->interval) / 1000.0);
        auto request_observer = metrics_.request_observer();
        auto session = apigee::open_session(
            io_.get_executor(), cfg_->apigee,
            [this, request_observer](std::string_view method, int code, double seconds) {
                last_progress_ = steady_ms();
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
                                          [this]() -> std::optional<millis> {
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
            net::co_spawn(io_, notify_gauges(), [](std::exception_ptr) {});
        }
        if (const auto usec = watchdog_interval_usec()) {
            watchdog_usec_ = usec;
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
        millis pass_started = 0;
        millis next_at = k_never;  // wall clock of the next pass
        std::string last;          // how the last pass went, for STATUS=
        // From the last full pass: when the next one is due, the config it ran
        // with, and the apps whose actions fall due before it (re-read alone).
        sched::schedule_state schedule;  // backoff, spin guard, the next full pass
        std::shared_ptr<const policy::config> full_cfg;
        std::vector<exec::app_wake> wakes;
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
        net::co_spawn(io_, elector_->run(), [](std::exception_ptr e) {
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
    std::optional<millis> write_budget() const {
        if (!elector_) return std::nullopt;
        if (!elector_->may_write()) return 0;
        const auto left = elector_->write_deadline() - std::chrono::steady_clock::now();
        return std::chrono::duration_cast<std::chrono::milliseconds>(left).count() - k_fence_margin;
    }

    void add_org(const std::string& org) {
        auto st = std::make_unique<org_state>(io_);
        st->link = link_org(*session_, *cfg_, org, rec_, state_store_.get(), delivery_.get());
        orgs_.push_back(std::move(st));
    }

    void start_loop(org_state& o) {
        o.done = false;
        net::co_spawn(io_, org_loop(o), [this, &o](std::exception_ptr e) {
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
                o.timer.expires_after(std::chrono::milliseconds(elector_->config().retry_period));
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
            o.pass_started = steady_ms();
            last_progress_ = o.pass_started;
            // Before the next full pass, an action falling due on a few apps
            // needs only those apps read again, not the whole organisation.
            const millis started = wall_now();
            std::vector<exec::app_wake> due;
            if (o.full_cfg == cfg && started < o.schedule.next_full) {
                for (const auto& w : o.wakes)
                    if (w.at <= started + k_due_slack) due.push_back(w);
            }
            const bool targeted = !due.empty() && due.size() <= k_targeted_max;
            exec::pass_summary sum;
            if (targeted) {
                obs::log_event(spdlog::level::info, "re-reading apps with an action due",
                               {{"organization", org}, {"apps", static_cast<int>(due.size())}});
                opt.wake_horizon = o.schedule.next_full + 1;
                sum = co_await o.link->exec->run_apps(policies, due, opt);
                std::erase_if(o.wakes, [&](const exec::app_wake& w) {
                    return std::any_of(due.begin(), due.end(), [&](const exec::app_wake& d) {
                        return d.developer == w.developer && d.app == w.app;
                    });
                });
                for (auto& w : sum.wakes) o.wakes.push_back(std::move(w));
                if (!sum.ok) o.schedule.next_full = started;  // the next pass reads everything
                obs::log_event(sum.ok ? spdlog::level::info : spdlog::level::err, "apps re-read",
                               {{"organization", org},
                                {"seconds", sum.seconds},
                                {"apps_seen", sum.apps_seen},
                                {"actions_done", sum.actions_done},
                                {"actions_failed", sum.actions_failed},
                                {"error", sum.error}});
            } else {
                log_pass_start(org, policies, "", dry_run_);
                // Record the wakes up to the latest the next full pass can come.
                opt.wake_horizon = started + cfg->interval + cfg->interval / 10 + 1;
                sum = co_await o.link->exec->run_pass(policies, opt);
                o.wakes = std::move(sum.wakes);
                o.full_cfg = cfg;
            }
            o.running = false;
            if (!sum.ok && is_org_not_found(sum))
                obs::log_event(
                    spdlog::level::err, "organization not found",
                    {{"organization", org}, {"hint", org_hint(*cfg, org, true).substr(2)}});
            // A pass over a large organisation leaves freed heap behind: give it
            // back, so the daemon is small between passes.
            ::malloc_trim(0);
            if (stopping_ || o.retired) break;

            const millis now = wall_now();
            sched::pass_result pr;
            pr.ok = sum.ok;
            pr.targeted = targeted;
            pr.config_changed = cfg_ != cfg;
            pr.now = now;
            pr.interval = cfg->interval;
            // The earliest action due over every app: the wakes of the last
            // full pass, updated by the targeted ones since.
            for (const auto& w : o.wakes) pr.next_action = earliest(pr.next_action, w.at);
            const sched::decision next =
                sched::next_pass(pr, o.schedule, [&rng](millis lo, millis hi) {
                    return std::uniform_int_distribution<millis>(lo, hi)(rng);
                });
            const millis wait = next.wait;
            const std::string why = next.why;
            o.next_at = now + wait;
            char secs[32];
            std::snprintf(secs, sizeof secs, "%.1fs", sum.seconds);
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
            if (wait > 0) {
                o.timer.expires_after(std::chrono::milliseconds(wait));
                boost::system::error_code ec;
                co_await o.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
        }
        o.next_at = k_never;
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
        millis next = k_never;
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
            if (!o->running && o->next_at != k_never)
                next = next == k_never ? o->next_at : std::min(next, o->next_at);
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
        if (next != k_never) s += "; next pass " + format_time(next);
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
        const millis grace = std::min<millis>(cfg_->apigee.timeout + 5 * k_second, 80 * k_second);
        obs::log_event(
            spdlog::level::info, "stopping: no new work; in-flight calls finish",
            {{"signal", sig}, {"passes_in_flight", busy}, {"deadline", format_duration(grace)}});
        sd_notify("STOPPING=1\nSTATUS=" + status_line());
        for (auto& o : orgs_) o->timer.cancel();
        watchdog_.cancel();
        stop_deadline_.expires_after(std::chrono::milliseconds(grace));
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
        auto loaded = policy::load_config(path_);
        if (!loaded.ok()) {
            obs::log_event(spdlog::level::err, "reload failed; the old config stays in force",
                           {{"config", path_}});
            for (const auto& d : loaded.diagnostics)
                obs::log_event(d.level == policy::diagnostic::severity::error ? spdlog::level::err
                                                                              : spdlog::level::warn,
                               policy::to_string(d), {});
            return false;
        }
        // Fails (throws) before anything changes, so the old config stays whole.
        obs::parse_log_level(loaded.cfg->log_level);
        obs::parse_log_format(loaded.cfg->log_format);
        for (const auto& d : loaded.diagnostics)
            obs::log_event(spdlog::level::warn, policy::to_string(d), {});
        notify::config next_notify;
        if (auto nd = load_notify(*loaded.cfg, next_notify); !nd.empty()) {
            obs::log_event(spdlog::level::err, "reload failed; the old config stays in force",
                           {{"config", path_}});
            for (const auto& d : nd) obs::log_event(spdlog::level::err, policy::to_string(d), {});
            return false;
        }
        auto next = std::make_shared<const policy::config>(std::move(*loaded.cfg));
        // Lead times (expiringAt) apply now; webhooks, maxAge, outboxMax at restart.
        if (notify_) notify_->notifier->set_policies(obs::notify_policies(*next, next_notify));
        for (const auto& what : restart_only_changes(*cfg_, *next))
            obs::log_event(spdlog::level::warn, "changed setting takes effect after a restart",
                           {{"setting", what}});
        if (next->log_level != cfg_->log_level || next->log_format != cfg_->log_format)
            obs::setup_logging(next->log_level, next->log_format);
        cfg_ = next;
        metrics_.set_interval(static_cast<double>(cfg_->interval) / 1000.0);

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
        const millis now = wall_now();
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
    millis stuck_after() const {
        return std::max<millis>(5 * k_minute, 3 * cfg_->apigee.timeout + 2 * k_minute);
    }

    std::string stuck_org() const {
        const millis now = steady_ms();
        for (const auto& o : orgs_)
            if (o->running && now - std::max(last_progress_, o->pass_started) > stuck_after())
                return o->link->organization;
        return {};
    }

    // WATCHDOG=1 from the event loop at half $WATCHDOG_USEC: a blocked loop stops
    // it, and so does a pass that makes no progress, so systemd restarts us.
    void arm_watchdog() {
        watchdog_.expires_after(std::chrono::microseconds(watchdog_usec_));
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
    std::uint64_t watchdog_usec_ = 0;
    millis last_progress_ = 0;  // steady_ms of the last Apigee request attempt
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

int parse(int argc, char** argv, cli& c) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        // --name=value, for the options that take a value
        std::optional<std::string> inline_value;
        if (a.starts_with("--")) {
            if (const auto eq = a.find('='); eq != std::string::npos) {
                inline_value = a.substr(eq + 1);
                a = a.substr(0, eq);
            }
        }
        auto value = [&](std::string& into) {
            if (inline_value) {
                into = *inline_value;
            } else if (i + 1 < argc) {
                into = argv[++i];
            } else {
                std::cerr << "keyrotd: " << a << " needs a value\n";
                return false;
            }
            return true;
        };
        const bool takes_value = a == "-c" || a == "--config" || a == "--app" || a == "--within";
        if (inline_value && !takes_value) {
            std::cerr << "keyrotd: " << a << " takes no value\n" << usage_text;
            return k_exit_usage;
        }
        if (a == "--version") {
            c.command = "version";
        } else if (a == "-h" || a == "--help" || a == "help") {
            c.command = "help";
        } else if (a == "-c" || a == "--config") {
            if (!value(c.config)) return k_exit_usage;
            c.given.insert("--config");
        } else if (a == "--json") {
            c.json = true;
            c.given.insert(a);
        } else if (a == "--dry-run") {
            c.dry_run = true;
            c.given.insert(a);
        } else if (a == "--revoke-now") {
            c.revoke_now = true;
            c.given.insert(a);
        } else if (a == "--app") {
            if (!value(c.app)) return k_exit_usage;
            c.given.insert(a);
        } else if (a == "--within") {
            std::string text;
            if (!value(text)) return k_exit_usage;
            c.within = parse_duration(text);
            if (!c.within || *c.within <= 0) {
                std::cerr << "keyrotd: --within needs a positive duration such as 7d, 12h or "
                             "P30D, not '"
                          << text << "'\n";
                return k_exit_usage;
            }
            c.given.insert(a);
        } else if (c.command.empty() && !a.empty() && a[0] != '-') {
            c.command = a;
        } else {
            std::cerr << "keyrotd: unknown argument '" << a << "'\n" << usage_text;
            return k_exit_usage;
        }
    }
    return 0;
}

// Key material passes through this process's memory; a core dump would put it
// on disk, and a same-user ptrace could read it. Not dumpable also makes
// /proc/PID/{mem,environ,...} root's. KEYROTD_ALLOW_CORE_DUMPS=1 keeps the
// process dumpable, for debugging.
void protect_memory() {
    const char* allow = std::getenv("KEYROTD_ALLOW_CORE_DUMPS");
    if (allow != nullptr && std::string_view(allow) == "1") return;
    // Not dumpable: no core file (unless fs.suid_dumpable=2, and then root's
    // only). No setrlimit(RLIMIT_CORE): the systemd unit's filter denies it
    // (~@resources); the unit sets LimitCORE=0 itself.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// `run`, `once` and `rotate` write the audit log and the journal: one keyrotd
// per stateDir. flock on STATEDIR/lock, which holds the PID of the holder;
// held until the process exits (the kernel drops it, even after kill -9).
int lock_state_dir(const std::string& dir) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            obs::log_event(spdlog::level::critical, "cannot create stateDir",
                           {{"stateDir", dir}, {"error", ec.message()}});
            return k_exit_failed;
        }
        ::chmod(dir.c_str(), 0700);  // only keyrotd reads its state
    }
    const std::string path = (std::filesystem::path(dir) / "lock").string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        obs::log_event(spdlog::level::critical, "cannot open the stateDir lock",
                       {{"path", path}, {"error", std::strerror(errno)}});
        return k_exit_failed;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK) {
            char buf[32] = {};
            const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
            std::string pid(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
            while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
            obs::log_event(spdlog::level::critical,
                           "stateDir " + dir + " in use by PID " + (pid.empty() ? "?" : pid) +
                               " (another keyrotd run, once or rotate); exiting with 75",
                           {{"stateDir", dir}, {"pid", pid}});
            ::close(fd);
            return k_exit_tempfail;
        }
        obs::log_event(spdlog::level::critical, "cannot lock stateDir",
                       {{"path", path}, {"error", std::strerror(err)}});
        ::close(fd);
        return k_exit_failed;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0)
        obs::log_event(spdlog::level::warn, "cannot write the PID into the stateDir lock",
                       {{"path", path}, {"error", std::strerror(errno)}});
    return 0;  // fd stays open: the lock lives as long as the process
}

}  // namespace

int main_cli(int argc, char** argv) {
    protect_memory();  // before anything reads a credential
    cli c;
    if (int rc = parse(argc, argv, c)) return rc;
    if (c.command == "version") {
        std::cout << "keyrotd " << KEYROTD_VERSION << "\n";
        return k_exit_ok;
    }
    if (c.command == "help") {
        std::cout << usage_text;
        return k_exit_ok;
    }
    const auto& table = command_options();
    const auto known = table.find(c.command);
    if (known == table.end()) {
        std::cerr << (c.command.empty() ? "keyrotd: no command\n"
                                        : "keyrotd: unknown command '" + c.command + "'\n")
                  << usage_text;
        return k_exit_usage;
    }
    for (const auto& o : c.given) {
        if (known->second.count(o)) continue;
        std::string takes;
        for (const auto& t : known->second) takes += " " + t;
        std::cerr << "keyrotd: " << c.command << " does not take " << o << " (it takes" << takes
                  << "; see keyrotd --help)\n";
        return k_exit_usage;
    }
    if (c.command == "rotate") {
        const auto first = c.app.find('/');
        if (c.app.empty() || first == std::string::npos ||
            c.app.find('/', first + 1) == std::string::npos) {
            std::cerr << "keyrotd: rotate needs --app ORG/DEVELOPER/APP\n";
            return k_exit_usage;
        }
    }
    if (c.config.empty()) {
        const char* env = std::getenv("KEYROTD_CONFIG");
        c.config = env && *env ? env : "/etc/keyrotd/keyrotd.yaml";
    }

    auto loaded = policy::load_config(c.config);
    notify::config ncfg;
    if (loaded.ok()) {
        // The notify section's own rules (docs/notifications.md), reported like
        // every other config error.
        auto nd = load_notify(*loaded.cfg, ncfg);
        if (!nd.empty()) {
            loaded.diagnostics.insert(loaded.diagnostics.end(), nd.begin(), nd.end());
            loaded.cfg.reset();
        }
    }
    if (c.command == "validate") {
        print_diagnostics(loaded.diagnostics);
        if (!loaded.ok()) return k_exit_failed;
        // The variable may be set only where keyrotd runs: a warning here.
        for (auto d : policy::missing_credentials(*loaded.cfg)) {
            d.level = policy::diagnostic::severity::warning;
            d.message += " here; every other command refuses to start without it";
            std::cerr << policy::to_string(d) << "\n";
        }
        // Leader election's settings (KEYROTD_LEASE_*), where they apply here.
        try {
            (void)sched::lease_config_from_env();
        } catch (const std::exception& e) {
            std::cerr << "keyrotd: leader election: " << e.what() << "\n";
            return k_exit_failed;
        }
        std::cout << c.config << ": valid, "
                  << count_of(static_cast<long>(loaded.cfg->policies.size()), "policy", "policies")
                  << "\n";
        return k_exit_ok;
    }
    if (!loaded.ok()) {
        print_diagnostics(loaded.diagnostics);
        std::cerr << "keyrotd: invalid configuration, not starting (exit 78)\n";
        return k_exit_config;
    }
    if (const auto missing = policy::missing_credentials(*loaded.cfg); !missing.empty()) {
        print_diagnostics(missing);
        std::cerr << "keyrotd: missing credentials, not starting (exit 78)\n";
        return k_exit_config;
    }
    const policy::config& cfg = *loaded.cfg;
    try {
        obs::setup_logging(cfg.log_level, cfg.log_format);
    } catch (const std::exception& e) {
        std::cerr << "keyrotd: " << e.what() << "; not starting (exit 78)\n";
        return k_exit_config;
    }
    // Warnings go through the logger, so `log: {format: json}` output stays JSON.
    for (const auto& d : loaded.diagnostics)
        obs::log_event(spdlog::level::warn, policy::to_string(d),
                       {{"file", d.file}, {"field", d.field}});
    try {
        if (c.command == "plan") return cmd_plan(cfg, c, false);
        if (c.command == "inventory") return cmd_plan(cfg, c, true);
        if (int rc = lock_state_dir(cfg.state_dir)) return rc;
        if (c.command == "once" || c.command == "rotate") return cmd_once(cfg, ncfg, c);
        net::io_context io;
        daemon_loop d(io, std::make_shared<const policy::config>(cfg), ncfg, c.config, c.dry_run);
        return d.run();
    } catch (const std::exception& e) {
        obs::log_event(spdlog::level::critical, "keyrotd cannot run", {{"error", e.what()}});
        return k_exit_failed;
    }
}

}  // namespace keyrot::daemon
