// Wiring of the keyrotd commands (docs/cli.md): config,
// HTTP client and auth per organisation, executor, observers, the daemon loop.
#pragma once

namespace keyrot::daemon {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failed = 1;
inline constexpr int k_exit_pending = 2;    // plan: actions pending
inline constexpr int k_exit_usage = 64;     // EX_USAGE
inline constexpr int k_exit_tempfail = 75;  // EX_TEMPFAIL: stateDir in use by another keyrotd
inline constexpr int k_exit_config = 78;    // EX_CONFIG
inline constexpr int k_exit_sigint = 130;   // once / rotate stopped by SIGINT (128 + 2)
inline constexpr int k_exit_sigterm = 143;  // once / rotate stopped by SIGTERM (128 + 15)

int main_cli(int argc, char** argv);

}  // namespace keyrot::daemon
