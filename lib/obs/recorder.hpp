// The executor's observer in the daemon: audit log first, then a log line, then
// metrics (design.md: an action is reported done only once its audit record is
// fsynced). Any part may be absent (nullptr), e.g. no audit log for `plan`.
#pragma once

#include <spdlog/common.h>

#include <string_view>

#include "exec/observer.hpp"
#include "obs/audit.hpp"
#include "obs/metrics.hpp"

namespace keyrot::obs {

class recorder final : public exec::observer {
  public:
    // Both pointers may be null; the objects must outlive the recorder.
    recorder(audit_log* audit, metrics* m) : audit_(audit), metrics_(m) {}

    // Audit (false when not durable), log (info for created/completed/revoked/
    // deleted, warn for skipped, error for failed), metrics. Never throws.
    bool on_action(const exec::action_record& r) override;
    // Logs the pass (info, or warn when it failed) and updates metrics.
    void on_pass(const exec::pass_summary& s) override;
    bool wants_keys() const override { return metrics_ && metrics_->per_key(); }

  private:
    audit_log* audit_;
    metrics* metrics_;
};

using observer_chain = recorder;

// The log level recorder::on_action uses for an audit action.
spdlog::level::level_enum action_log_level(std::string_view action);

}  // namespace keyrot::obs
