#include "http/rules.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "common/codec.hpp"
#include "common/fingerprint.hpp"
#include "common/host_port.hpp"
#include "common/text.hpp"

namespace keyrot::http {

namespace {

error config_error(std::string msg) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(msg);
    return e;
}

// An IPv4 or IPv6 literal as its bytes (4 or 16); false when it is not one.
bool ip_bytes(const std::string& text, unsigned char (&out)[16], std::size_t& len) {
    if (inet_pton(AF_INET, text.c_str(), out) == 1) {
        len = 4;
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), out) == 1) {
        len = 16;
        return true;
    }
    return false;
}

// "10.0.0.0/8", "fd00::/8" (as Go's httpproxy and curl take them): does the IP
// literal `host` lie in it? A host name, a bad prefix or mixed families: false.
bool cidr_matches(const std::string& entry, const std::string& host) {
    const auto slash = entry.find('/');
    unsigned char net[16], ip[16];
    std::size_t net_len = 0, ip_len = 0;
    if (!ip_bytes(entry.substr(0, slash), net, net_len) || !ip_bytes(host, ip, ip_len) ||
        net_len != ip_len)
        return false;
    const std::string_view bits_text = std::string_view(entry).substr(slash + 1);
    unsigned bits = 0;
    auto [ptr, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
    if (bits_text.empty() || ec != std::errc{} || ptr != bits_text.data() + bits_text.size() ||
        bits > net_len * 8)
        return false;
    for (std::size_t i = 0; i < net_len && bits > 0; ++i) {
        const unsigned take = std::min(bits, 8u);
        const auto mask = static_cast<unsigned char>(0xff00u >> take);
        if ((net[i] & mask) != (ip[i] & mask)) return false;
        bits -= take;
    }
    return true;
}

}  // namespace

std::string url::authority() const {
    const bool default_port = (tls && port == 443) || (!tls && port == 80);
    return join_host_port(host, default_port ? std::string() : std::to_string(port));
}

result<url> parse_url(std::string_view text, std::string_view plain_http_host) {
    url u;
    std::string_view rest;
    if (text.starts_with("https://")) {
        u.tls = true;
        rest = text.substr(8);
    } else if (text.starts_with("http://")) {
        u.tls = false;
        rest = text.substr(7);
    } else {
        return config_error("URL must start with https:// (or http:// for a loopback host)");
    }
    auto slash = rest.find('/');
    std::string_view auth = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    if (auth.find('@') != std::string_view::npos)
        return config_error("URL must not carry user info; use apigee.auth");
    if (path.find_first_of("?#") != std::string_view::npos)
        return config_error("URL must not carry a query or fragment");
    const auto hp = split_host_port(auth);
    if (!hp) return config_error("URL has a bad host or port (an IPv6 address goes in brackets)");
    u.host = hp->bracketed ? hp->host : ascii_lower(hp->host);
    if (u.host.empty()) return config_error("URL has no host");
    if (!hp->port.empty()) {
        const auto p = parse_port(hp->port);
        if (!p) return config_error("URL has a bad port");
        u.port = *p;
    } else {
        u.port = u.tls ? 443 : 80;
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET, u.host.c_str(), buf) == 1) {
        u.host_is_ip = true;
        u.host_is_loopback = buf[0] == 127;
    } else if (inet_pton(AF_INET6, u.host.c_str(), buf) == 1) {
        u.host_is_ip = true;
        static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        u.host_is_loopback = std::equal(buf, buf + 16, loop6);
    } else {
        for (char c : u.host)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
                return config_error("URL host has bad characters");
        u.host_is_loopback = u.host == "localhost";
    }
    while (path.ends_with("/")) path.remove_suffix(1);
    u.prefix = std::string(path);
    if (!u.tls && !u.host_is_loopback && (plain_http_host.empty() || u.host != plain_http_host))
        return config_error("plain http:// is allowed only to a loopback host, not " + u.host);
    return u;
}

