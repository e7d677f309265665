// The notifier (docs/notifications.md): app.stranded "no valid key",
// key.expiring for keys no policy rotates, the events re-derived after a failover, developerStatus
// only for a developer known active, and the audit log's tail replayed after a crash between an
// audit record and its outbox write.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "notify/config.hpp"
#include "obs/audit.hpp"
#include "obs/notifier.hpp"
#include "obs/recorder.hpp"
#include "temp_dir.hpp"
#include "unit/print_time.hpp"

namespace obs_notifier_test {

using namespace keyrot;

namespace {

constexpr sys_ms T0{milliseconds{1'800'000'000'000}};
constexpr milliseconds d = k_day;

exec::key_record rec(std::string app, std::string fp, plan::key_state st, sys_ms issued,
                     time_or_never expires, std::string replaces = "", bool pending = false) {
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
    r.developer_status = owner_status::active;
    return r;
}

exec::pass_summary pass(std::vector<exec::key_record> keys) {
    exec::pass_summary s;
    s.organization = "acme";
    s.ok = true;
    s.keys = std::move(keys);
    return s;
}

std::map<std::string, obs::notify_policy> policies(milliseconds overlap, bool revoke = true) {
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

using keyrot::testing::temp_dir;

// A notifier whose outbox is a vector, at a fixed time.
struct fixture {
    std::vector<notify::event> published;
    obs::notifier n;
    explicit fixture(const std::filesystem::path& sent, sys_ms now = T0)
        : n(
              [this](const notify::event& e) {
                  published.push_back(e);
                  return notify::add_result{};
              },
              policies(k_hour), sent, nullptr, [now] { return now; }) {}
};

exec::action_record action(std::string what, std::string key, std::string replaces, sys_ms ts) {
    exec::action_record r;
    r.ts = ts;
    r.organization = "acme";
    r.developer = "dev@partner.example.com";
    r.app = "x";
    r.policy = "p";
    r.action = exec::parse_audit_action(what).value();
    r.kind = what == "revoked"     ? plan::action_kind::revoke_key
             : what == "completed" ? plan::action_kind::complete_successor
             : what == "deleted"   ? plan::action_kind::delete_key
             : what == "created"   ? plan::action_kind::create_successor
                                   : plan::action_kind::report;
    r.key = std::move(key);
    r.replaces = std::move(replaces);
    r.developer_status = owner_status::active;
    return r;
}

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
    const milliseconds max_age = 3 * d, overlap = 1 * d;
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

TEST(NotifierDeveloperStatus, ActiveOnlyWhenKnownActive) {
    using ks = plan::key_state;
    std::map<std::string, obs::notify_policy> p = policies(k_hour);
    p["p"].expiring_at = {30 * d, 7 * d};
    // One key expiring in 5 days per developer status the pass can know.
    std::vector<exec::key_record> keys;
    for (const char* st : {"active", "", "inactive"}) {
        auto r = rec(std::string("app-") + (*st ? st : "unknown"), A, ks::valid, T0 - 85 * d,
                     T0 + 5 * d);
        r.developer_status = parse_owner_status(st);
        keys.push_back(r);
    }
    keys[2].key.state = ks::skipped;  // the planner leaves an inactive developer's app alone
    keys.push_back(keys[0]);          // and a revoked app of an active developer
    keys.back().app = "app-revoked";
    keys.back().key.state = ks::skipped;
    const auto got = obs::expiring_events(pass(keys), p, T0);
    ASSERT_EQ(got.size(), 4u);
    std::map<std::string, std::string> status;
    for (const auto& e : got) status[e.app] = e.developer_status;
    EXPECT_EQ(status, (std::map<std::string, std::string>{{"app-active", "active"},
                                                          {"app-unknown", ""},
                                                          {"app-inactive", ""},
                                                          {"app-revoked", ""}}));
    const auto body = notify::make_event(got[1]).value().body;
    EXPECT_EQ(body.find("developerStatus"), std::string::npos) << body;
}

TEST(NotifierDeveloperStatus, StrandedAndActionsFollowTheRecord) {
    using ks = plan::key_state;
    auto k = rec("gone", A, ks::expired, T0 - 100 * d, T0 - 10 * d);
    k.developer_status = owner_status::not_known;
    const auto st = obs::stranded_events(pass({k}), T0);
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].developer_status, "");

