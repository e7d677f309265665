// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI (RFC 3720
// B.4) and Secret Manager's dataCrc32c. Table-driven, one byte at a time:
// payloads are a few hundred bytes.
#pragma once

#include <cstdint>
#include <string_view>

namespace keyrot::deliver {

// crc32c(b, crc32c(a)) == crc32c(a + b).
std::uint32_t crc32c(std::string_view data, std::uint32_t previous = 0);

}  // namespace keyrot::deliver
