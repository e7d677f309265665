// The `notify` section of keyrotd's config (docs/notifications.md), as JSON
// (the YAML loader converts and calls parse_config).
//
//   notify:
//     expiringAt: [30d, 7d, 1d]   # lead times of key.expiring; default none
//     maxAge: 3d                  # give up on an event this long after it was recorded
//     outboxMax: 10000            # undelivered events kept; more are refused, loudly
//     webhooks:
//       - name: partner-hub       # [A-Za-z0-9_.-]{1,64}, unique
//         url: https://hooks.example.com/keyrotd   # http:// only to loopback
//         caFile: /etc/ssl/extra.pem               # optional, as apigee.caFile
//         secretFiles: [/run/credentials/keyrotd/whsec-1]   # whsec_<base64>, one per file
//         ed25519KeyFile: /run/credentials/keyrotd/ed25519.pem  # or a list
//         events: [key.rotated, key.expiring]   # default all
//         policies: [partners-90d]               # default all
//         developers: ["*@partner.example.com"]  # globs, case-insensitive; default all
//         apps: ["fleet-*"]                      # globs; default all
//         timeout: 15s
//
// Contract: parse_config() checks shapes, names, durations, URLs (same rules as
// the Apigee client: https://, or http:// to a loopback host; no query, no user
// info) and globs, and reports every problem at once in one error of kind config
// ("notify.webhooks[0].url: …; notify.maxAge: …"). It reads no file: signing
// keys are read by webhook_sink::create at start-up. Unknown fields are errors.
// A webhook must have at least one signing key (secretFiles or ed25519KeyFile).
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/result.hpp"
#include "notify/event.hpp"

namespace keyrot::notify {

// Which events a sink receives; an empty list means "all".
struct sink_filter {
    std::vector<std::string> events;      // event type names
    std::vector<std::string> policies;    // exact policy names
    std::vector<std::string> developers;  // globs on the developer email, ignoring case
    std::vector<std::string> apps;        // globs on the app name
};

// True when `e` passes every list of `f`. An event without a policy passes only
// an empty `policies`; a team app (no developer) passes only an empty `developers`.
bool matches(const sink_filter& f, const event& e);

struct webhook_config {
    std::string name;
    std::string url;
    std::string ca_file;
    std::vector<std::filesystem::path> secret_files;
    std::vector<std::filesystem::path> ed25519_key_files;
    sink_filter filter;
    millis timeout = 15 * k_second;
};

struct config {
    std::vector<millis> expiring_at;  // descending, no duplicates
    millis max_age = 3 * k_day;
    std::size_t outbox_max = 10000;
    std::vector<webhook_config> webhooks;
};

// `section` is the value of `notify` (an object); null gives the defaults.
result<config> parse_config(const nlohmann::json& section);

}  // namespace keyrot::notify
