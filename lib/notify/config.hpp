// The `notify` section of keyrotd's config (docs/notifications.md), as JSON
// (the YAML loader converts and calls parse_config).
//
//   notify:
//     expiringAt: [30d, 7d, 1d]   # lead times of key.expiring (also of keys no policy
//                                 # rotates: apps no policy matches, team apps); default none
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
//     emails:
//       - name: partner-mail      # same rules as a webhook's; unique among all sinks
//         url: smtp://smtp.example.com:587   # smtp:// (STARTTLS required) or smtps://
//         tls: none               # optional: plain SMTP, only to a loopback host
//         caFile: /etc/ssl/extra.pem
//         username: keyrotd@example.com      # AUTH; needs passwordFile
//         passwordFile: /run/credentials/keyrotd/smtp-password
//         from: "keyrotd <keyrotd@example.com>"
//         toDeveloper: true       # the app's developer (only when known active)
//         to: [ops@example.com]   # fixed addresses; at least one recipient kind
//         portalUrl: https://developers.example.com/my-apps
//         subjectFile: /etc/keyrotd/mail/subject.txt   # optional template files
//         bodyFile: /etc/keyrotd/mail/body.txt
//         events/policies/developers/apps: as for webhooks
//         timeout: 30s
//
// Contract: parse_config() checks shapes, names, durations, URLs (same rules as
// the Apigee client: https://, or http:// to a loopback host; no query, no user
// info) and globs, and reports every problem at once in one error of kind config
// ("notify.webhooks[0].url: …; notify.maxAge: …"). It reads no file: signing
// keys are read by webhook_sink::create at start-up. Unknown fields are errors.
// A webhook must have at least one signing key (secretFiles or ed25519KeyFile).
// An email sink's password and templates are read by email_sink::create; an
// address is checked for shape only (no CR, LF, <, >, one @).
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
    milliseconds timeout = 15 * k_second;
};

// How an email sink talks to its SMTP server.
enum class smtp_tls {
    starttls,  // smtp://: STARTTLS required (CURLUSESSL_ALL)
    implicit,  // smtps://: TLS from the first byte
    none,      // smtp:// with tls: none: plain, only to a loopback host
};

struct email_config {
    std::string name;
    std::string url;  // smtp://host[:port] or smtps://host[:port], no path
    std::string host;
    bool host_is_loopback = false;
    smtp_tls tls = smtp_tls::starttls;
    std::string ca_file;
    std::string username;
    std::filesystem::path password_file;
    std::string from;                    // an address, optionally "Name <addr>"
    bool to_developer = true;            // the app's developer, when known active
    std::vector<std::string> to;         // fixed addresses
    std::string portal_url;              // {{portalUrl}} in the templates
    std::filesystem::path subject_file;  // empty: the built-in template
    std::filesystem::path body_file;
    sink_filter filter;
    milliseconds timeout = 30 * k_second;
};

struct config {
    // descending, no duplicates; a policy's own replace them for its keys, keys no
    // policy rotates always use these
    std::vector<milliseconds> expiring_at;
    milliseconds max_age = 3 * k_day;
    std::size_t outbox_max = 10000;
    std::vector<webhook_config> webhooks;
    std::vector<email_config> emails;
    // True when some sink is configured: webhooks or emails.
    bool has_sinks() const { return !webhooks.empty() || !emails.empty(); }
};

// "a@b.example" or "Name <a@b.example>": the bare address, or "" when it is
// not one (no @, CR, LF, NUL, spaces, < or > in it).
std::string mailbox_address(const std::string& text);

// `section` is the value of `notify` (an object); null gives the defaults.
result<config> parse_config(const nlohmann::json& section);

}  // namespace keyrot::notify