    temp_dir dir;
    fixture f(dir.path / "notify-sent.json");
    // A report (drift) about an app whose developer's status the pass did not know.
    auto drift = action("skipped", A, "", T0 - k_minute);
    drift.detail = "overlap over, but successor " + std::string(B) +
                   " no longer has every product this key has approved: not revoked (drift)";
    drift.developer_status = owner_status::not_known;
    f.n.on_action(drift);
    auto revoked = action("revoked", C, "", T0 - k_minute);
    f.n.on_action(revoked);
    ASSERT_EQ(f.published.size(), 2u);
    EXPECT_EQ(f.published[0].f.type, notify::event_type::app_stranded);
    EXPECT_EQ(f.published[0].f.developer_status, "");
    EXPECT_EQ(f.published[1].f.type, notify::event_type::key_revoked);
    EXPECT_EQ(f.published[1].f.developer_status, "active");
}

TEST(NotifierStranded, AppWithoutAnyKey) {
    using ks = plan::key_state;
    auto s = pass({rec("revoked-only", B, ks::revoked, T0 - 50 * d, T0 + 40 * d)});
    exec::key_record none;
    none.developer = "dev@partner.example.com";
    none.app = "empty";
    none.policy = "p";
    none.developer_status = owner_status::active;
    s.keyless_apps.push_back(none);
    // Keyless in the approved phase, its revoked key from the revoked phase:
    // stranded once, named by that key.
    none.app = "revoked-only";
    s.keyless_apps.push_back(none);
    exec::key_record nobody;  // neither a developer nor a team: nobody to name
    nobody.app = "orphan";
    nobody.policy = "p";
    s.keyless_apps.push_back(nobody);
    const auto got = obs::stranded_events(s, T0);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].app, "revoked-only");
    EXPECT_EQ(got[0].key, B);
    EXPECT_EQ(got[1].app, "empty");
    EXPECT_EQ(got[1].key, "");
    EXPECT_EQ(got[1].developer_status, "active");
    EXPECT_EQ(got[1].reason.rfind("no valid key: ", 0), 0u) << got[1].reason;
    const auto ev = notify::make_event(got[1]);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev.value().id, notify::event_id("acme", "dev@partner.example.com", "empty", "",
                                              notify::event_type::app_stranded, std::nullopt));
    EXPECT_EQ(ev.value().body.find("\"key\""), std::string::npos) << ev.value().body;
}

// A team (AppGroup) app is stranded like a developer's, naming its team: no
// developer and no developerStatus (the AppGroup's status is not a
// developer's), so the event reaches webhooks and fixed addresses only.
TEST(NotifierStranded, TeamAppsNameTheTeam) {
    using ks = plan::key_state;
    auto team_key = [](std::string app, std::string fp, ks st, sys_ms issued,
                       time_or_never expires) {
        auto k = rec(std::move(app), std::move(fp), st, issued, expires);
        k.developer = "";
        k.team = "ops";
        k.developer_status =
            owner_status::active;  // the AppGroup's status, as the executor passes it
        return k;
    };
    // "shared" of team ops is stranded; "shared" of the developer is fine: apps
    // are told apart by owner.
    auto s = pass({team_key("shared", A, ks::expired, T0 - 100 * d, T0 - 10 * d),
                   team_key("shared", B, ks::revoked, T0 - 50 * d, T0 + 40 * d),
                   rec("shared", C, ks::valid, T0 - 1 * d, T0 + 80 * d),
                   team_key("alone", "dddddddddddddddd", ks::skipped, T0 - d, T0 + 80 * d)});
    exec::key_record none;  // a team app Apigee lists with no key at all
    none.team = "ops";
    none.app = "empty";
    none.policy = "p";
    none.developer_status = owner_status::active;
    s.keyless_apps.push_back(none);
    none.app = "shared";  // keyless in the approved phase, revoked keys listed: named above
    s.keyless_apps.push_back(none);
    const auto got = obs::stranded_events(s, T0);
    ASSERT_EQ(got.size(), 2u) << ::testing::PrintToString(describe(got));
    EXPECT_EQ(got[0].app, "shared");
    EXPECT_EQ(got[0].key, B);
    EXPECT_EQ(got[1].app, "empty");
    EXPECT_EQ(got[1].key, "");
    for (const auto& f : got) {
        EXPECT_EQ(f.team, "ops");
        EXPECT_EQ(f.developer, "");
        EXPECT_EQ(f.developer_status, "");
        EXPECT_EQ(f.reason.rfind("no valid key: ", 0), 0u) << f.reason;
    }
    const auto ev = notify::make_event(got[0]);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev.value().id, notify::event_id("acme", "team:ops", "shared", B,
                                              notify::event_type::app_stranded, std::nullopt));
    EXPECT_NE(ev.value().body.find("\"team\":\"ops\""), std::string::npos) << ev.value().body;
    EXPECT_EQ(ev.value().body.find("developer"), std::string::npos) << ev.value().body;
    const auto kl = notify::make_event(got[1]);
    ASSERT_TRUE(kl);
    EXPECT_EQ(kl.value().id, notify::event_id("acme", "team:ops", "empty", "",
                                              notify::event_type::app_stranded, std::nullopt));
}

