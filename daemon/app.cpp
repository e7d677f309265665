#include "app.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "apigee/api.hpp"
#include "apigee/connect.hpp"
#include "common/asio.hpp"
#include "common/duration.hpp"
#include "exec/executor.hpp"
#include "http/client.hpp"
#include "notify.hpp"
#include "obs/audit.hpp"
#include "obs/http_server.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "obs/recorder.hpp"
#include "policy/config.hpp"

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
    "  inventory  every matched key: app, fingerprint, state, expiry, lineage\n"
    "  rotate     rotate one app now: --app ORG/DEVELOPER/APP [--revoke-now]\n"
    "\n"
    "options:\n"
    "  -c, --config FILE  config file (default $KEYROTD_CONFIG, then /etc/keyrotd/keyrotd.yaml)\n"
    "  --json             plan / inventory: machine-readable output\n"
    "  --dry-run          run / once / rotate: every write is a logged no-op\n"
    "  --version          print the version\n";

struct cli {
    std::string command;
    std::string config;
    bool json = false;
    bool dry_run = false;
    bool revoke_now = false;
    std::string app;  // ORG/DEVELOPER/APP
};

// The executor's observer: obs::recorder (audit log first, then log line and
// metrics), plus a count of failures for exit codes and readiness.
class counting_observer : public exec::observer {
  public:
    counting_observer(obs::audit_log* audit, obs::metrics* m) : inner_(audit, m) {}
    bool on_action(const exec::action_record& r) override {
        if (r.action == "failed") ++failed_;
        return inner_.on_action(r);
    }
    void on_pass(const exec::pass_summary& s) override {
        if (s.ok) last_ok_[s.organization] = wall_now();
        inner_.on_pass(s);
    }
    bool wants_keys() const override { return inner_.wants_keys(); }
    int failed() const { return failed_; }
    // When each organisation's last successful pass ended (absent: never).
    const std::map<std::string, millis>& last_ok() const { return last_ok_; }

  private:
    obs::recorder inner_;
    int failed_ = 0;
    std::map<std::string, millis> last_ok_;
};

// Everything needed to talk to one organisation.
struct org_link {
    std::string organization;
    std::vector<policy::policy> policies;
    std::unique_ptr<apigee::connection> conn;
    std::unique_ptr<exec::executor> exec;
};

