#include "deliver/crc32c.hpp"

#include <array>

namespace keyrot::deliver {

namespace {

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
    return t;
}

constexpr auto k_table = make_table();

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t previous) {
    std::uint32_t c = ~previous;
    for (const char ch : data) c = k_table[(c ^ static_cast<unsigned char>(ch)) & 0xFFu] ^ (c >> 8);
    return ~c;
}

}  // namespace keyrot::deliver
