#include "common/host_port.hpp"

namespace keyrot {

std::optional<host_port> split_host_port(std::string_view s) {
    host_port hp;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        hp.host = std::string(s.substr(1, close - 1));
        hp.bracketed = true;
        const std::string_view rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':' || rest.size() == 1) return std::nullopt;
            hp.port = std::string(rest.substr(1));
        }
        return hp;
    }
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
        hp.host = std::string(s);
        return hp;
    }
    if (s.find(':') != colon) return std::nullopt;  // a bare IPv6 address needs brackets
    if (colon + 1 == s.size()) return std::nullopt;
    hp.host = std::string(s.substr(0, colon));
    hp.port = std::string(s.substr(colon + 1));
    return hp;
}

std::string join_host_port(std::string_view host, std::string_view port) {
    std::string out = host.find(':') != std::string_view::npos ? "[" + std::string(host) + "]"
                                                               : std::string(host);
    if (!port.empty()) out.append(":").append(port);
    return out;
}

std::optional<std::uint16_t> parse_port(std::string_view s, bool allow_zero) {
    if (s.empty() || s.size() > 5) return std::nullopt;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535 || (v == 0 && !allow_zero)) return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

}  // namespace keyrot
