// How a successor is made and completed, and a key retired, step by step
// (plan/steps.hpp): the mirroring rule, the writes each method makes, the
// order of the steps for each shape of key, and what each step's answer must
// show. Apigee is modelled by expected_after: it answers each
// step as asked, an added product coming out with the status given.
#include "plan/steps.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace steps_test {

using namespace keyrot;

namespace {

// ---- mirror: never wider -------------------------------------------------

struct mirror_row {
    approval want, actual;
    plan::status_change expect;
};

class Mirror : public ::testing::TestWithParam<mirror_row> {};

TEST_P(Mirror, NeverWider) {
    const auto& r = GetParam();
    EXPECT_EQ(plan::mirror(r.want, r.actual), r.expect)
        << to_string(r.want) << " / " << to_string(r.actual);
}

constexpr auto approved = approval::approved, revoked = approval::revoked,
               pending = approval::pending, unknown = approval::unknown;
constexpr auto approve = plan::status_change::approve, revoke = plan::status_change::revoke,
               leave = plan::status_change::leave;

INSTANTIATE_TEST_SUITE_P(
    Table, Mirror,
    ::testing::Values(mirror_row{approved, unknown, approve},  // or lacking
                      mirror_row{approved, pending, approve},
                      mirror_row{approved, revoked, approve}, mirror_row{approved, approved, leave},
                      mirror_row{revoked, approved, revoke}, mirror_row{revoked, pending, revoke},
                      mirror_row{revoked, revoked, leave}, mirror_row{revoked, unknown, revoke},
                      // pending cannot be set: an approved one becomes revoked
                      mirror_row{pending, approved, revoke}, mirror_row{pending, pending, leave},
                      mirror_row{pending, revoked, leave}, mirror_row{pending, unknown, leave},
                      // an unknown status is never approved
                      mirror_row{unknown, approved, revoke}, mirror_row{unknown, pending, leave},
                      mirror_row{unknown, revoked, leave}, mirror_row{unknown, unknown, leave}));

// ---- the steps, in order ---------------------------------------------------

const attribute k_pending{k_marker_attribute, "pending:old"};
const attribute k_final{k_marker_attribute, "old"};

// A key as "create" leaves it: the old key's attributes with the pending marker, nothing else.
credential imported() {
    credential c;
    c.status = approval::approved;
    c.attributes = {{"tier", "gold"}, k_pending};
    return c;
}

plan::successor_spec spec_of(std::vector<product_grant> products,
                             std::vector<std::string> scopes = {}) {
    plan::successor_spec s;
    s.attributes = {{"tier", "gold"}, k_final};
    s.products = std::move(products);
    s.scopes = std::move(scopes);
    return s;
}

// Runs the steps to the end as the executor does; "kind[:product]" per step.
std::vector<std::string> run(credential c, const plan::successor_spec& spec,
                             approval added_status) {
    std::vector<std::string> out;
    plan::status_phase phase = plan::status_phase::open;
    for (int n = 0; n < 20; ++n) {
        const auto st = plan::next_completion_step(c, spec, phase);
        if (!st) return out;
        if (st->kind == plan::step_kind::final_marker) {
            const auto wrong = plan::check_before_final(c, spec);
            EXPECT_FALSE(wrong) << "before the final marker: " << wrong.value_or("");
        }
        std::string d = plan::to_string(st->kind);
        if (st->kind == plan::step_kind::set_product_status)
            d += std::string(st->approve ? " approve " : " revoke ") + st->products.front();
        if (st->completes) d += " [completes]";
        out.push_back(d);
        c = plan::expected_after(std::move(c), *st, added_status);
        if (st->kind == plan::step_kind::set_product_status) phase = plan::status_phase::unverified;
        if (st->kind == plan::step_kind::verify_statuses) phase = plan::status_phase::verified;
        const auto wrong = plan::check_after(*st, c, spec);
        EXPECT_FALSE(wrong) << d << ": " << wrong.value_or("");
    }
    ADD_FAILURE() << "did not converge";
    return out;
}

TEST(Steps, AllApprovedNoScopesIsOneUpdate) {
    const auto spec = spec_of({{"a", approval::approved}, {"b", approval::approved}});
    EXPECT_EQ(run(imported(), spec, approval::approved),
              (std::vector<std::string>{"add products with the final marker [completes]"}));
}

TEST(Steps, AManualProductComesOutPendingAndIsApprovedAfterTheOneUpdate) {
    const auto spec = spec_of({{"a", approval::approved}});
    EXPECT_EQ(run(imported(), spec, approval::pending),
              (std::vector<std::string>{"add products with the final marker [completes]",
                                        "set a product's status approve a",
                                        "read back product statuses"}));
}

TEST(Steps, FullShapeMirrorsEachProductThenScopesThenTheFinalMarkerLast) {
    const auto spec = spec_of(
        {{"pay", approval::approved}, {"admin", approval::revoked}, {"beta", approval::pending}},
        {"read"});
    EXPECT_EQ(run(imported(), spec, approval::approved),
              (std::vector<std::string>{"add products", "set a product's status revoke admin",
                                        "set a product's status revoke beta",
                                        "read back product statuses", "set scopes",
                                        "write final marker [completes]"}));
}

TEST(Steps, ARevokedProductForcesTheSlowPathEvenWithoutScopes) {
    // A revoked product on the old key: the one update would approve it on an
    // auto-approval product before the status step; so the marker waits.
    const auto spec = spec_of({{"pay", approval::approved}, {"admin", approval::revoked}});
    const auto steps = run(imported(), spec, approval::approved);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), "add products");
    EXPECT_EQ(steps.back(), "write final marker [completes]");
}

