#include "obs/audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

#include "common/durable.hpp"
#include "obs/log.hpp"

namespace keyrot::obs {

namespace {

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

void truncate_to(int fd, off_t size) {
    if (::ftruncate(fd, size) != 0) {
        // Best effort: the write already failed and is reported as such.
    }
}

}  // namespace

bool is_fingerprint_or_empty(std::string_view s) {
    if (s.empty()) return true;
    if (s.size() != 16) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string audit_line(const exec::action_record& r, std::string* why) {
    auto refuse = [&](std::string reason) {
        if (why) *why = std::move(reason);
        return std::string();
    };
    if (!is_fingerprint_or_empty(r.key)) return refuse("key is not a fingerprint");
    if (!is_fingerprint_or_empty(r.replaces)) return refuse("replaces is not a fingerprint");

    nlohmann::ordered_json j;
    j["ts"] = format_time_ms(r.ts);
    j["organization"] = r.organization;
    j["developer"] = r.developer;
    if (!r.team.empty()) j["team"] = r.team;  // a team (AppGroup) app
    j["app"] = r.app;
    j["policy"] = r.policy;
    j["action"] = exec::to_string(r.action);
    j["key"] = r.key;
    j["replaces"] = r.replaces;
    j["dryRun"] = r.dry_run;
    j["detail"] = r.detail;
    if (r.late) j["late"] = true;
    // replace: bad UTF-8 from the API must not make a record impossible to write.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

audit_log::audit_log(const std::filesystem::path& state_dir) : path_(state_dir / "audit.jsonl") {
    std::error_code ec;
    if (!std::filesystem::exists(state_dir, ec)) {
        std::filesystem::create_directories(state_dir, ec);
        if (ec)
            throw std::runtime_error("cannot create state directory " + state_dir.string() + ": " +
                                     ec.message());
        // Only keyrotd reads its state; create_directories honours the umask, so set it.
        if (::chmod(state_dir.c_str(), 0700) != 0)
            throw std::runtime_error("cannot chmod state directory " + state_dir.string() + ": " +
                                     errno_text(errno));
    }
    fd_ = open_file();
    if (fd_ < 0)
        throw std::runtime_error("cannot open audit log " + path_.string() + ": " +
                                 errno_text(errno));
    // Make the file's directory entry durable too, so the first record cannot vanish
    // with the file itself after a crash.
    int dfd = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

audit_log::~audit_log() {
    if (fd_ >= 0) ::close(fd_);
}

int audit_log::open_file() const {
    int fd;
    do {
        fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

bool audit_log::reopen() {
    std::lock_guard lock(mu_);
    int fd = open_file();
    if (fd < 0) {
        log_event(spdlog::level::err, "cannot reopen audit log",
                  {{"path", path_.string()}, {"error", errno_text(errno)}});
        return false;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    return true;
}

bool audit_log::write(const exec::action_record& r) {
    try {
        return write_record(r);
    } catch (...) {  // allocation failure and the like: not durable, never an exception
        return false;
    }
}

bool audit_log::write_record(const exec::action_record& r) {
    std::string why;
    std::string line;
    line = audit_line(r, &why);
    if (line.empty()) {
        // Log who, not the offending value: it might be a raw key.
        log_event(spdlog::level::err, "audit record refused",
                  {{"reason", why},
                   {"organization", r.organization},
                   {"developer", r.developer},
                   {"app", r.app},
                   {"policy", r.policy}});
        return false;
    }
    line += '\n';

    std::lock_guard lock(mu_);
    int err = 0;
    bool ok = fd_ >= 0;
    if (!ok) err = EBADF;
    struct stat st {};
    const bool sized = ok && ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
    if (ok) {
        ok = write_all(fd_, line);  // O_APPEND: each write() lands at the end
        if (!ok) err = errno;
    }
    // A torn line would break every reader of "one object a line": cut it off.
    if (!ok && sized) truncate_to(fd_, st.st_size);
    if (ok) {
        while (::fsync(fd_) != 0) {
            if (errno == EINTR) continue;
            err = errno;
            ok = false;
            break;
        }
    }
    if (!ok) {
        log_event(spdlog::level::err, "audit record not durable",
                  {{"path", path_.string()},
                   {"error", errno_text(err)},
                   {"organization", r.organization},
                   {"developer", r.developer},
                   {"app", r.app},
                   {"action", exec::to_string(r.action)},
                   {"key", r.key}});
    }
    return ok;
}

}  // namespace keyrot::obs