result<std::unique_ptr<org_link>> connect(net::any_io_executor ex, const policy::config& cfg,
                                          const std::string& org, exec::observer& obs,
                                          http::observer_fn on_request = {}) {
    auto link = std::make_unique<org_link>();
    link->organization = org;
    for (const auto& p : cfg.policies)
        if (p.organization == org) link->policies.push_back(p);
    auto conn = apigee::connect(ex, cfg.apigee, org, std::move(on_request));
    if (!conn) return conn.err();
    link->conn = std::move(conn.value());
    link->exec =
        std::make_unique<exec::executor>(*link->conn->org_api, obs, cfg.state_dir, wall_now);
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
template <typename T>
T run_sync(net::io_context& io, net::awaitable<T> aw) {
    std::optional<T> out;
    std::exception_ptr err;
    net::co_spawn(io, store(std::move(aw), out), [&err](std::exception_ptr e) { err = e; });
    io.run();
    io.restart();
    if (err) std::rethrow_exception(err);
    return std::move(*out);
}

bool is_write(const plan::action& a) { return a.kind != plan::action_kind::report; }

std::string pad(std::string s, std::size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
}

int cmd_plan(const policy::config& cfg, const cli& c, bool inventory_mode) {
    net::io_context io;
    counting_observer rec(nullptr, nullptr);
    nlohmann::json out = nlohmann::json::array();
    int pending = 0;
    bool error = false;
    std::vector<std::vector<std::string>> rows;
    for (const auto& org : organizations(cfg)) {
        auto link = connect(io.get_executor(), cfg, org, rec);
        if (!link) {
            std::cerr << "keyrotd: organization " << org << ": " << link.err().describe() << "\n";
            error = true;
            continue;
        }
        exec::run_options opt;
        opt.concurrency = cfg.apigee.max_concurrency;
        auto planned = run_sync(io, (*link)->exec->plan((*link)->policies, opt));
        if (!planned) {
            std::cerr << "keyrotd: organization " << org << ": " << planned.err().describe()
                      << "\n";
            error = true;
            continue;
        }
        for (const auto& pa : planned.value()) {
            const auto& a = pa.snapshot;
            if (inventory_mode) {
                for (const auto& k : pa.plan.keys) {
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
                                   {"appSkipped", pa.plan.skip_reason}});
                    rows.push_back(
                        {org, a.developer_email, a.name, pa.policy->name, k.fingerprint,
                         plan::to_string(k.state), format_time(k.expires_at),
                         k.replaces.empty() ? "-" : k.replaces + (k.pending ? " (pending)" : "")});
                }
                continue;
            }
            for (const auto& act : pa.plan.actions) {
                if (is_write(act)) ++pending;
                out.push_back({{"organization", org},
                               {"developer", a.developer_email},
                               {"app", a.name},
                               {"policy", pa.policy->name},
                               {"action", plan::to_string(act.kind)},
                               {"key", act.key},
                               {"replaces", act.replaces},
                               {"expiresAt", act.kind == plan::action_kind::create_successor
                                                 ? format_time(act.expires_at)
                                                 : ""},
                               {"late", act.late},
                               {"failed", act.failed},
                               {"reason", act.reason}});
                rows.push_back({org, a.developer_email, a.name, pa.policy->name,
                                plan::to_string(act.kind), act.key, act.reason});
            }
        }
    }
    if (c.json) {
        std::cout << out.dump(2) << "\n";
    } else {
        std::vector<std::string> head =
            inventory_mode
                ? std::vector<std::string>{"ORGANIZATION", "DEVELOPER", "APP",     "POLICY",
                                           "KEY",          "STATE",     "EXPIRES", "REPLACES"}
                : std::vector<std::string>{"ORGANIZATION", "DEVELOPER", "APP",   "POLICY",
                                           "ACTION",       "KEY",       "REASON"};
        std::vector<std::size_t> width(head.size());
        for (std::size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
        for (const auto& r : rows)
            for (std::size_t i = 0; i + 1 < r.size(); ++i)
                width[i] = std::max(width[i], r[i].size());
        auto line = [&](const std::vector<std::string>& r) {
            std::string s;
            for (std::size_t i = 0; i < r.size(); ++i)
                s += i + 1 < r.size() ? pad(r[i], width[i] + 2) : r[i];
            std::cout << s << "\n";
        };
        if (rows.empty()) {
            std::cout << (inventory_mode ? "no matched keys\n" : "nothing to do\n");
        } else {
            line(head);
            for (const auto& r : rows) line(r);
        }
    }
    if (error) return k_exit_failed;
    if (inventory_mode) return k_exit_ok;
    return pending > 0 ? k_exit_pending : k_exit_ok;
}

int cmd_once(const policy::config& cfg, const cli& c) {
    net::io_context io;
    obs::audit_log audit(cfg.state_dir);
    counting_observer rec(&audit, nullptr);
    bool ok = true;
    std::string only_org, only_app;
    if (c.command == "rotate") {
        const auto slash = c.app.find('/');
        only_org = c.app.substr(0, slash);
        only_app = c.app.substr(slash + 1);
    }
    bool found = c.command != "rotate";
    for (const auto& org : organizations(cfg)) {
        if (!only_org.empty() && org != only_org) continue;
        auto link = connect(io.get_executor(), cfg, org, rec);
        if (!link) {
            spdlog::error("organization={} error=\"{}\"", org, link.err().describe());
            ok = false;
            continue;
        }
        exec::run_options opt;
        opt.dry_run = c.dry_run;
        opt.concurrency = cfg.apigee.max_concurrency;
        opt.only_app = only_app;
        if (c.command == "rotate") {
            opt.plan.force_rotate = true;
            opt.plan.revoke_now = c.revoke_now;
        }
        auto sum = run_sync(io, (*link)->exec->run_pass((*link)->policies, opt));
        if (!sum.ok) ok = false;
        if (c.command == "rotate" && sum.apps_matched > 0) found = true;
    }
    if (!found) {
        spdlog::error("app {} not found, or no policy matches it", c.app);
        return k_exit_failed;
    }
    return ok && rec.failed() == 0 ? k_exit_ok : k_exit_failed;
}

// ---- the daemon --------------------------------------------------------------

class daemon_loop {
  public:
    daemon_loop(net::io_context& io, std::shared_ptr<const policy::config> cfg, std::string path,
                bool dry_run)
        : io_(io),
          cfg_(std::move(cfg)),
          path_(std::move(path)),
          dry_run_(dry_run),
          audit_(cfg_->state_dir),
          registry_(std::make_shared<prometheus::Registry>()),
          metrics_(registry_, obs::metrics_options{KEYROTD_VERSION, cfg_->metrics_per_key, true}),
          rec_(&audit_, &metrics_),
          signals_(io, SIGINT, SIGTERM, SIGHUP),
          watchdog_(io),
          server_(
              io, registry_, [this] { return ready(); }, obs::http_server_options{cfg_->listen}) {}

