// One-time codes for Apigee Edge's MFA (auth method edge-oauth, mfaSeedFile):
// TOTP, RFC 6238 (HOTP of RFC 4226 over the 30-second step count), HMAC-SHA1
// through OpenSSL, from the base32 seed the user enrolled with (RFC 4648;
// common/codec.hpp decodes it).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace keyrot::auth {

// The TOTP code of `key` (raw bytes) at `at`: `digits` decimal
// digits, zero-padded (6 for Edge; RFC 6238's vectors use 8), `step` seconds.
std::string totp(std::string_view key, std::chrono::sys_seconds at, int digits = 6, int step = 30);

}  // namespace keyrot::auth
