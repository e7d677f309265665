// The pure half of email notifications (docs/notifications.md, "Email"): the
// facts of an event as template values, the templates, and the RFC 5322
// message. No I/O, no clock, no network: email_sink does those.
//
// Contract:
// - email_facts() reads an event body as stored in the outbox (event.hpp's
//   Standard Webhooks payload) and returns every field as a template value,
//   plus `type`, `timestamp`, `owner` (developer or team), `summary` (one line
//   per event type), `portalUrl` and one flag per type (`isRotated`,
//   `isExpiring`, `isRevoked`, `isDeleted`, `isFailed`, `isStranded`: "yes" or
//   ""). Events carry fingerprints only (event.hpp), so no value is a consumer
//   key or secret.
// - Templates: `{{name}}` is replaced by the value ("" when absent);
//   `{{#name}}…{{/name}}` keeps its content only when the value is not empty,
//   `{{^name}}…{{/name}}` only when it is; sections do not nest.
//   template_error() refuses unknown names and unbalanced sections (start-up).
// - compose_message() never lets a value add a header: CR and LF in the
//   subject become spaces; the body's lines end in CRLF. Non-ASCII subjects are
//   RFC 2047 encoded, non-ASCII bodies sent base64 (UTF-8).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/result.hpp"

namespace keyrot::notify {

using email_values = std::map<std::string, std::string>;

struct email_template {
    std::string subject;
    std::string body;
};

// The built-in subject and body.
const email_template& default_email_template();

// Every name a template may use.
const std::vector<std::string>& email_template_names();

// Why `text` is not a valid template, or nullopt.
std::optional<std::string> template_error(std::string_view text);

// Error (kind protocol) when `body` is not an event payload.
result<email_values> email_facts(std::string_view body, const std::string& portal_url);

std::string render_template(std::string_view text, const email_values& values);

struct email_message {
    std::string from;                                                // header value as configured
    std::vector<std::string> to;                                     // To: header addresses
    std::string subject;                                             // rendered, one line
    std::string body;                                                // rendered
    std::string message_id;                                          // without <>
    std::vector<std::pair<std::string, std::string>> extra_headers;  // X-Keyrotd-…
};

// The whole message, CRLF line ends, ready for SMTP DATA; `date` its Date:.
std::string compose_message(const email_message& m, sys_ms date);

// RFC 5322 date: "Wed, 25 Nov 2026 12:00:00 +0000".
std::string rfc5322_date(sys_ms ts);

}  // namespace keyrot::notify
