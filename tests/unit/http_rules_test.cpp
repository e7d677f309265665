#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>

#include "common/fingerprint.hpp"
#include "http/rules.hpp"

namespace http_rules_test {

using namespace keyrot;
using namespace keyrot::http;
using namespace std::chrono_literals;

TEST(Url, ParsesHttpsAndLoopbackHttp) {
    auto u = parse_url("https://apigee.googleapis.com");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "apigee.googleapis.com");
    EXPECT_EQ(u->port, 443);
    EXPECT_EQ(u->authority(), "apigee.googleapis.com");
    EXPECT_FALSE(u->host_is_ip);

    auto l = parse_url("http://127.0.0.1:8080/");
    ASSERT_TRUE(l);
    EXPECT_FALSE(l->tls);
    EXPECT_EQ(l->port, 8080);
    EXPECT_EQ(l->prefix, "");
    EXPECT_EQ(l->authority(), "127.0.0.1:8080");
    EXPECT_TRUE(l->host_is_loopback);

    auto v6 = parse_url("https://[::1]:8443/base/");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_TRUE(v6->host_is_ip);
    EXPECT_EQ(v6->prefix, "/base");
    EXPECT_EQ(v6->authority(), "[::1]:8443");

    EXPECT_TRUE(parse_url("http://localhost:1"));
    EXPECT_TRUE(parse_url("http://[::1]:9"));
}

TEST(Url, RefusesPlainHttpToOtherHostsAndGarbage) {
    for (const char* bad :
         {"http://apigee.googleapis.com", "http://10.0.0.1", "ftp://x", "https://",
          "https://u:p@host", "https://host:0", "https://host:99999", "https://host:x",
          "https://host/?q", "apigee.googleapis.com", "https://[::1", "https://ho st"}) {
        auto u = parse_url(bad);
        ASSERT_FALSE(u) << bad;
        EXPECT_EQ(u.err().what, error::kind::config) << bad;
    }
    EXPECT_NE(parse_url("http://example.com").err().message.find("loopback"), std::string::npos);
}

TEST(Retry, OnlySafeRequestsAreRepeated) {
    EXPECT_TRUE(safe_to_retry("GET", "/v1/organizations/o/apps"));
    EXPECT_TRUE(safe_to_retry("PUT", "/x"));
    EXPECT_TRUE(safe_to_retry("DELETE", "/x"));
    EXPECT_TRUE(safe_to_retry("POST", "/x/keys/k?action=revoke"));
    EXPECT_TRUE(safe_to_retry("POST", "/x?a=1&action=approve"));
    EXPECT_FALSE(safe_to_retry("POST", "/x/keys"));
    EXPECT_FALSE(safe_to_retry("POST", "/x?transaction=1"));
    EXPECT_FALSE(safe_to_retry("POST", "/x/action=revoke"));
    EXPECT_FALSE(safe_to_retry("PATCH", "/x"));
    for (int s : {429, 500, 502, 503, 504}) EXPECT_TRUE(retryable_status(s)) << s;
    for (int s : {200, 204, 400, 401, 403, 404, 409, 501}) EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(Backoff, FullJitterExponentialCapped) {
    EXPECT_EQ(backoff_delay(0, 250ms, 20000ms, 0.0), 0ms);
    EXPECT_EQ(backoff_delay(0, 250ms, 20000ms, 0.5), 125ms);
    EXPECT_EQ(backoff_delay(1, 250ms, 20000ms, 0.5), 250ms);
    EXPECT_EQ(backoff_delay(3, 250ms, 20000ms, 0.999999), 1999ms);
    EXPECT_EQ(backoff_delay(10, 250ms, 20000ms, 0.5), 10000ms);    // capped at 20 s
    EXPECT_EQ(backoff_delay(1000, 250ms, 20000ms, 0.5), 10000ms);  // no overflow
    EXPECT_EQ(backoff_delay(-3, 250ms, 20000ms, 1.5), 250ms);      // clamped inputs
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(0, 1);
    for (int a = 0; a < 20; ++a) {
        auto d = backoff_delay(a, 100ms, 5000ms, u(rng));
        EXPECT_GE(d, 0ms);
        EXPECT_LE(d, std::min(5000ms, milliseconds(100LL << std::min(a, 20))));
    }
}

TEST(RetryAfter, SecondsCappedDatesIgnored) {
    EXPECT_EQ(parse_retry_after("2", 60000ms), 2000ms);
    EXPECT_EQ(parse_retry_after(" 0 ", 60000ms), 0ms);
    EXPECT_EQ(parse_retry_after("3600", 60000ms), 60000ms);
    EXPECT_EQ(parse_retry_after("99999999999999999999999", 60000ms), 60000ms);
    EXPECT_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60000ms));
    EXPECT_FALSE(parse_retry_after("-1", 60000ms));
    EXPECT_FALSE(parse_retry_after("1.5", 60000ms));
    EXPECT_FALSE(parse_retry_after("", 60000ms));
}

