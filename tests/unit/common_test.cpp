#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "common/duration.hpp"
#include "common/fingerprint.hpp"
#include "common/secret.hpp"

using namespace keyrot;

TEST(Duration, ParsesShortForms) {
    EXPECT_EQ(parse_duration("30s"), 30 * k_second);
    EXPECT_EQ(parse_duration("15m"), 15 * k_minute);
    EXPECT_EQ(parse_duration("12h"), 12 * k_hour);
    EXPECT_EQ(parse_duration("90d"), 90 * k_day);
    EXPECT_EQ(parse_duration("2w"), 14 * k_day);
    EXPECT_EQ(parse_duration("1d12h"), k_day + 12 * k_hour);
    EXPECT_EQ(parse_duration("0"), 0);
    EXPECT_EQ(parse_duration("250ms"), 250);
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
    EXPECT_EQ(format_duration(0), "0s");
    EXPECT_EQ(format_duration(90 * k_second), "1m30s");
    EXPECT_EQ(format_time(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_time(k_never), "never");
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
