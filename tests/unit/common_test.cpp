#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/codec.hpp"
#include "common/duration.hpp"
#include "common/fingerprint.hpp"
#include "common/host_port.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "common/time.hpp"

namespace common_test {

using namespace keyrot;
using namespace std::chrono_literals;

TEST(PercentDecode, DecodesEscapesAndFormsPlus) {
    EXPECT_EQ(percent_decode("dev%40example.com", false), "dev@example.com");
    EXPECT_EQ(percent_decode("a%2fb%2Fc", false), "a/b/c");
    EXPECT_EQ(percent_decode("a+b", false), "a+b");
    EXPECT_EQ(percent_decode("a+b%2B", true), "a b+");
    EXPECT_EQ(percent_decode("", true), "");
    EXPECT_EQ(percent_decode("%00", false), std::string(1, '\0'));
    EXPECT_FALSE(percent_decode("bad%4", false));
    EXPECT_FALSE(percent_decode("bad%", false));
    EXPECT_FALSE(percent_decode("bad%zz", false));
    EXPECT_FALSE(percent_decode("%g0", true));
}

TEST(Duration, ParsesShortForms) {
    EXPECT_EQ(parse_duration("30s"), 30 * k_second);
    EXPECT_EQ(parse_duration("15m"), 15 * k_minute);
    EXPECT_EQ(parse_duration("12h"), 12 * k_hour);
    EXPECT_EQ(parse_duration("90d"), 90 * k_day);
    EXPECT_EQ(parse_duration("2w"), 14 * k_day);
    EXPECT_EQ(parse_duration("1d12h"), k_day + 12 * k_hour);
    EXPECT_EQ(parse_duration("0"), 0ms);
    EXPECT_EQ(parse_duration("250ms"), 250ms);
}

TEST(Duration, ParsesIso8601) {
    EXPECT_EQ(parse_duration("P90D"), 90 * k_day);
    EXPECT_EQ(parse_duration("PT12H"), 12 * k_hour);
    EXPECT_EQ(parse_duration("P1DT2H30M"), k_day + 2 * k_hour + 30 * k_minute);
    EXPECT_EQ(parse_duration("P2W"), 14 * k_day);
}

TEST(Duration, RejectsGarbage) {
    for (const char* bad : {"", "-5d", "5", "d", "5x", "P", "PT", "P5H", "PT5D", "1.5d", "5 d",
                            "99999999999999999999d", "P1DT"}) {
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
    }
}

TEST(Duration, Formats) {
    EXPECT_EQ(format_duration(90 * k_day), "90d");
    EXPECT_EQ(format_duration(0ms), "0s");
    EXPECT_EQ(format_duration(90 * k_second), "1m30s");
    EXPECT_EQ(format_time(as_sys_ms(0)), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_time(time_or_never::never()), "never");
    EXPECT_EQ(format_time(time_or_never(as_sys_ms(0))), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_time(as_sys_ms(-1)), "1969-12-31T23:59:59Z");  // an instant, not "never"
}

// Never is later than every instant; no -1 stands for it.
TEST(TimeOrNever, NeverIsLaterThanEveryInstant) {
    const time_or_never never = time_or_never::never(), t0 = as_sys_ms(0), t1 = as_sys_ms(1),
                        before = as_sys_ms(-1);
    EXPECT_TRUE(never.is_never());
    EXPECT_FALSE(before.is_never());
    EXPECT_EQ(before.at(), as_sys_ms(-1));
    EXPECT_LT(before, t0);
    EXPECT_LT(t0, t1);
    EXPECT_LT(t1, never);
    EXPECT_GT(never, sys_ms::max());
    EXPECT_EQ(never, time_or_never());
    EXPECT_NE(never, t0);
    EXPECT_EQ(earliest(never, t1), t1);
    EXPECT_EQ(earliest(t1, never), t1);
    EXPECT_EQ(earliest(t1, t0), t0);
    EXPECT_TRUE(earliest(never, never).is_never());
    EXPECT_EQ(t1.plus(k_day).at(), as_sys_ms(1) + k_day);
    EXPECT_TRUE(never.plus(k_day).is_never());
    EXPECT_EQ(never.instant(), std::nullopt);
    EXPECT_EQ(t1.instant(), std::optional<sys_ms>(as_sys_ms(1)));
    EXPECT_THROW((void)never.at(), std::logic_error);
    // "expired": an expiry at or before now; never never is.
    const sys_ms now = as_sys_ms(10);
    EXPECT_TRUE(time_or_never(as_sys_ms(10)) <= now);
    EXPECT_FALSE(never <= now);
}

// Instants as RFC 3339 (common/time.hpp, through the date library): Kubernetes'
// MicroTime, the audit log's milliseconds and whole seconds, and back.
constexpr sys_ms k_t0_2026 = as_sys_ms(1795608000000);  // 2026-11-25T12:00:00Z

TEST(Rfc3339, FormatsMillisecondsAndSeconds) {
    EXPECT_EQ(format_time_ms(k_t0_2026 + 7ms), "2026-11-25T12:00:00.007Z");
    EXPECT_EQ(format_time_ms(as_sys_ms(-1)), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(format_time(k_t0_2026 + 999ms), "2026-11-25T12:00:00Z");
    for (sys_ms t :
         {k_t0_2026, k_t0_2026 + 1ms, as_sys_ms(0), as_sys_ms(-1), as_sys_ms(-86'400'001)})
        EXPECT_EQ(parse_time(format_time_ms(t)), t) << as_millis(t);
    EXPECT_EQ(parse_time("2026-11-25t12:00:00z"), k_t0_2026);
}

TEST(Rfc3339, FormatsWithMicroseconds) {
    EXPECT_EQ(format_time_us(k_t0_2026), "2026-11-25T12:00:00.000000Z");
    EXPECT_EQ(format_time_us(k_t0_2026 + 1234ms), "2026-11-25T12:00:01.234000Z");
    EXPECT_EQ(format_time_us(as_sys_ms(0)), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(format_time_us(as_sys_ms(951782400000)), "2000-02-29T00:00:00.000000Z");
    EXPECT_EQ(format_time_us(as_sys_ms(-1)), "1969-12-31T23:59:59.999000Z");
}

TEST(Rfc3339, ParsesRfc3339) {
    EXPECT_EQ(parse_time("2026-11-25T12:00:00.000000Z"), k_t0_2026);
    EXPECT_EQ(parse_time("2026-11-25T12:00:00Z"), k_t0_2026);
    EXPECT_EQ(parse_time("2026-11-25T12:00:01.5Z"), k_t0_2026 + 1500ms);
    EXPECT_EQ(parse_time("2026-11-25T12:00:01.123456789Z"), k_t0_2026 + 1123ms);
    EXPECT_EQ(parse_time("2026-11-25T13:30:00+01:30"), k_t0_2026);
    EXPECT_EQ(parse_time("2026-11-25T10:00:00-02:00"), k_t0_2026);
    EXPECT_EQ(parse_time("2000-02-29T00:00:00Z"), as_sys_ms(951782400000));
    for (sys_ms t :
         {k_t0_2026, k_t0_2026 + 1ms, k_t0_2026 + 999ms, as_sys_ms(0), as_sys_ms(4102444800123)})
        EXPECT_EQ(parse_time(format_time_us(t)), t) << as_millis(t);
}

TEST(Rfc3339, RejectsGarbage) {
    for (const char* s :
         {"", "2026-11-25", "2026-11-25T12:00:00", "2026-11-25 12:00:00Z", "2026-13-01T00:00:00Z",
          "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-25T24:00:00Z",
          "2026-11-25T12:00:00.Z", "2026-11-25T12:00:00.1234567890Z", "2026-11-25T12:00:00+0100",
          "2026-11-25T12:00:00Zjunk", "26-11-25T12:00:00Z", "2026-11-25T12:0a:00Z"})
        EXPECT_FALSE(parse_time(s).has_value()) << s;
}

TEST(Fingerprint, IsFirst16HexOfSha256) {
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    EXPECT_EQ(fingerprint("abc"), "ba7816bf8f01cfea");
}

TEST(Secret, NeverPrints) {
    secret s("hunter2-consumer-key");
    std::ostringstream os;
    os << s;
    EXPECT_EQ(os.str(), "***");
    EXPECT_EQ(fmt::format("{}", s), "***");
    EXPECT_EQ(s.reveal(), "hunter2-consumer-key");
    secret moved(std::move(s));
    EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped
    EXPECT_EQ(moved.reveal(), "hunter2-consumer-key");
}

TEST(Text, TrimSpaceDropsAsciiWhiteSpaceAroundOnly) {
    EXPECT_EQ(keyrot::trim_space(" \t tok en\r\n"), "tok en");
    EXPECT_EQ(keyrot::trim_space("tok"), "tok");
    EXPECT_EQ(keyrot::trim_space(" \n\t "), "");
    EXPECT_EQ(keyrot::trim_space(""), "");
}

TEST(Secret, TrimSecretTrimsInPlace) {
    std::string s = "  s3cr3t\n";
    keyrot::trim_secret(s);
    EXPECT_EQ(s, "s3cr3t");
    keyrot::trim_secret(s);  // nothing around it: unchanged
    EXPECT_EQ(s, "s3cr3t");
}

TEST(Secret, ReadSecretFileTrimsAndIsEmptyWhenUnreadable) {
    const std::string path = ::testing::TempDir() + "keyrot-token-" + std::to_string(::getpid());
    std::ofstream(path) << "\n  eyJ.token.sig \n";
    EXPECT_EQ(keyrot::read_secret_file(path), "eyJ.token.sig");
    std::remove(path.c_str());
    EXPECT_EQ(keyrot::read_secret_file(path), "");
}

TEST(HostPort, SplitsEveryForm) {
    using keyrot::split_host_port;
    auto hp = split_host_port("example.com:8443");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->host, "example.com");
    EXPECT_EQ(hp->port, "8443");
    EXPECT_FALSE(hp->bracketed);
    hp = split_host_port("example.com");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->port, "");
    hp = split_host_port("[::1]:9464");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->host, "::1");
    EXPECT_EQ(hp->port, "9464");
    EXPECT_TRUE(hp->bracketed);
    hp = split_host_port("[fe80::1]");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->host, "fe80::1");
    EXPECT_EQ(hp->port, "");
    hp = split_host_port(":9464");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->host, "");
    for (const char* bad : {"::1", "::1:9464", "[::1", "[::1]x", "[::1]:", "host:"})
        EXPECT_FALSE(split_host_port(bad)) << bad;
}

TEST(HostPort, JoinsWhatSplitReads) {
    using keyrot::join_host_port;
    EXPECT_EQ(join_host_port("example.com", "8443"), "example.com:8443");
    EXPECT_EQ(join_host_port("example.com", ""), "example.com");
    EXPECT_EQ(join_host_port("::1", "9464"), "[::1]:9464");
    EXPECT_EQ(join_host_port("fe80::1", ""), "[fe80::1]");
    for (const char* s : {"example.com:8443", "[::1]:9464", "[fe80::1]", "example.com"}) {
        const auto hp = keyrot::split_host_port(s);
        ASSERT_TRUE(hp) << s;
        EXPECT_EQ(join_host_port(hp->host, hp->port), s);
    }
}

TEST(HostPort, PortsAreDecimalAndInRange) {
    using keyrot::parse_port;
    EXPECT_EQ(parse_port("1"), 1);
    EXPECT_EQ(parse_port("65535"), 65535);
    EXPECT_EQ(parse_port("0", true), 0);
    for (const char* bad : {"0", "65536", "", "+80", "-1", " 80", "8o", "123456", "00000080"})
        EXPECT_FALSE(parse_port(bad)) << bad;
}

}  // namespace common_test