// Largest number of sends in any half-open window [t, t + 1 s).
static int max_in_window(const std::vector<std::chrono::microseconds>& sends) {
    int best = 0;
    std::size_t j = 0;
    for (std::size_t i = 0; i < sends.size(); ++i) {
        while (sends[i] - sends[j] >= 1s) ++j;
        best = std::max(best, static_cast<int>(i - j + 1));
    }
    return best;
}

TEST(TokenBucket, NoWindowExceedsTheRate) {
    for (double rate : {1.0, 3.0, 20.0, 100.0, 7.5}) {
        token_bucket b(rate, 1);
        std::vector<std::chrono::microseconds> sends;
        // 500 requests arriving in bursts at odd times.
        std::mt19937_64 rng(42);
        std::chrono::microseconds now = 5s;
        for (int i = 0; i < 500; ++i) {
            if (rng() % 5 == 0) now += std::chrono::microseconds(rng() % 3'000'000);
            auto at = b.acquire(now);
            EXPECT_GE(at, now);
            sends.push_back(at);
        }
        std::sort(sends.begin(), sends.end());
        EXPECT_LE(max_in_window(sends), static_cast<int>(std::ceil(rate))) << rate;
    }
}

TEST(TokenBucket, BurstAllowsRatePlusBurstMinusOne) {
    token_bucket b(10, 5);
    std::vector<std::chrono::microseconds> sends;
    for (int i = 0; i < 100; ++i) sends.push_back(b.acquire(0us));
    // The first five go at once.
    EXPECT_EQ(std::count(sends.begin(), sends.end(), 0us), 5);
    EXPECT_LE(max_in_window(sends), 10 + 5 - 1);
    // Sustained: 100 sends take about 10 s.
    EXPECT_GE(sends.back(), 9s);
}

TEST(TokenBucket, IdleTimeDoesNotBankTokens) {
    token_bucket b(2, 1);
    EXPECT_EQ(b.acquire(0us), 0us);
    EXPECT_EQ(b.acquire(100s), 100s);
    EXPECT_EQ(b.acquire(100s), 100500ms);
    token_bucket unlimited(0, 1);
    EXPECT_EQ(unlimited.acquire(7us), 7us);
    EXPECT_EQ(unlimited.acquire(7us), 7us);
}

TEST(NoProxy, CurlSemantics) {
    EXPECT_TRUE(no_proxy_matches("*", "apigee.googleapis.com", 443));
    EXPECT_TRUE(no_proxy_matches("googleapis.com", "apigee.googleapis.com", 443));
    EXPECT_TRUE(no_proxy_matches(".googleapis.com", "apigee.googleapis.com", 443));
    EXPECT_TRUE(no_proxy_matches("foo, GoogleApis.com", "apigee.googleapis.com", 443));
    EXPECT_TRUE(no_proxy_matches("apigee.googleapis.com:443", "apigee.googleapis.com", 443));
    EXPECT_FALSE(no_proxy_matches("apigee.googleapis.com:8443", "apigee.googleapis.com", 443));
    EXPECT_FALSE(no_proxy_matches("gleapis.com", "apigee.googleapis.com", 443));
    EXPECT_FALSE(no_proxy_matches("", "apigee.googleapis.com", 443));
    EXPECT_TRUE(no_proxy_matches("127.0.0.1,::1", "::1", 443));
    EXPECT_TRUE(no_proxy_matches("[::1]", "::1", 443));
}

