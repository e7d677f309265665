// keyrotd's command line (docs/cli.md): parse it, load and check the config,
// hand over to the command (plan_cmd.cpp, once_cmd.cpp, run_cmd.cpp), map
// failures to exit codes.
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
#include "command_line.hpp"
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
    if (int rc = parse_command_line(argc, argv, c)) return rc;
    if (c.command == "version") {
        std::cout << "keyrotd " << KEYROTD_VERSION << "\n";
        return k_exit_ok;
    }
    if (c.command == "help") {
        std::cout << usage_text;
        return k_exit_ok;
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
        return cmd_run(cfg, ncfg, c);
    } catch (const std::exception& e) {
        obs::log_event(spdlog::level::critical, "keyrotd cannot run", {{"error", e.what()}});
        return k_exit_failed;
    }
}

}  // namespace keyrot::daemon