TEST(Steps, AGeneratedKeyHasItsProductsAndScopesAlready) {
    credential c;
    c.status = approval::approved;
    c.attributes = {k_pending};
    c.products = {{"pay", approval::approved}, {"admin", approval::approved}};
    c.scopes = {"read"};
    const auto spec =
        spec_of({{"pay", approval::approved}, {"admin", approval::revoked}}, {"read"});
    EXPECT_EQ(
        run(c, spec, approval::approved),
        (std::vector<std::string>{"set a product's status revoke admin",
                                  "read back product statuses", "write final marker [completes]"}));
}

TEST(Steps, ACompleteSuccessorWithAPendingProductIsOnlyApproved) {
    // The final marker is there (a crash after the one update): approve, read
    // back, and nothing is audited as completed again.
    credential c = imported();
    c.attributes = {{"tier", "gold"}, k_final};
    c.products = {{"a", approval::pending}};
    const auto spec = spec_of({{"a", approval::approved}});
    EXPECT_EQ(run(c, spec, approval::approved),
              (std::vector<std::string>{"set a product's status approve a",
                                        "read back product statuses"}));
}

TEST(Steps, ACompleteSuccessorNeedsNoStep) {
    credential c = imported();
    c.attributes = {{"tier", "gold"}, k_final};
    c.products = {{"a", approval::approved}};
    EXPECT_FALSE(plan::next_completion_step(c, spec_of({{"a", approval::approved}}),
                                            plan::status_phase::open));
}

TEST(Steps, VerifiedStatusesAreNotSetAgain) {
    // Apigee kept approval::pending where a revoke was asked: accepted once read back
    // (pending grants nothing), never asked again.
    credential c = imported();
    c.products = {{"admin", approval::pending}};
    const auto spec = spec_of({{"admin", approval::revoked}});
    const auto open = plan::next_completion_step(c, spec, plan::status_phase::open);
    ASSERT_TRUE(open);
    EXPECT_EQ(open->kind, plan::step_kind::set_product_status);
    const auto verified = plan::next_completion_step(c, spec, plan::status_phase::verified);
    ASSERT_TRUE(verified);
    EXPECT_EQ(verified->kind, plan::step_kind::final_marker);
}

