// The systemd notify protocol, spoken directly over $NOTIFY_SOCKET (a unix
// datagram socket; '@' means the abstract namespace). No libsystemd needed.
// Without $NOTIFY_SOCKET every call is a no-op.
#pragma once

#include <cstdint>
#include <string>

namespace keyrot::daemon {

// Sends one state string, e.g. "READY=1\nSTATUS=idle". Returns false on failure
// or when not run by systemd.
bool sd_notify(const std::string& state);

// Half of $WATCHDOG_USEC in microseconds, or 0 when no watchdog is asked for
// (or WATCHDOG_PID names another process).
std::uint64_t watchdog_interval_usec();

}  // namespace keyrot::daemon