// A report (drift, no room for the marker) about a team app: app.stranded names the team.
TEST(NotifierStranded, TeamReportsNameTheTeam) {
    temp_dir dir;
    fixture f(dir.path / "notify-sent.json");
    auto drift = action("skipped", A, "", T0 - k_minute);
    drift.developer = "";
    drift.team = "ops";
    drift.detail = "overlap over, but successor " + std::string(B) +
                   " no longer has every product this key has approved: not revoked (drift)";
    f.n.on_action(drift);
    ASSERT_EQ(f.published.size(), 1u);
    const auto& e = f.published[0];
    EXPECT_EQ(e.f.type, notify::event_type::app_stranded);
    EXPECT_EQ(e.f.team, "ops");
    EXPECT_EQ(e.f.developer, "");
    EXPECT_EQ(e.f.developer_status, "");
    EXPECT_EQ(e.f.reason.rfind("drift held a revocation: ", 0), 0u) << e.f.reason;
    EXPECT_EQ(e.id, notify::event_id("acme", "team:ops", "x", A, notify::event_type::app_stranded,
                                     std::nullopt));
}

// A team app that gets a key and loses it again is stranded again (its keyless
// id forgotten once a pass lists a key of it), as a developer's.
TEST(NotifierStranded, TeamKeylessOncePerOccurrence) {
    using ks = plan::key_state;
    temp_dir dir;
    fixture f(dir.path / "notify-sent.json");
    exec::key_record none;
    none.team = "ops";
    none.app = "empty";
    none.policy = "p";
    auto keyless = pass({});
    keyless.keyless_apps.push_back(none);
    f.n.on_pass(keyless);
    f.n.on_pass(keyless);
    ASSERT_EQ(f.published.size(), 1u);
    EXPECT_EQ(f.published[0].f.team, "ops");
    auto k = rec("empty", A, ks::valid, T0 - d, T0 + 80 * d);
    k.developer = "";
    k.team = "ops";
    f.n.on_pass(pass({k}));
    EXPECT_EQ(f.published.size(), 1u);
    f.n.on_pass(keyless);
    ASSERT_EQ(f.published.size(), 2u);
    EXPECT_EQ(f.published[1].id, f.published[0].id);
}