TEST(Steps, AddProductsKeepsTheKeysOwnAttributes) {
    const auto spec = spec_of({{"admin", approval::revoked}});
    const auto st = plan::next_completion_step(imported(), spec, plan::status_phase::open);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->kind, plan::step_kind::add_products);
    EXPECT_EQ(st->attributes, imported().attributes);  // the pending marker stays
    EXPECT_FALSE(st->completes);
}

// ---- what each answer must show -------------------------------------------

TEST(Steps, AnswersThatDoNotShowTheStepAreRefused) {
    const auto spec = spec_of({{"a", approval::approved}, {"b", approval::revoked}}, {"read"});
    plan::step add;
    add.kind = plan::step_kind::add_products;
    add.products = {"a", "b"};
    credential ans = imported();
    ans.products = {{"a", approval::approved}};
    EXPECT_EQ(plan::check_after(add, ans, spec), "product b missing after adding it");
    ans.products.push_back({"b", approval::approved});
    EXPECT_FALSE(plan::check_after(add, ans, spec));
    ans.attributes = {{"tier", "gold"}};  // the update wiped the marker
    EXPECT_EQ(plan::check_after(add, ans, spec),
              "the lineage marker does not read back after adding products");

    plan::step verify;
    verify.kind = plan::step_kind::verify_statuses;
    credential back = imported();
    back.products = {{"a", approval::approved}, {"b", approval::approved}};
    EXPECT_EQ(plan::check_after(verify, back, spec),
              "product b reads back approved, wanted revoked");
    back.products = {{"a", approval::approved}, {"b", approval::pending}};
    EXPECT_FALSE(plan::check_after(verify, back, spec));
    back.products = {{"a", approval::pending}, {"b", approval::revoked}};
    EXPECT_EQ(plan::check_after(verify, back, spec),
              "product a reads back pending, wanted approved");

    plan::step scopes;
    scopes.kind = plan::step_kind::set_scopes;
    scopes.scopes = {"read"};
    credential sc = imported();
    EXPECT_EQ(plan::check_after(scopes, sc, spec), "scopes do not read back as set");
    sc.scopes = {"read"};
    EXPECT_FALSE(plan::check_after(scopes, sc, spec));

    plan::step fin;
    fin.kind = plan::step_kind::final_marker;
    fin.attributes = spec.attributes;
    credential f = imported();
    EXPECT_EQ(plan::check_after(fin, f, spec), "attributes do not read back as written");
    f.attributes = {k_final, {"tier", "gold"}};  // order does not matter
    EXPECT_FALSE(plan::check_after(fin, f, spec));
}

TEST(Steps, TheFinalMarkerGoesOnlyOnASuccessorNoWiderAndNoNarrower) {
    const auto spec = spec_of({{"a", approval::approved}, {"b", approval::revoked}}, {"read"});
    credential c = imported();
    c.scopes = {"read"};
    c.products = {{"a", approval::approved}, {"b", approval::pending}};
    EXPECT_FALSE(plan::check_before_final(c, spec));
    c.products = {{"a", approval::approved}, {"b", approval::revoked}, {"x", approval::pending}};
    EXPECT_FALSE(plan::check_before_final(c, spec)) << "a pending extra product grants nothing";
    c.products = {{"a", approval::approved}, {"b", approval::revoked}, {"x", approval::approved}};
    EXPECT_EQ(plan::check_before_final(c, spec),
              "product x is approved on the successor, not on the old key");
    c.products = {{"a", approval::approved}, {"b", approval::approved}};
    EXPECT_EQ(plan::check_before_final(c, spec), "product b reads back approved, wanted revoked");
    c.products = {{"b", approval::revoked}};
    EXPECT_EQ(plan::check_before_final(c, spec), "product a reads back unknown, wanted approved");
    c.products = {{"a", approval::approved}, {"b", approval::revoked}};
    c.scopes = {"read", "write"};
    EXPECT_EQ(plan::check_before_final(c, spec), "the scopes differ from the old key's");
    c.scopes = {};
    EXPECT_EQ(plan::check_before_final(c, spec), "the scopes differ from the old key's");
}

// ---- making a successor, retiring a key -----------------------------------