// Go's httpproxy and curl (7.86+) take CIDR entries; Kubernetes' API server is
// usually reached by IP (KUBERNETES_SERVICE_HOST=10.96.0.1).
TEST(NoProxy, CidrMatchesIpLiterals) {
    EXPECT_TRUE(no_proxy_matches("10.0.0.0/8", "10.96.0.1", 443));
    EXPECT_TRUE(no_proxy_matches("apigee.example.com, 10.0.0.0/8", "10.96.0.1", 6443));
    EXPECT_TRUE(no_proxy_matches("10.96.0.1/32", "10.96.0.1", 443));
    EXPECT_FALSE(no_proxy_matches("10.96.0.1/32", "10.96.0.2", 443));
    EXPECT_TRUE(no_proxy_matches("172.16.0.0/12", "172.31.255.255", 443));
    EXPECT_FALSE(no_proxy_matches("172.16.0.0/12", "172.32.0.0", 443));
    EXPECT_TRUE(no_proxy_matches("192.168.1.0/23", "192.168.0.7", 443));
    EXPECT_FALSE(no_proxy_matches("192.168.1.0/24", "192.168.0.7", 443));
    EXPECT_TRUE(no_proxy_matches("0.0.0.0/0", "203.0.113.9", 443));
    EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "11.0.0.1", 443));
    EXPECT_TRUE(no_proxy_matches("fd00::/8", "fd12:3456::1", 443));
    EXPECT_TRUE(no_proxy_matches("FD00::/8", "fdff::1", 443));
    EXPECT_FALSE(no_proxy_matches("fd00::/8", "fe80::1", 443));
    EXPECT_TRUE(no_proxy_matches("2001:db8::/33", "2001:db8:7fff::1", 443));
    EXPECT_FALSE(no_proxy_matches("2001:db8::/33", "2001:db8:8000::1", 443));
    EXPECT_TRUE(no_proxy_matches("::1/128", "::1", 443));
    // Families do not mix; host names do not match a CIDR.
    EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "::ffff:10.0.0.1", 443));
    EXPECT_FALSE(no_proxy_matches("::/0", "10.0.0.1", 443));
    EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "10.example.com", 443));
    // Malformed entries match nothing.
    for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "fd00::/129",
                            "10.0.0.0/8/8", "/8", "10.0.0.0/-1"})
        EXPECT_FALSE(no_proxy_matches(bad, "10.0.0.1", 443)) << bad;
}

TEST(Encode, ComponentsRoundTrip) {
    EXPECT_EQ(encode_component("dev@example.com"), "dev%40example.com");
    EXPECT_EQ(encode_component("a-b_c.d~e"), "a-b_c.d~e");
    EXPECT_EQ(encode_component("a/b c?"), "a%2Fb%20c%3F");
    EXPECT_EQ(decode_component("dev%40example.com"), "dev@example.com");
    EXPECT_EQ(decode_component("bad%4"), "bad%4");
    EXPECT_EQ(decode_component("bad%zz"), "bad%zz");
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    EXPECT_EQ(decode_component(encode_component(all)), all);
}

TEST(Redact, KeysBecomeFingerprints) {
    std::string key = "Abc-123_XYZ";
    std::string t = "/v1/organizations/o/developers/d%40x.com/apps/a/keys/" + key +
                    "/apiproducts/p?action=revoke";
    std::string r = redact_target(t);
    EXPECT_EQ(r.find(key), std::string::npos);
    EXPECT_EQ(r, "/v1/organizations/o/developers/d%40x.com/apps/a/keys/<fp:" + fingerprint(key) +
                     ">/apiproducts/p?action=revoke");
    EXPECT_EQ(redact_target("/v1/organizations/o/apps?pageSize=10&pageToken=secretish&x=1"),
              "/v1/organizations/o/apps?pageSize=10&pageToken=...&x=1");
    EXPECT_EQ(redact_target("/a/keys"), "/a/keys");
    EXPECT_EQ(redact_target("/a/keys/" + key), "/a/keys/<fp:" + fingerprint(key) + ">");
}

}  // namespace http_rules_test