TEST(NotifierStranded, KeylessOncePerOccurrence) {
    using ks = plan::key_state;
    temp_dir dir;
    fixture f(dir.path / "notify-sent.json");
    exec::key_record none;
    none.developer = "dev@partner.example.com";
    none.app = "empty";
    none.policy = "p";
    auto keyless = pass({});
    keyless.keyless_apps.push_back(none);
    f.n.on_pass(keyless);
    f.n.on_pass(keyless);  // still keyless: the same occurrence
    ASSERT_EQ(f.published.size(), 1u);
    EXPECT_EQ(f.published[0].f.type, notify::event_type::app_stranded);
    // It gets a key, then loses it again: a new occurrence, sent again.
    f.n.on_pass(pass({rec("empty", A, ks::valid, T0 - d, T0 + 80 * d)}));
    EXPECT_EQ(f.published.size(), 1u);
    f.n.on_pass(keyless);
    ASSERT_EQ(f.published.size(), 2u);
    EXPECT_EQ(f.published[1].id, f.published[0].id);
}

// A crash between the audit record and the outbox write, made deterministic:
// the recorder's first step (audit_log::write) is done without its second
// (notifier::on_action), then a new process's objects are built on the same
// stateDir. The lost event is published with the id the original would have
// had; what was published, dry runs, records with no event and records older
// than maxAge are not; a torn last line is ignored.
TEST(NotifierReplay, CrashBetweenAuditRecordAndOutbox) {
    temp_dir dir;
    const auto sent = dir.path / "notify-sent.json";
    {
        obs::audit_log audit(dir.path);
        obs::recorder rec(&audit, nullptr);
        fixture before(sent);
        rec.set_notifier(&before.n);
        EXPECT_TRUE(before.published.empty());  // an empty audit log: nothing to replay
        auto done = action("completed", B, A, T0 - 2 * k_hour);
        done.key_issued_at = T0 - 3 * k_hour;
        ASSERT_TRUE(rec.on_action(done));  // audited and published
        ASSERT_EQ(before.published.size(), 1u);

        auto old = action("revoked", C, "", T0 - 4 * d);  // older than maxAge (3 d)
        ASSERT_TRUE(audit.write(old));
        auto dry = action("revoked", A, "", T0 - k_hour);
        dry.dry_run = true;
        ASSERT_TRUE(audit.write(dry));
        ASSERT_TRUE(audit.write(action("created", "", A, T0 - k_hour)));
        // The crash: audited, never handed to the notifier.
        ASSERT_TRUE(audit.write(action("revoked", A, "", T0 - k_minute)));
    }
    {
        std::ofstream torn(dir.path / "audit.jsonl", std::ios::app);
        torn << R"({"ts":"2027-01-15T08:00:00.000Z","organization":"acme","act)";
    }
    {
        obs::audit_log audit(dir.path);
        obs::recorder rec(&audit, nullptr);
        fixture after(sent);
        rec.set_notifier(&after.n);
        ASSERT_EQ(after.published.size(), 1u);
        const auto& e = after.published[0];
        EXPECT_EQ(e.f.type, notify::event_type::key_revoked);
        EXPECT_EQ(e.f.key, A);
        EXPECT_EQ(e.f.developer_status, "active");
        EXPECT_EQ(e.f.occurred_at, T0 - k_minute);
        // The id on_action gives the same record: receivers deduplicate on it.
        temp_dir other;
        fixture live(other.path / "notify-sent.json");
        live.n.on_action(action("revoked", A, "", T0 - k_minute));
        ASSERT_EQ(live.published.size(), 1u);
        EXPECT_EQ(e.id, live.published[0].id);
    }
    {
        // Remembered now: the next start replays nothing.
        obs::audit_log audit(dir.path);
        obs::recorder rec(&audit, nullptr);
        fixture again(sent);
        rec.set_notifier(&again.n);
        EXPECT_TRUE(again.published.empty());
    }
}