bool safe_to_retry(std::string_view method, std::string_view target) {
    if (method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE") return true;
    if (method != "POST") return false;
    auto q = target.find('?');
    if (q == std::string_view::npos) return false;
    std::string_view query = target.substr(q + 1);
    // "action=" as a whole parameter name, not "xaction=".
    std::size_t pos = 0;
    while (pos <= query.size()) {
        auto amp = query.find('&', pos);
        std::string_view param = query.substr(pos, amp == std::string_view::npos ? amp : amp - pos);
        if (param.starts_with("action=")) return true;
        if (amp == std::string_view::npos) break;
        pos = amp + 1;
    }
    return false;
}

bool retryable_status(int status) {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

milliseconds backoff_delay(int attempt, milliseconds base, milliseconds cap, double u01) {
    if (attempt < 0) attempt = 0;
    double ceiling = static_cast<double>(base.count()) * std::ldexp(1.0, std::min(attempt, 40));
    ceiling = std::min(ceiling, static_cast<double>(cap.count()));
    u01 = std::clamp(u01, 0.0, 1.0);
    return milliseconds(static_cast<milliseconds::rep>(u01 * ceiling));
}

std::optional<milliseconds> parse_retry_after(std::string_view value, milliseconds cap) {
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    std::int64_t secs = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
    if (ec == std::errc::result_out_of_range) return cap;
    if (ec != std::errc{} || ptr != value.data() + value.size() || secs < 0) return std::nullopt;
    if (secs > std::chrono::duration_cast<std::chrono::seconds>(cap).count()) return cap;
    return std::min<milliseconds>(std::chrono::seconds(secs), cap);
}

token_bucket::token_bucket(double rate_per_second, int burst) : rate_(rate_per_second) {
    if (rate_ > 0) {
        interval_ = microseconds(static_cast<microseconds::rep>(std::ceil(1e6 / rate_)));
        tolerance_ = interval_ * std::max(0, burst - 1);
    }
}

token_bucket::microseconds token_bucket::acquire(microseconds now) {
    if (rate_ <= 0) return now;
    if (first_) {
        tat_ = now;
        first_ = false;
    }
    const microseconds send_at = std::max(now, tat_ - tolerance_);
    tat_ = std::max(tat_, send_at) + interval_;
    return send_at;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host_in, std::uint16_t port) {
    std::string host = ascii_lower(host_in);
    std::size_t pos = 0;
    while (pos < no_proxy.size()) {
        auto end = no_proxy.find_first_of(", ", pos);
        if (end == std::string_view::npos) end = no_proxy.size();
        std::string entry = ascii_lower(no_proxy.substr(pos, end - pos));
        pos = end + 1;
        if (entry.empty()) continue;
        if (entry == "*") return true;
        if (entry.find('/') != std::string::npos) {  // CIDR; no port, as in Go
            if (cidr_matches(entry, host)) return true;
            continue;
        }
        // Optional ":port"; a bare IPv6 literal (several colons) has none.
        if (const auto hp = split_host_port(entry)) {
            if (!hp->port.empty() && hp->port != std::to_string(port)) continue;
            entry = hp->host;
        }
        while (entry.starts_with(".") || entry.starts_with("*."))
            entry.erase(0, entry[0] == '*' ? 2 : 1);
        if (entry.empty()) continue;
        if (host == entry) return true;
        if (host.size() > entry.size() && host.ends_with(entry) &&
            host[host.size() - entry.size() - 1] == '.')
            return true;
    }
    return false;
}

std::string encode_component(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
    return out;
}

std::string decode_component(std::string_view s) {
    return percent_decode(s, false).value_or(std::string(s));
}

std::string redact_target(std::string_view target) {
    auto q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query = q == std::string_view::npos ? "" : target.substr(q);
    std::string out;
    std::size_t pos = 0;
    bool after_keys = false;
    while (pos < path.size()) {
        auto next = path.find('/', pos + 1);
        if (next == std::string_view::npos) next = path.size();
        std::string_view seg = path.substr(pos, next - pos);  // starts with '/'
        if (after_keys && seg.size() > 1) {
            out += "/<fp:" + fingerprint(decode_component(seg.substr(1))) + ">";
        } else {
            out += seg;
        }
        after_keys = seg == "/keys";
        pos = next;
    }
    // Page tokens are opaque and may encode names; they are of no use in a message.
    std::string qs(query);
    auto pt = qs.find("pageToken=");
    if (pt != std::string::npos) {
        auto end = qs.find('&', pt);
        qs.replace(pt, (end == std::string::npos ? qs.size() : end) - pt, "pageToken=...");
    }
    return out + qs;
}

}  // namespace keyrot::http
