// The systemd notify protocol, spoken directly over $NOTIFY_SOCKET (a unix
// datagram socket; '@' means the abstract namespace). No libsystemd needed.
// Without $NOTIFY_SOCKET every call is a no-op.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace keyrot::daemon {

// Sends one state string, e.g. "READY=1\nSTATUS=idle". Returns false on failure
// or when not run by systemd.
bool sd_notify(const std::string& state);

// Half of $WATCHDOG_USEC, or nothing when no watchdog is asked for (or
// WATCHDOG_PID names another process).
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace keyrot::daemon