TEST(NotifierReplay, ReportsAndFailures) {
    temp_dir dir;
    {
        obs::audit_log audit(dir.path);
        auto failed = action("failed", "", A, T0 - k_hour);
        failed.detail = "create: HTTP 500";
        ASSERT_TRUE(audit.write(failed));
        auto no_room = action("failed", B, "", T0 - k_hour);
        no_room.detail = "key " + std::string(B) +
                         " has 18 attributes, no room for the keyrotd_replaces marker (limit "
                         "18): remove one attribute to let it rotate";
        ASSERT_TRUE(audit.write(no_room));
        ASSERT_TRUE(audit.write(action("deleted", C, "", T0 - k_hour)));
    }
    obs::audit_log audit(dir.path);
    obs::recorder rec(&audit, nullptr);
    fixture f(dir.path / "notify-sent.json");
    rec.set_notifier(&f.n);
    std::vector<std::string> got;
    for (const auto& e : f.published)
        got.push_back(std::string(notify::to_string(e.f.type)) + ":" + e.f.key + ":" +
                      e.f.developer_status);
    // A failure's line does not say whether the developer was known active.
    EXPECT_EQ(got, (std::vector<std::string>{"rotation.failed:" + std::string(A) + ":",
                                             "app.stranded:" + std::string(B) + ":",
                                             "rotation.failed:" + std::string(B) + ":",
                                             "key.deleted:" + std::string(C) + ":active"}));
}

namespace {

exec::unmatched_key unmatched(std::string app, std::string fp, time_or_never expires,
                              std::string team = "") {
    exec::unmatched_key k;
    if (team.empty()) {
        k.developer = "dev@partner.example.com";
        k.developer_status = owner_status::active;
    }
    k.team = std::move(team);
    k.app = std::move(app);
    k.fingerprint = std::move(fp);
    k.issued_at = T0 - 60 * d;
    k.expires_at = expires;
    return k;
}

// The lead times notify_policies() gives keys no policy rotates.
std::map<std::string, obs::notify_policy> with_unmatched(std::vector<milliseconds> leads) {
    auto p = policies(k_hour);
    p[obs::k_unmatched_policy].expiring_at = std::move(leads);
    return p;
}

}  // namespace

TEST(NotifierUnmatched, ExpiringAtTheConfigLeadTimes) {
    auto s = pass({});
    s.unmatched_keys = {
        unmatched("solo", A, T0 + 5 * d),                 // 7d
        unmatched("shared", B, T0 + 20 * d, "ops-team"),  // 30d, a team app
        unmatched("later", C, T0 + 60 * d),               // beyond every lead: none
    };
    auto unknown = unmatched("unknown", "dddddddddddddddd", T0 + 12 * k_hour);  // 1d
    unknown.developer_status = owner_status::not_known;
    s.unmatched_keys.push_back(unknown);
    const auto got = obs::expiring_events(s, with_unmatched({30 * d, 7 * d, d}), T0);
    ASSERT_EQ(got.size(), 3u);
    std::map<std::string, notify::event_fields> by_app;
    for (const auto& e : got) by_app[e.app] = e;

    const auto& solo = by_app.at("solo");
    EXPECT_EQ(solo.type, notify::event_type::key_expiring);
    EXPECT_EQ(solo.lead_time, 7 * d);
    EXPECT_EQ(solo.expires_at, T0 + 5 * d);
    EXPECT_EQ(solo.policy, "");
    EXPECT_EQ(solo.developer, "dev@partner.example.com");
    EXPECT_EQ(solo.developer_status, "active");
    // The same id scheme as a policy's key.expiring: a key a policy later
    // governs is not warned twice at the same lead time.
    const auto ev = notify::make_event(solo);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev.value().id, notify::event_id("acme", "dev@partner.example.com", "solo", A,
                                              notify::event_type::key_expiring, 7 * d));
    EXPECT_EQ(ev.value().body.find("\"policy\""), std::string::npos) << ev.value().body;

    const auto& team = by_app.at("shared");
    EXPECT_EQ(team.lead_time, 30 * d);
    EXPECT_EQ(team.team, "ops-team");
    EXPECT_EQ(team.developer, "");
    EXPECT_EQ(team.developer_status, "");  // no developer to mail
    const auto tev = notify::make_event(team);
    ASSERT_TRUE(tev);
    EXPECT_EQ(tev.value().id, notify::event_id("acme", "team:ops-team", "shared", B,
                                               notify::event_type::key_expiring, 30 * d));
    EXPECT_NE(tev.value().body.find("\"team\":\"ops-team\""), std::string::npos)
        << tev.value().body;

    EXPECT_EQ(by_app.at("unknown").lead_time, d);
    EXPECT_EQ(by_app.at("unknown").developer_status, "");  // not known active: no mail

    // No lead times in the config (a policy's own do not apply): none.
    EXPECT_TRUE(obs::expiring_events(s, policies(k_hour), T0).empty());
    EXPECT_TRUE(obs::expiring_events(s, with_unmatched({}), T0).empty());
}

