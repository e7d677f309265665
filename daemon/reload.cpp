// `run`'s reload on SIGHUP: see reload.hpp.
#include "reload.hpp"

#include <map>
#include <nlohmann/json.hpp>

#include "obs/log.hpp"
#include "support.hpp"

namespace keyrot::daemon {
namespace {

// The notify section less expiringAt (which a reload applies).
std::string notify_without_leads(const std::string& text) {
    if (text.empty()) return text;
    auto j = nlohmann::json::parse(text);
    if (j.is_object()) j.erase("expiringAt");
    return j.dump();
}

}  // namespace

std::optional<reloaded> load_for_reload(const std::string& path) {
    auto loaded = policy::load_config(path);
    if (!loaded.ok()) {
        obs::log_event(spdlog::level::err, "reload failed; the old config stays in force",
                       {{"config", path}});
        for (const auto& d : loaded.diagnostics)
            obs::log_event(d.level == policy::diagnostic::severity::error ? spdlog::level::err
                                                                          : spdlog::level::warn,
                           policy::to_string(d), {});
        return std::nullopt;
    }
    // Fails (throws) before anything changes, so the old config stays whole.
    obs::parse_log_level(loaded.cfg->log_level);
    obs::parse_log_format(loaded.cfg->log_format);
    for (const auto& d : loaded.diagnostics)
        obs::log_event(spdlog::level::warn, policy::to_string(d), {});
    reloaded out;
    if (auto nd = load_notify(*loaded.cfg, out.notify); !nd.empty()) {
        obs::log_event(spdlog::level::err, "reload failed; the old config stays in force",
                       {{"config", path}});
        for (const auto& d : nd) obs::log_event(spdlog::level::err, policy::to_string(d), {});
        return std::nullopt;
    }
    out.cfg = std::make_shared<const policy::config>(std::move(*loaded.cfg));
    return out;
}

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

}  // namespace keyrot::daemon
