#include "obs/recorder.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include "obs/log.hpp"

namespace keyrot::obs {

spdlog::level::level_enum action_log_level(std::string_view action) {
    if (action == "failed") return spdlog::level::err;
    if (action == "skipped") return spdlog::level::warn;
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
    try {
        std::string message = r.dry_run ? "dry run: " + r.action : r.action;
        if (r.late) message += " (late rotation)";
        // A value the audit log refused as "not a fingerprint" might be a raw key.
        auto fp = [](const std::string& v) {
            return is_fingerprint_or_empty(v) ? v : std::string("<not a fingerprint: redacted>");
        };
        std::vector<field> fields = {{"organization", r.organization},
                                     {"developer", r.developer},
                                     {"app", r.app},
                                     {"policy", r.policy}};
        if (!r.key.empty()) fields.emplace_back("key", fp(r.key));
        if (!r.replaces.empty()) fields.emplace_back("replaces", fp(r.replaces));
        if (!r.detail.empty()) fields.emplace_back("detail", r.detail);
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

void recorder::on_pass(const exec::pass_summary& s) {
    try {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.3f", s.seconds);
        const std::vector<field> fields = {
            {"organization", s.organization},
            {"seconds", secs},
            {"apps_seen", std::to_string(s.apps_seen)},
            {"apps_matched", std::to_string(s.apps_matched)},
            {"actions_done", std::to_string(s.actions_done)},
            {"actions_failed", std::to_string(s.actions_failed)},
            {"next_action", format_time(s.next_wake)},
        };
        if (s.ok) {
            log_event(spdlog::level::info, "pass done", fields);
        } else {
            auto with_error = fields;
            with_error.emplace_back("error", s.error);
            log_event(spdlog::level::warn, "pass failed", with_error);
        }
        if (metrics_) metrics_->on_pass(s);
    } catch (...) {
    }
}

}  // namespace keyrot::obs
