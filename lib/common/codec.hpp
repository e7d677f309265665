// Decoding the encodings keyrotd and the emulator read: percent-encoding
// (RFC 3986, and forms' '+') and base32 (RFC 4648). One copy of each.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace keyrot {

// `in` with each %XX decoded (either case of hex), and '+' read as a space
// when `plus_is_space` (application/x-www-form-urlencoded). nullopt when a
// '%' is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

// RFC 4648 base32 (A–Z, 2–7), as authenticator seeds are written: case,
// white space, dashes and '=' padding ignored. nullopt on any other
// character, or when nothing is left. The result may hold a secret (an MFA
// seed): cleanse it after use; the bits in between are wiped here.
std::optional<std::string> base32_decode(std::string_view text);

}  // namespace keyrot
