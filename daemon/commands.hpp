// The keyrotd commands (docs/cli.md), each in its own file; app.cpp parses
// the command line and calls one.
#pragma once

#include "notify/config.hpp"
#include "policy/config.hpp"
#include "support.hpp"

namespace keyrot::daemon {

// plan_cmd.cpp: `plan` (inventory_mode false) and `inventory`.
int cmd_plan(const policy::config& cfg, const cli& c, bool inventory_mode);
// once_cmd.cpp: `once` and `rotate`.
int cmd_once(const policy::config& cfg, const notify::config& ncfg, const cli& c);
// run_cmd.cpp: `run`, the daemon.
int cmd_run(const policy::config& cfg, const notify::config& ncfg, const cli& c);

}  // namespace keyrot::daemon