TEST(NotifierUnmatched, NotifyPoliciesGiveTheConfigLeadTimes) {
    policy::config cfg;
    policy::policy p;
    p.name = "p";
    p.notify_expiring_at = std::vector<milliseconds>{14 * d};
    cfg.policies.push_back(p);
    notify::config ncfg;
    ncfg.expiring_at = {30 * d, d};
    const auto got = obs::notify_policies(cfg, ncfg);
    EXPECT_EQ(got.at("p").expiring_at, std::vector<milliseconds>{14 * d});
    EXPECT_EQ(got.at(obs::k_unmatched_policy).expiring_at, (std::vector<milliseconds>{30 * d, d}));
}

TEST(NotifierUnmatched, OncePerLeadWhileTheKeyIsListed) {
    temp_dir dir;
    std::vector<notify::event> published;
    sys_ms now = T0;
    obs::notifier n(
        [&published](const notify::event& e) {
            published.push_back(e);
            return notify::add_result{};
        },
        with_unmatched({30 * d, 7 * d}), dir.path / "notify-sent.json", nullptr,
        [&now] { return now; });
    auto s = pass({});
    s.unmatched_keys = {unmatched("solo", A, T0 + 20 * d),
                        unmatched("shared", B, T0 + 20 * d, "ops-team")};
    n.on_pass(s);
    ASSERT_EQ(published.size(), 2u);
    n.on_pass(s);
    EXPECT_EQ(published.size(), 2u);
    // Ten days on, past maxAge + overlap: still listed, so still remembered.
    now = T0 + 10 * d;
    n.on_pass(s);
    n.on_pass(s);
    EXPECT_EQ(published.size(), 2u);
    // Within 7 days: the next lead, once each.
    now = T0 + 14 * d;
    n.on_pass(s);
    n.on_pass(s);
    ASSERT_EQ(published.size(), 4u);
    EXPECT_EQ(published[2].f.lead_time, 7 * d);
    EXPECT_EQ(published[3].f.lead_time, 7 * d);
    // A pass that failed to read the inventory neither warns nor forgets.
    auto failed = s;
    failed.error = "inventory: HTTP 503";
    now = T0 + 19 * d;
    n.on_pass(failed);
    EXPECT_EQ(published.size(), 4u);
}

TEST(NotifierUnmatched, SinkFiltersOnPoliciesAndDevelopers) {
    auto s = pass({});
    s.unmatched_keys = {unmatched("solo", A, T0 + 5 * d),
                        unmatched("shared", B, T0 + 5 * d, "ops-team")};
    const auto got = obs::expiring_events(s, with_unmatched({7 * d}), T0);
    ASSERT_EQ(got.size(), 2u);
    const auto solo = notify::make_event(got[0]).value();
    const auto team = notify::make_event(got[1]).value();
    ASSERT_EQ(team.f.team, "ops-team");
    notify::sink_filter all;
    EXPECT_TRUE(notify::matches(all, solo));
    EXPECT_TRUE(notify::matches(all, team));
    // A sink that lists policies wants those policies' keys: no policy, no event.
    notify::sink_filter by_policy;
    by_policy.policies = {"p"};
    EXPECT_FALSE(notify::matches(by_policy, solo));
    EXPECT_FALSE(notify::matches(by_policy, team));
    // Developer globs match a developer, never a team.
    notify::sink_filter by_developer;
    by_developer.developers = {"*@partner.example.com"};
    EXPECT_TRUE(notify::matches(by_developer, solo));
    EXPECT_FALSE(notify::matches(by_developer, team));
    notify::sink_filter by_app;
    by_app.apps = {"sha*"};
    EXPECT_FALSE(notify::matches(by_app, solo));
    EXPECT_TRUE(notify::matches(by_app, team));
}

}  // namespace obs_notifier_test
