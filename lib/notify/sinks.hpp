// Every sink the `notify` section configures, made at start-up: one
// webhook_sink per webhook, one email_sink per email, in config order.
// Errors (a key, password, template or CA file that cannot be read) are
// configuration errors: keyrotd does not start (exit 78).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/result.hpp"
#include "notify/config.hpp"
#include "notify/dispatcher.hpp"

namespace keyrot::notify {

struct sink_set {
    std::vector<std::unique_ptr<sink>> sinks;
    std::vector<std::string> names;  // the same order
};

result<sink_set> make_sinks(const net::any_io_executor& ex, const config& c);

}  // namespace keyrot::notify