plan::action create_action() {
    plan::action a;
    a.kind = plan::action_kind::create_successor;
    a.key = "old";
    a.spec = spec_of({{"pay", approval::approved}, {"admin", approval::revoked}}, {"read"});
    return a;
}

std::vector<std::string> kinds(const std::vector<plan::step>& steps) {
    std::vector<std::string> out;
    for (const auto& st : steps) out.push_back(plan::to_string(st.kind));
    return out;
}

TEST(Making, EachMethodAndFlavorMakesItsWrites) {
    const auto act = create_action();
    using policy::rotation_method;
    EXPECT_EQ(kinds(plan::making_steps(act, rotation_method::import_key, false)),
              (std::vector<std::string>{"create key with the pending marker"}));
    EXPECT_EQ(kinds(plan::making_steps(act, rotation_method::import_key, true)),
              (std::vector<std::string>{"create key", "write pending marker"}));
    for (bool edge : {false, true})
        EXPECT_EQ(kinds(plan::making_steps(act, rotation_method::generate, edge)),
                  (std::vector<std::string>{"generate key", "write pending marker"}));
}

// What is on disk before each write (plan::step's guards), as one line per
// step: "<write> [record <audit record>] [journal first] [journal ends]".
std::vector<std::string> guards(const std::vector<plan::step>& steps) {
    std::vector<std::string> out;
    for (const auto& st : steps) {
        std::string d = plan::to_string(st.kind);
        if (st.records != plan::audited::none)
            d += std::string(" [record ") + plan::to_string(st.records) + "]";
        if (st.journal_first) d += " [journal first]";
        if (st.ends_journal) d += " [journal ends]";
        if (st.delivery_gate) d += " [delivery gate]";
        out.push_back(d);
    }
    return out;
}

// A key keyrotd can name and mark in one call is created under the intent of
// its `created` record; one it cannot (generate: Apigee names it; an Edge
// import: no attributes) under a journal entry first, then marked under the
// intent, and the entry goes with the marking. The crash windows: docs/rotation.md.
TEST(Making, EveryMakingWriteIsGuardedBeforeItRuns) {
    const auto act = create_action();
    using policy::rotation_method;
    EXPECT_EQ(guards(plan::making_steps(act, rotation_method::import_key, false)),
              (std::vector<std::string>{"create key with the pending marker [record created]"}));
    const std::vector<std::string> journaled_import{
        "create key [journal first]", "write pending marker [record created] [journal ends]"};
    EXPECT_EQ(guards(plan::making_steps(act, rotation_method::import_key, true)), journaled_import);
    for (bool edge : {false, true})
        EXPECT_EQ(
            guards(plan::making_steps(act, rotation_method::generate, edge)),
            (std::vector<std::string>{"generate key [journal first]",
                                      "write pending marker [record created] [journal ends]"}));
    // The marking of a made key (make_successor, journal recovery) is the same step.
    EXPECT_EQ(guards({plan::marking(credential{}, act.key)}),
              (std::vector<std::string>{"write pending marker [record created] [journal ends]"}));
}

// The write that makes a successor complete carries the `completed` record's
// intent; the others record nothing (they are repeated safely).
TEST(Steps, OnlyTheCompletingWriteIsRecorded) {
    const auto spec =
        spec_of({{"pay", approval::approved}, {"admin", approval::revoked}}, {"read"});
    credential s = imported();
    std::vector<plan::step> all;
    auto phase = plan::status_phase::open;
    for (int n = 0; n < 12; ++n) {
        const auto st = plan::next_completion_step(s, spec, phase);
        if (!st) break;
        all.push_back(*st);
        if (st->kind == plan::step_kind::set_product_status) phase = plan::status_phase::unverified;
        if (st->kind == plan::step_kind::verify_statuses) phase = plan::status_phase::verified;
        s = plan::expected_after(std::move(s), *st, approval::approved);
    }
    EXPECT_EQ(guards(all), (std::vector<std::string>{"add products", "set a product's status",
                                                     "read back product statuses", "set scopes",
                                                     "write final marker [record completed]"}));
    const auto one = plan::next_completion_step(
        imported(), spec_of({{"pay", approval::approved}}, {}), plan::status_phase::open);
    ASSERT_TRUE(one);
    EXPECT_EQ(guards({*one}),
              (std::vector<std::string>{"add products with the final marker [record completed]"}));
}