    int run() {
        metrics_.set_interval(static_cast<double>(cfg_->interval) / 1000.0);
        for (const auto& org : organizations(*cfg_)) {
            auto link = connect(io_.get_executor(), *cfg_, org, rec_, metrics_.request_observer());
            if (!link) {
                spdlog::critical("organization={} error=\"{}\"", org, link.err().describe());
                return k_exit_config;
            }
            auto st = std::make_unique<org_state>(io_);
            st->link = std::move(link.value());
            orgs_.push_back(std::move(st));
        }
        server_.start();  // throws when `listen` cannot be bound: a start-up error
        spdlog::info("serving /metrics /healthz /readyz on {} (port {})", cfg_->listen,
                     server_.port());
        wait_signal();
        for (auto& o : orgs_) {
            net::co_spawn(io_, org_loop(*o), [org = o->link->organization](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    spdlog::critical("organization={} loop died: {}", org, ex.what());
                }
            });
        }
        if (const auto usec = watchdog_interval_usec()) arm_watchdog(usec);
        sd_notify("READY=1\nSTATUS=started, " + std::to_string(orgs_.size()) + " organization(s)");
        spdlog::info("keyrotd {} running: {} organization(s), {} policies, interval {}",
                     KEYROTD_VERSION, orgs_.size(), cfg_->policies.size(),
                     format_duration(cfg_->interval));
        io_.run();
        sd_notify("STOPPING=1");
        spdlog::info("stopped");
        return k_exit_ok;
    }

  private:
    struct org_state {
        explicit org_state(net::io_context& io) : timer(io) {}
        std::unique_ptr<org_link> link;
        net::steady_timer timer;
        bool running = false;
    };

    net::awaitable<void> org_loop(org_state& o) {
        std::mt19937_64 rng(std::random_device{}());
        millis backoff = 5 * k_second;
        while (!stopping_) {
            auto cfg = cfg_;  // a reload swaps cfg_; this pass keeps its own
            std::vector<policy::policy> policies;
            for (const auto& p : cfg->policies)
                if (p.organization == o.link->organization) policies.push_back(p);
            exec::run_options opt;
            opt.dry_run = dry_run_;
            opt.concurrency = cfg->apigee.max_concurrency;
            o.running = true;
            auto sum = co_await o.link->exec->run_pass(policies, opt);
            o.running = false;
            if (stopping_) break;
            // Next: the full-pass interval (±10% jitter), or sooner when an action falls due.
            const millis jitter =
                std::uniform_int_distribution<millis>(-cfg->interval / 10, cfg->interval / 10)(rng);
            millis wait = cfg->interval + jitter;
            if (sum.next_wake != k_never) wait = std::min(wait, sum.next_wake - wall_now() + 1000);
            if (!sum.error.empty()) {
                wait = std::min(wait, backoff);
                backoff = std::min(backoff * 2, cfg->interval);
            } else {
                backoff = 5 * k_second;
            }
            wait = std::max<millis>(wait, 1000);
            sd_notify("STATUS=organization " + o.link->organization + ": " +
                      (sum.error.empty() ? "last pass ok" : "last pass failed") + ", next in " +
                      format_duration(wait));
            o.timer.expires_after(std::chrono::milliseconds(wait));
            boost::system::error_code ec;
            co_await o.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
    }

    void wait_signal() {
        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                reload();
                wait_signal();
                return;
            }
            spdlog::info("signal {}: finishing in-flight work, then stopping", sig);
            sd_notify("STOPPING=1");
            stopping_ = true;
            for (auto& o : orgs_) o->timer.cancel();
            watchdog_.cancel();
            signals_.cancel();
            server_.stop();
        });
    }

    void reload() {
        sd_notify("RELOADING=1");
        auto loaded = policy::load_config(path_);
        audit_.reopen();  // a rotated audit file is picked up
        metrics_.on_config_reload(loaded.ok());
        if (!loaded.ok()) {
            spdlog::error("reload failed; the old config stays in force");
            for (const auto& d : loaded.diagnostics) spdlog::error("{}", policy::to_string(d));
        } else {
            for (const auto& d : loaded.diagnostics) spdlog::warn("{}", policy::to_string(d));
            if (organizations(*loaded.cfg) != organizations(*cfg_) ||
                loaded.cfg->apigee.url != cfg_->apigee.url)
                spdlog::warn(
                    "reload: organizations or apigee settings changed; they take effect "
                    "after a restart, policies now");
            cfg_ = std::make_shared<const policy::config>(std::move(*loaded.cfg));
            metrics_.set_interval(static_cast<double>(cfg_->interval) / 1000.0);
            spdlog::info("config reloaded: {} policies", cfg_->policies.size());
            for (auto& o : orgs_)
                if (!o->running) o->timer.cancel();  // a pass with the new policies, now
        }
        sd_notify("READY=1");
    }

    // Ready: config loaded (it is, or we would not run) and every organisation's
    // last pass succeeded within twice the interval.
    std::pair<bool, std::string> ready() const {
        const millis now = wall_now();
        for (const auto& o : orgs_) {
            const auto& org = o->link->organization;
            auto it = rec_.last_ok().find(org);
            if (it == rec_.last_ok().end())
                return {false, "organization " + org + ": no successful pass yet"};
            if (now - it->second > 2 * cfg_->interval)
                return {false, "organization " + org + ": last successful pass " +
                                   format_time(it->second) + ", over 2x interval ago"};
        }
        return {true, "ok"};
    }

    void arm_watchdog(std::uint64_t usec) {
        watchdog_.expires_after(std::chrono::microseconds(usec));
        watchdog_.async_wait([this, usec](boost::system::error_code ec) {
            if (ec || stopping_) return;
            sd_notify("WATCHDOG=1");
            arm_watchdog(usec);
        });
    }

    net::io_context& io_;
    std::shared_ptr<const policy::config> cfg_;
    std::string path_;
    bool dry_run_;
    obs::audit_log audit_;
    std::shared_ptr<prometheus::Registry> registry_;
    obs::metrics metrics_;
    counting_observer rec_;
    net::signal_set signals_;
    net::steady_timer watchdog_;
    obs::http_server server_;
    std::vector<std::unique_ptr<org_state>> orgs_;
    bool stopping_ = false;
};

