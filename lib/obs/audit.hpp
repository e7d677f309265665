// The audit log: STATEDIR/audit.jsonl, one JSON object a line (docs/rotation.md,
// "Audit log"). Each record is written with a single append and fsynced before
// write() returns true, so an action is reported done only once it is durable.
//
// Fields, exactly: ts (RFC 3339 UTC with milliseconds), organization,
// developer, app, policy, action, key, replaces, dryRun, detail, and `late`
// only when true. key/replaces are fingerprints (16 lowercase hex digits) or
// empty; anything else is refused, so a raw consumer key can never land here.
//
// Opening (the constructor) throws on failure: that is start-up. write() never
// throws; it logs and returns false.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>

#include "exec/observer.hpp"

namespace keyrot::obs {

class audit_log {
  public:
    // Creates `state_dir` (mode 0700) if missing and opens state_dir/audit.jsonl
    // with O_APPEND|O_CLOEXEC, mode 0600. Throws std::runtime_error on failure.
    explicit audit_log(const std::filesystem::path& state_dir);
    ~audit_log();
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;

    // Appends one record and fsyncs. False when the record is refused or is not
    // durable (write or fsync failed); the reason is logged.
    bool write(const exec::action_record& r);

    // Closes and reopens the file (after an external log rotation). False on failure;
    // the old descriptor stays in use then.
    bool reopen();

    const std::filesystem::path& path() const { return path_; }

  private:
    int open_file() const;
    bool write_record(const exec::action_record& r);

    std::filesystem::path path_;
    std::mutex mu_;
    int fd_ = -1;
};

// The JSON line (without the newline) for a record; empty when the record is
// refused (a key/replaces that is not a fingerprint, an unknown action).
std::string audit_line(const exec::action_record& r, std::string* why = nullptr);

// True for "" or 16 lowercase hex digits.
bool is_fingerprint_or_empty(std::string_view s);

}  // namespace keyrot::obs