TEST(Making, TheXImportCarriesTheAttributesAndThePendingMarkerButNoScopes) {
    const auto st =
        plan::making_steps(create_action(), policy::rotation_method::import_key, false).at(0);
    EXPECT_EQ(st.attributes, (std::vector<attribute>{{"tier", "gold"}, k_pending}));
    EXPECT_TRUE(st.scopes.empty());  // a key without products may refuse them
    EXPECT_TRUE(st.products.empty());
    EXPECT_FALSE(st.completes);
}

TEST(Making, GenerateAsksForTheOldKeysProductsAndScopes) {
    const auto st =
        plan::making_steps(create_action(), policy::rotation_method::generate, false).at(0);
    EXPECT_EQ(st.products, (std::vector<std::string>{"pay", "admin"}));
    EXPECT_EQ(st.scopes, (std::vector<std::string>{"read"}));
    EXPECT_TRUE(st.attributes.empty());  // generate-key takes none for the key
}

TEST(Making, TheMarkingKeepsTheKeysOwnAttributes) {
    credential made;
    made.attributes = {{"team", "a"}};
    const auto st = plan::marking(made, "old");
    EXPECT_EQ(st.kind, plan::step_kind::mark_pending);
    EXPECT_EQ(st.attributes, (std::vector<attribute>{{"team", "a"}, k_pending}));
    made.attributes.push_back({k_marker_attribute, "someone-else"});
    EXPECT_EQ(plan::marking(made, "old").attributes,
              (std::vector<attribute>{{"team", "a"}, k_pending}));  // one marker, ours
}

// Each making step, as Apigee answers it, leads to a key the completion
// steps finish; an answer that does not show the step is refused.
TEST(Making, AnswersThatDoNotShowTheWriteAreRefused) {
    const auto act = create_action();
    const auto x = plan::making_steps(act, policy::rotation_method::import_key, false).at(0);
    credential made = plan::expected_after(credential{}, x, approval::approved);
    EXPECT_FALSE(plan::check_after(x, made));
    credential wrong = made;
    wrong.attributes = {{"tier", "gold"}, k_final};  // a final marker is not a pending one
    EXPECT_EQ(plan::check_after(x, wrong), "created key does not read back as a pending successor");
    wrong = made;
    wrong.status = approval::revoked;
    EXPECT_EQ(plan::check_after(x, wrong), "created key does not read back as a pending successor");
    EXPECT_EQ(run(made, act.spec, approval::approved),
              (std::vector<std::string>{"add products", "set a product's status revoke admin",
                                        "read back product statuses", "set scopes",
                                        "write final marker [completes]"}));

    const auto edge = plan::making_steps(act, policy::rotation_method::import_key, true);
    credential bare = plan::expected_after(credential{}, edge.at(0), approval::approved);
    EXPECT_FALSE(plan::check_after(edge.at(0), bare));
    credential granted = bare;
    granted.products = {{"pay", approval::approved}};
    EXPECT_EQ(plan::check_after(edge.at(0), granted),
              "created key does not read back as a new approved key without products");
    const auto mark = plan::marking(bare, act.key);
    credential marked = plan::expected_after(bare, mark, approval::approved);
    EXPECT_FALSE(plan::check_after(mark, marked));
    EXPECT_EQ(plan::check_after(mark, bare), "the pending marker does not read back as written");

    const auto gen = plan::making_steps(act, policy::rotation_method::generate, false);
    credential generated = plan::expected_after(credential{}, gen.at(0), approval::approved);
    EXPECT_EQ(generated.scopes, (std::vector<std::string>{"read"}));
    ASSERT_EQ(generated.products.size(), 2u);
    EXPECT_FALSE(plan::check_after(gen.at(0), generated));
    EXPECT_EQ(plan::check_after(gen.at(0), marked),
              "the generated key already carries a lineage marker");
}