int parse(int argc, char** argv, cli& c) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= argc) {
                std::cerr << "keyrotd: " << a << " needs a value\n";
                return false;
            }
            into = argv[++i];
            return true;
        };
        if (a == "--version") {
            c.command = "version";
        } else if (a == "-h" || a == "--help" || a == "help") {
            c.command = "help";
        } else if (a == "-c" || a == "--config") {
            if (!value(c.config)) return k_exit_usage;
        } else if (a == "--json") {
            c.json = true;
        } else if (a == "--dry-run") {
            c.dry_run = true;
        } else if (a == "--revoke-now") {
            c.revoke_now = true;
        } else if (a == "--app") {
            if (!value(c.app)) return k_exit_usage;
        } else if (c.command.empty() && !a.empty() && a[0] != '-') {
            c.command = a;
        } else {
            std::cerr << "keyrotd: unknown argument '" << a << "'\n" << usage_text;
            return k_exit_usage;
        }
    }
    return 0;
}

}  // namespace

int main_cli(int argc, char** argv) {
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
    static const std::set<std::string> commands{"run",      "once",      "plan",
                                                "validate", "inventory", "rotate"};
    if (!commands.count(c.command)) {
        std::cerr << (c.command.empty() ? "keyrotd: no command\n"
                                        : "keyrotd: unknown command '" + c.command + "'\n")
                  << usage_text;
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
    print_diagnostics(loaded.diagnostics);
    if (c.command == "validate") {
        if (!loaded.ok()) return k_exit_failed;
        std::cout << c.config << ": valid, " << loaded.cfg->policies.size() << " policies\n";
        return k_exit_ok;
    }
    if (!loaded.ok()) {
        std::cerr << "keyrotd: invalid configuration, not starting (exit 78)\n";
        return k_exit_config;
    }
    const policy::config& cfg = *loaded.cfg;
    try {
        obs::setup_logging(cfg.log_level, cfg.log_format);
        if (c.command == "plan") return cmd_plan(cfg, c, false);
        if (c.command == "inventory") return cmd_plan(cfg, c, true);
        if (c.command == "once" || c.command == "rotate") return cmd_once(cfg, c);
        net::io_context io;
        daemon_loop d(io, std::make_shared<const policy::config>(cfg), c.config, c.dry_run);
        return d.run();
    } catch (const std::exception& e) {
        spdlog::critical("keyrotd: {}", e.what());
        return k_exit_failed;
    }
}

}  // namespace keyrot::daemon
