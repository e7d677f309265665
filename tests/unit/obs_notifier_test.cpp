// The pure parts of the notifier: app.stranded "no valid key" and the events
// re-derived after a failover (docs/notifications.md).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "obs/notifier.hpp"

using namespace keyrot;

namespace {

constexpr millis T0 = 1'800'000'000'000;
constexpr millis d = k_day;

exec::key_record rec(std::string app, std::string fp, plan::key_state st, millis issued,
                     millis expires, std::string replaces = "", bool pending = false) {
    exec::key_record r;
    r.developer = "dev@partner.example.com";
    r.app = std::move(app);
    r.policy = "p";
    r.key.fingerprint = std::move(fp);
    r.key.state = st;
    r.key.issued_at = issued;
    r.key.expires_at = expires;
    r.key.replaces = std::move(replaces);
    r.key.pending = pending;
    return r;
}

exec::pass_summary pass(std::vector<exec::key_record> keys) {
    exec::pass_summary s;
    s.organization = "acme";
    s.ok = true;
    s.keys = std::move(keys);
    return s;
}

std::map<std::string, obs::notify_policy> policies(millis overlap, bool revoke = true) {
    obs::notify_policy p;
    p.overlap = overlap;
    p.revoke = revoke;
    return {{"p", p}};
}

std::vector<std::string> describe(const std::vector<notify::event_fields>& evs) {
    std::vector<std::string> out;
    for (const auto& e : evs) out.push_back(std::string(notify::to_string(e.type)) + ":" + e.key);
    return out;
}

const char* A = "aaaaaaaaaaaaaaaa";
const char* B = "bbbbbbbbbbbbbbbb";
const char* C = "cccccccccccccccc";

}  // namespace

TEST(NotifierStranded, OnlyAppsWithoutAnyValidKey) {
    using ks = plan::key_state;
    auto s = pass({rec("gone", A, ks::expired, T0 - 100 * d, T0 - 10 * d),
                   rec("gone", B, ks::revoked, T0 - 50 * d, T0 + 40 * d),
                   rec("fine", C, ks::valid, T0 - 1 * d, T0 + 80 * d),
                   rec("alone", "dddddddddddddddd", ks::skipped, T0 - 1 * d, T0 + 80 * d)});
    const auto got = obs::stranded_events(s, T0);
    // The latest key names the occurrence: a later stranding is a new event.
    EXPECT_EQ(describe(got), std::vector<std::string>{"app.stranded:" + std::string(B)});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].app, "gone");
    EXPECT_EQ(got[0].reason.rfind("no valid key: 1 expired, 1 revoked", 0), 0u) << got[0].reason;
    EXPECT_TRUE(notify::make_event(got[0]));
}

TEST(NotifierRederive, RotatedAndRevokedWithinTheirWindows) {
    using ks = plan::key_state;
    const millis max_age = 3 * d, overlap = 1 * d;
    struct row {
        std::string name;
        std::vector<exec::key_record> keys;
        std::vector<std::string> expect;
    };
    const std::vector<row> rows = {
        // Successor issued 2 d ago, overlap over, old key no longer listed: both.
        {"both",
         {rec("x", B, ks::valid, T0 - 2 * d, T0 + 88 * d, A)},
         {"key.rotated:" + std::string(B), "key.revoked:" + std::string(A)}},
        // Overlap not over: the old key is still approved, listed: rotated only.
        {"in_overlap",
         {rec("x", A, ks::overlap, T0 - 80 * d, T0 + 10 * d),
          rec("x", B, ks::valid, T0 - 2 * k_hour, T0 + 90 * d, A)},
         {"key.rotated:" + std::string(B)}},
        // Old key listed as revoked (deleteRevokedAfter lists them): revoked.
        {"listed_revoked",
         {rec("x", A, ks::revoked, T0 - 80 * d, T0 + 10 * d),
          rec("x", B, ks::valid, T0 - 2 * d, T0 + 88 * d, A)},
         {"key.rotated:" + std::string(B), "key.revoked:" + std::string(A)}},
        // The old key expired before its revocation time: still listed, not revoked.
        {"old_expired",
         {rec("x", A, ks::expired, T0 - 90 * d, T0 - 2 * d + k_hour),
          rec("x", B, ks::valid, T0 - 2 * d, T0 + 88 * d, A)},
         {"key.rotated:" + std::string(B)}},
        // Issued 3.5 d ago: rotated is past maxAge, revoked within maxAge + overlap.
        {"only_revoked_window",
         {rec("x", B, ks::valid, T0 - 3 * d - 12 * k_hour, T0 + 86 * d, A)},
         {"key.revoked:" + std::string(A)}},
        // Older than maxAge + overlap: nothing.
        {"too_old", {rec("x", B, ks::valid, T0 - 5 * d, T0 + 85 * d, A)}, {}},
        // A pending successor is not complete: nothing.
        {"pending", {rec("x", B, ks::valid, T0 - 1 * d, T0 + 89 * d, A, true)}, {}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const auto got = obs::rederived_events(pass(r.keys), policies(overlap), max_age, T0);
        EXPECT_EQ(describe(got), r.expect);
        for (const auto& e : got) EXPECT_TRUE(notify::make_event(e));
    }
}

TEST(NotifierRederive, SameIdsAsTheOriginals) {
    using ks = plan::key_state;
    const auto got = obs::rederived_events(
        pass({rec("x", B, ks::valid, T0 - 2 * d, T0 + 88 * d, A)}), policies(d), 3 * d, T0);
    ASSERT_EQ(got.size(), 2u);
    // What on_action publishes for `completed` and `revoked` records.
    EXPECT_EQ(notify::make_event(got[0]).value().id,
              notify::event_id("acme", "dev@partner.example.com", "x", B,
                               notify::event_type::key_rotated, std::nullopt));
    EXPECT_EQ(notify::make_event(got[1]).value().id,
              notify::event_id("acme", "dev@partner.example.com", "x", A,
                               notify::event_type::key_revoked, std::nullopt));
    EXPECT_EQ(got[0].revokes_at, T0 - d);  // issued + overlap
}

TEST(NotifierRederive, NoRevocationWhenThePolicyDoesNotRevoke) {
    using ks = plan::key_state;
    const auto got = obs::rederived_events(
        pass({rec("x", B, ks::valid, T0 - 2 * d, T0 + 88 * d, A)}), policies(d, false), 3 * d, T0);
    EXPECT_EQ(describe(got), std::vector<std::string>{"key.rotated:" + std::string(B)});
}