TEST(Retiring, RevokeAndDeleteAreOneWriteEach) {
    plan::action act;
    act.kind = plan::action_kind::revoke_key;
    const auto revoking = plan::retire_step(act);
    EXPECT_EQ(revoking.kind, plan::step_kind::revoke);
    credential k = imported();
    const credential after = plan::expected_after(k, revoking, approval::unknown);
    EXPECT_EQ(after.status, approval::revoked);
    EXPECT_FALSE(plan::check_after(revoking, after));
    EXPECT_EQ(plan::check_after(revoking, k), "the key does not read back revoked");

    act.kind = plan::action_kind::delete_key;
    const auto removing = plan::retire_step(act);
    EXPECT_EQ(removing.kind, plan::step_kind::remove);
    EXPECT_EQ(plan::check_after(removing, k), "the key is still there");  // 404 shows it gone
}

// An old key waits for the delivery gate (every target holds its successor);
// a duplicate successor (it `replaces` another) was never given to anyone.
TEST(Retiring, OnlyAnOldKeysRevocationWaitsForDelivery) {
    plan::action act;
    act.kind = plan::action_kind::revoke_key;
    act.key = "old";
    EXPECT_EQ(guards({plan::retire_step(act)}),
              (std::vector<std::string>{"revoke key [record revoked] [delivery gate]"}));
    act.replaces = "first";  // a duplicate successor of `first`
    EXPECT_EQ(guards({plan::retire_step(act)}),
              (std::vector<std::string>{"revoke key [record revoked]"}));
    act.kind = plan::action_kind::delete_key;
    act.replaces.clear();
    EXPECT_EQ(guards({plan::retire_step(act)}),
              (std::vector<std::string>{"delete key [record deleted]"}));
}

TEST(Retiring, AnOldKeyIsRevokedOnlyWhileItsSuccessorIsValid) {
    constexpr sys_ms now{milliseconds{1'800'000'000'000}};
    credential s = imported();
    const credential old = s;  // no approved product: validity alone decides
    s.expires_at = now + k_day;
    EXPECT_FALSE(plan::check_revocable(s, "s1", old, now));
    s.expires_at = now - milliseconds(1);
    EXPECT_EQ(plan::check_revocable(s, "s1", old, now),
              "successor s1 is not valid now; not revoked");
    s.expires_at = time_or_never::never();
    EXPECT_FALSE(plan::check_revocable(s, "s1", old, now));
    s.status = approval::revoked;  // someone revoked the successor
    EXPECT_EQ(plan::check_revocable(s, "s1", old, now),
              "successor s1 is not valid now; not revoked");
}

// At the moment of the revocation, as Apigee has the successor then: someone
// revoked one of its products (or removed it) since the inventory was read.
TEST(Retiring, AnOldKeyIsRevokedOnlyWhileItsSuccessorHoldsItsApprovedProducts) {
    constexpr sys_ms now{milliseconds{1'800'000'000'000}};
    credential old = imported();
    old.products = {{"payments", approval::approved}, {"reports", approval::revoked}};
    credential s = old;
    s.expires_at = now + k_day;
    EXPECT_FALSE(plan::check_revocable(s, "s1", old, now));
    s.products = {{"payments", approval::approved}};  // a revoked one it lacks: no matter
    EXPECT_FALSE(plan::check_revocable(s, "s1", old, now));
    const std::string drift =
        "successor s1 no longer has every product the old key has approved; not revoked";
    s.products = {{"payments", approval::revoked}, {"reports", approval::revoked}};
    EXPECT_EQ(plan::check_revocable(s, "s1", old, now), drift);
    s.products = {{"payments", approval::pending}};
    EXPECT_EQ(plan::check_revocable(s, "s1", old, now), drift);
    s.products.clear();
    EXPECT_EQ(plan::check_revocable(s, "s1", old, now), drift);
}

}  // namespace

}  // namespace steps_test
