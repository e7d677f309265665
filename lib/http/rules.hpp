// Pure rules of the HTTP client: URL parsing, which requests may be repeated,
// backoff and Retry-After arithmetic, the token bucket, NO_PROXY matching and
// redaction of consumer keys in request targets. No I/O, no clock, no
// randomness: time and random numbers are parameters, so all of it is tested
// as plain values (tests/unit/http_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/duration.hpp"
#include "common/result.hpp"

namespace keyrot::http {

struct url {
    bool tls = true;   // https
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
    std::string prefix;  // path prefix without trailing '/', usually ""
    bool host_is_ip = false;
    bool host_is_loopback = false;  // 127.0.0.0/8, ::1 or "localhost"
    // "host" or "host:port" (port left out when default), IPv6 in brackets.
    std::string authority() const;
};

// "https://host[:port][/prefix]" or "http://loopback[:port][/prefix]". http:// to any
// other host is a config error; so are user info, queries and fragments. The one
// exception: http:// to exactly `plain_http_host` when it is not empty (the GCE
// metadata server, see options::plain_http_host).
result<url> parse_url(std::string_view text, std::string_view plain_http_host = {});

// GET, HEAD, PUT and DELETE, and POST whose query has `action=` (Apigee's
// approve/revoke) are safe to repeat. A POST without action creates something:
// never repeated, the caller re-reads instead.
bool safe_to_retry(std::string_view method, std::string_view target);

// 429, 500, 502, 503, 504.
bool retryable_status(int status);

// Exponential backoff with full jitter: u01 * min(cap, base * 2^attempt),
// attempt counted from 0 for the first retry; u01 in [0, 1).
milliseconds backoff_delay(int attempt, milliseconds base, milliseconds cap, double u01);

// Retry-After as delay-seconds ("120"); an HTTP-date or garbage gives nullopt.
// The result is capped at `cap`.
std::optional<milliseconds> parse_retry_after(std::string_view value, milliseconds cap);

// A token bucket as "virtual scheduling" (GCRA): each acquire() books the next
// free slot and returns when it may be sent. With burst 1, sends are at least
// 1/rate apart, so no half-open 1-second window holds more than ceil(rate)
// sends; with burst b, at most rate + b - 1. Times are microseconds since
// any fixed origin. rate <= 0 means unlimited.
class token_bucket {
  public:
    using microseconds = std::chrono::microseconds;

    token_bucket(double rate_per_second, int burst);
    // Books a slot for a request arriving at `now`; returns the time to send at (>= now).
    microseconds acquire(microseconds now);
    double rate() const { return rate_; }

  private:
    double rate_;
    microseconds interval_{0};
    microseconds tolerance_{0};
    microseconds tat_{0};  // theoretical arrival time of the next conforming send
    bool first_ = true;
};

// NO_PROXY semantics as curl: comma/space separated; "*" matches all; an entry
// matches the host itself and its subdomains ("example.com" and ".example.com"
// both match "a.example.com"); an optional ":port" must equal the port; IP
// literals match exactly; CIDR entries ("10.0.0.0/8", "fd00::/8", as Go and
// curl take them) match IP-literal hosts of the same family inside them (no
// port part; a malformed CIDR matches nothing). Case-insensitive.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::uint16_t port);

// Percent-encodes one path segment or query value (everything but A-Z a-z 0-9 - . _ ~).
std::string encode_component(std::string_view s);
// Decodes %XX (common/codec.hpp); text with a malformed escape comes back as
// it is (this names keys in log lines: it never fails).
std::string decode_component(std::string_view s);

// For messages: replaces each path segment after "/keys/" (a consumer key) by
// "<fp:FINGERPRINT>" and drops the query's pageToken value. The path keeps
// organisation, developer and app names, which are not secret.
std::string redact_target(std::string_view target);

}  // namespace keyrot::http
