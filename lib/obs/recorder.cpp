#include "obs/recorder.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "obs/log.hpp"

namespace keyrot::obs {

spdlog::level::level_enum action_log_level(exec::audit_action action) {
    if (action == exec::audit_action::failed) return spdlog::level::err;
    if (action == exec::audit_action::skipped) return spdlog::level::warn;
    return spdlog::level::info;
}

bool recorder::on_action(const exec::action_record& r) {
    bool durable = true;
    if (audit_) {
        try {
            durable = audit_->write(r);
        } catch (...) {
            durable = false;
        }
    }
    // The notification goes to the outbox (fsynced) right after the audit
    // record, before the action is reported done; it never fails the action.
    // A crash in between: set_notifier's replay of the audit log publishes it.
    if (notifier_ && durable) notifier_->on_action(r);
    try {
        if (r.dry_run) ++dry_run_[r.organization];
        const std::string action(exec::to_string(r.action));
        std::string message = r.dry_run ? "dry run: " + action : action;
        if (r.late) message += " (late rotation)";
        // A value the audit log refused as "not a fingerprint" might be a raw key.
        auto fp = [](const std::string& v) {
            return is_fingerprint_or_empty(v) ? v : std::string("<not a fingerprint: redacted>");
        };
        // Every audit record is also a log line, `audit` naming its action: in a
        // cluster the log pipeline keeps them when the pod's stateDir is gone.
        std::vector<field> fields = {{"audit", action},
                                     {"organization", r.organization},
                                     {"developer", r.developer},
                                     {"app", r.app},
                                     {"policy", r.policy}};
        if (r.dry_run) fields.emplace_back("dryRun", "true");
        if (!r.key.empty()) fields.emplace_back("key", fp(r.key));
        if (!r.replaces.empty()) fields.emplace_back("replaces", fp(r.replaces));
        // The message already says "dry run": once is enough.
        std::string_view detail = r.detail;
        if (r.dry_run && detail.starts_with("dry run: ")) detail.remove_prefix(9);
        if (!detail.empty()) fields.emplace_back("detail", detail);
        log_event(action_log_level(r.action), message, fields);
        if (metrics_) {
            // What happened in Apigee is counted even when its record is not durable.
            metrics_->on_action(r);
            if (!durable) metrics_->on_audit_failure();
        }
    } catch (...) {
        // An observer must not turn a done action into an exception.
    }
    return durable;
}

void recorder::set_notifier(notifier* n) {
    notifier_ = n;
    if (notifier_ && audit_) notifier_->replay_audit(audit_->path());
}

bool recorder::wants_decisions() const { return spdlog::should_log(spdlog::level::debug); }

void recorder::on_app(const exec::app_decision& d) {
    try {
        std::vector<field> fields = {{"organization", d.organization},
                                     {"developer", d.developer},
                                     {"app", d.app},
                                     {"policy", d.policy},
                                     {"decision", d.decision}};
        if (!d.next_wake.is_never())
            fields.emplace_back("next_action", format_time(d.next_wake.at()));
        log_event(spdlog::level::debug, "app decided", fields);
    } catch (...) {
    }
}

void recorder::on_delivery(const exec::delivery_record& d) {
    try {
        if (d.ok) {
            std::vector<field> fields = {{"organization", d.organization},
                                         {"developer", d.developer},
                                         {"app", d.app},
                                         {"policy", d.policy},
                                         {"stage", d.stage}};
            if (!d.key.empty()) fields.emplace_back("key", d.key);
            if (!d.replaces.empty()) fields.emplace_back("replaces", d.replaces);
            log_event(spdlog::level::info,
                      std::string_view(d.stage) == "drop" ? "revoked key dropped from targets"
                                                          : "delivered and verified",
                      fields);
        }
        if (metrics_) metrics_->on_delivery(d);
    } catch (...) {
    }
}

void recorder::on_pass(const exec::pass_summary& s) {
    if (notifier_) notifier_->on_pass(s);
    try {
        int dry = 0;
        if (auto it = dry_run_.find(s.organization); it != dry_run_.end()) {
            dry = it->second;
            dry_run_.erase(it);
        }
        std::vector<field> fields = {
            {"organization", s.organization},
            {"seconds", s.took.count()},
            {"apps_seen", s.apps_seen},
            {"apps_matched", s.apps_matched},
            {"actions_done", std::max(0, s.actions_done - dry)},
            {"actions_failed", s.actions_failed},
        };
        if (dry > 0) fields.emplace_back("dry_run_actions", dry);
        std::vector<std::string> names;  // field keys are views: keep them alive
        names.reserve(s.skipped_apps.size());
        for (const auto& [reason, n] : s.skipped_apps) {
            if (n <= 0) continue;
            names.push_back("skipped_" + reason);
            fields.emplace_back(names.back(), n);
        }
        fields.emplace_back("next_action", format_time(s.next_wake));
        if (s.ok) {
            log_event(spdlog::level::info, "pass done", fields);
        } else {
            fields.emplace_back(
                "error",
                s.error.empty() ? std::to_string(s.actions_failed) + " action(s) failed" : s.error);
            log_event(spdlog::level::err, "pass failed", fields);
        }
        // A policy that governs nothing is most often a typo in a glob or an
        // organisation: say so every pass (a pass that could not read the
        // organisation knows nothing about it).
        if (s.error.empty() && warn_idle_policies_)
            for (const auto& c : s.by_policy)
                if (c.apps == 0)
                    log_event(spdlog::level::warn, "policy matches no app",
                              {{"organization", s.organization}, {"policy", c.policy}});
        if (metrics_) metrics_->on_pass(s);
    } catch (...) {
    }
}

}  // namespace keyrot::obs
