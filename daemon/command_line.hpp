// keyrotd's command line (docs/cli.md), parsed with CLI11: `keyrotd COMMAND
// [options]`, -c/--config before or after the command, the other options after
// it. The options each command takes are support.hpp's command_options().
#pragma once

#include "support.hpp"

namespace keyrot::daemon {

// Fills `c`; 0, or k_exit_usage after printing the reason and the usage to
// stderr. `c.command` is "help" for -h/--help/help and "version" for
// --version; otherwise the command named (known: parse refuses any other).
int parse_command_line(int argc, char** argv, cli& c);

}  // namespace keyrot::daemon
