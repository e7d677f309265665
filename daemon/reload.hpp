// `run`'s reload on SIGHUP (docs/cli.md, docs/configuration.md): reading the
// config file again, and which of its changes take effect only after a
// restart. The daemon loop (run_cmd.cpp) applies the result: the new
// policies, organisations and lead times.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "notify/config.hpp"
#include "policy/config.hpp"

namespace keyrot::daemon {

struct reloaded {
    std::shared_ptr<const policy::config> cfg;
    notify::config notify;
};

// The config at `path` with its notify section, every warning logged; nothing
// when it is not valid (every diagnostic logged as an error: the old config
// stays in force). Throws when the log level or format is not one keyrotd
// knows, before anything changes.
std::optional<reloaded> load_for_reload(const std::string& path);

// The settings that differ between `running` and `next` and that a reload
// cannot change while running (only warned about): apigee, listen, stateDir,
// metrics.perKey, notify (less expiringAt) and policies' deliver sections.
std::vector<std::string> restart_only_changes(const policy::config& running,
                                              const policy::config& next);

}  // namespace keyrot::daemon
