// The executor's observer in the daemon: audit log first, then a log line, then
// metrics (docs/rotation.md: an action is reported done only once its audit record is
// fsynced). Any part may be absent (nullptr), e.g. no audit log for `plan`.
#pragma once

#include <spdlog/common.h>

#include <map>
#include <string>
#include <string_view>

#include "exec/observer.hpp"
#include "obs/audit.hpp"
#include "obs/metrics.hpp"
#include "obs/notifier.hpp"

namespace keyrot::obs {

class recorder final : public exec::observer {
  public:
    // Both pointers may be null; the objects must outlive the recorder.
    recorder(audit_log* audit, metrics* m) : audit_(audit), metrics_(m) {}

    // Audit (false when not durable), log (info for created/completed/revoked/
    // deleted, warn for skipped, error for failed), metrics. Never throws.
    bool on_action(const exec::action_record& r) override;
    // Logs the pass (info, or error with the reason when it failed), warns
    // about each policy that governs no app, and updates metrics. Dry-run
    // records are not counted in the line's actions_done (dry_run_actions).
    void on_pass(const exec::pass_summary& s) override;
    bool wants_keys() const override {
        return notifier_ != nullptr || (metrics_ && metrics_->per_key());
    }
    // debug: one line per app, what the pass decided and why.
    void on_app(const exec::app_decision& d) override;
    bool wants_decisions() const override;
    // A successful delivery is logged at info (a failure is a `failed` action
    // already); both are counted.
    void on_delivery(const exec::delivery_record& d) override;
    // Off for a pass over one app (`rotate --app`): then every policy but one
    // governs nothing, and that says nothing about the policies.
    void warn_idle_policies(bool on) { warn_idle_policies_ = on; }
    // Notifications after the audit record (docs/notifications.md); null: none.
    // The notifier must outlive the recorder's use. With an audit log, replays
    // its tail into the notifier first (notifier::replay_audit): a crash
    // between an audit record and the outbox write loses no event.
    void set_notifier(notifier* n);

  private:
    audit_log* audit_;
    metrics* metrics_;
    std::map<std::string, int> dry_run_;  // dry-run records per organization, this pass
    bool warn_idle_policies_ = true;
    notifier* notifier_ = nullptr;
};

using observer_chain = recorder;

// The log level recorder::on_action uses for an audit action.
spdlog::level::level_enum action_log_level(exec::audit_action action);

}  // namespace keyrot::obs
