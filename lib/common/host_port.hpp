// Host and port of an authority, a listen address or a NO_PROXY entry: one
// reading for all of them (policy checks, the metrics listener, URL parsing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyrot {

struct host_port {
    std::string host;  // without the brackets of an IPv6 literal
    std::string port;  // "" when none was given
    bool bracketed = false;
};

// "host", "host:port", "[v6]", "[v6]:port". nullopt when malformed: an
// unclosed '[', text after ']' that is not ":port", an empty port after ':',
// or a bare IPv6 address (several colons without brackets). The port is not
// checked here: parse_port.
std::optional<host_port> split_host_port(std::string_view s);

// The inverse: "host:port", the host in brackets when it is an IPv6 address
// (it holds a ':'); just the host when `port` is empty.
std::string join_host_port(std::string_view host, std::string_view port);

// A decimal TCP port: 1 to 65535, or 0 too when `allow_zero` (a listener that
// picks a free one). No sign, no spaces, at most 5 digits.
std::optional<std::uint16_t> parse_port(std::string_view s, bool allow_zero = false);

}  // namespace keyrot
