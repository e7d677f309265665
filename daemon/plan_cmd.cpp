// `plan` and `inventory` (docs/cli.md): what a pass would do, every matched
// key, the forecast (`--within`) and where keys are among delivery targets.
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

// One forecast action of `plan --ahead`: when, its Apigee calls, its JSON line
// and its table row. Made by aggregate initialization only: the implicit default constructor
// would be noexcept (nlohmann::json's is), and clang-tidy 14 follows json's
// into a constructor that may throw (bugprone-exception-escape), although
// not for the null it makes.
struct forecast_row {
    sys_ms at{};
    int calls = 0;  // Apigee requests of its action (plan::forecast_item::apigee_calls)
    nlohmann::json json;
    std::vector<std::string> text;
};

std::vector<forecast_row> forecast_org(const std::string& org, std::vector<app> listed,
                                       const std::vector<exec::planned_app>& planned,
                                       const std::vector<policy::policy>& policies, sys_ms now,
                                       sys_ms until, bool edge, long& apps_listed,
                                       long& developers_listed) {
    std::map<std::string, owner_status> status;  // ascii_lower(owner) \n app -> the owner's status
    for (const auto& pa : planned)
        status[ascii_lower(owner_id(pa.snapshot)) + "\n" + pa.snapshot.name] =
            pa.snapshot.developer_status;
    std::map<std::string, app> apps;  // owner \n app -> the app with every key
    std::vector<std::string> order;
    for (auto& a : listed) {
        const std::string id =
            (a.app_group.empty() ? ascii_lower(a.developer_email) : "team:" + a.app_group) + "\n" +
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
            developers.insert(ascii_lower(a.developer_email));
    developers_listed = static_cast<long>(developers.size());
    for (const auto& id : order) {
        app& a = apps.at(id);
        const policy::policy* p = plan::match_policy(a, policies);
        if (p != nullptr && a.developer_status == owner_status::not_known) {
            auto known = status.find(ascii_lower(owner_id(a)) + "\n" + a.name);
            if (known != status.end()) a.developer_status = known->second;
        }
        const std::string owner = a.app_group.empty() ? a.developer_email : "team:" + a.app_group;
        for (const auto& it : plan::forecast_app(a, p, now, until, edge)) {
            const std::string kind = plan::to_string(it.kind);
            forecast_row r{.at = it.at, .calls = it.apigee_calls};
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
                       long developers, bool revoked, const policy::config& cfg,
                       milliseconds window) {
    long actions = 0;
    std::map<std::chrono::sys_days, long> by_day;
    std::map<std::chrono::sys_time<std::chrono::minutes>, long> by_minute;
    std::set<std::string> wakes;  // (app, moment): `run` re-reads the app then (one GET)
    for (const auto& r : rows) {
        if (r.calls == 0) continue;
        const bool wake =
            wakes
                .insert(r.json.value("developer", "") + "\n" + r.json.value("team", "") + "\n" +
                        r.json.value("app", "") + "\n" + std::to_string(as_millis(r.at)))
                .second;
        const long n = r.calls + (wake ? 1 : 0);
        actions += n;
        by_day[std::chrono::floor<std::chrono::days>(r.at)] += n;
        by_minute[std::chrono::floor<std::chrono::minutes>(r.at)] += n;
    }
    auto busiest = [](const auto& m) {
        return *std::max_element(m.begin(), m.end(),
                                 [](const auto& x, const auto& y) { return x.second < y.second; });
    };
    const long per_pass = plan::pass_calls(apps, developers, 1000, revoked);
    const bool passes = cfg.interval > milliseconds(0);
    const long passes_a_day = passes ? static_cast<long>(k_day / cfg.interval) : 0;
    const long list_reads = passes ? static_cast<long>(window / cfg.interval) * per_pass : 0;
    std::string out = "Apigee requests for " + org + " within " + format_duration(window) + ": " +
                      std::to_string(actions) + " for these actions";
    if (actions > 0) {
        const auto day = busiest(by_day);
        const auto minute = busiest(by_minute);
        out += " (busiest day " + format_time(day.first).substr(0, 10) + ": " +
               std::to_string(day.second) + "; busiest minute " +
               format_time(minute.first).substr(0, 16) + "Z: " + std::to_string(minute.second) +
               ")";
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

}  // namespace

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
        opt.list_revoked = inventory_mode;  // every key, revoked ones too
        // Every key's state (inventory), and every app's future (a forecast),
        // also of apps with no work now: their owners' statuses are needed.
        opt.learn_all_developers = inventory_mode || c.within.has_value();
        auto planned = run_sync(io, link->exec->plan(link->policies, opt));
        if (!planned) {
            fail("organization " + org + ": " + planned.err().describe() +
                 org_hint(cfg, org, planned.err().is_status(404) || planned.err().is_status(403)));
            continue;
        }
        for (const auto& [reason, n] : link->exec->skipped_apps()) skipped[reason] += n;
        if (c.within && !inventory_mode) {
            exec::run_options lopt;
            lopt.list_revoked =
                std::any_of(link->policies.begin(), link->policies.end(),
                            [](const policy::policy& p) { return p.rotation.deletes_revoked(); });
            auto listed = run_sync(io, link->exec->read_inventory(lopt));
            if (!listed) {
                fail("organization " + org + ": " + listed.err().describe());
                continue;
            }
            const sys_ms now = system_now();
            long listed_apps = 0, listed_developers = 0;
            std::vector<forecast_row> org_rows = forecast_org(
                org, std::move(listed.value().apps), planned.value(), link->policies, now,
                now + *c.within, cfg.apigee.edge(), listed_apps, listed_developers);
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
                    const delivery_view dv =
                        view_delivery(st, k.fingerprint, plan::key_works(k.state));
                    out.push_back({{"organization", org},
                                   {"developer", a.developer_email},
                                   {"team", a.app_group},
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
                        {org, a.app_group.empty() ? a.developer_email : "team:" + a.app_group,
                         a.name, pa.policy->name, k.fingerprint, plan::to_string(k.state),
                         format_time(k.expires_at),
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
                     {"team", a.app_group},
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
                rows.push_back(
                    {org, a.app_group.empty() ? a.developer_email : "team:" + a.app_group, a.name,
                     pa.policy->name, plan::to_string(act.kind), act.key, reason});
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
            const std::string at = format_time(system_now());
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
                trows.reserve(ahead.size());
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
}  // namespace keyrot::daemon
