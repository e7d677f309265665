// How a successor is completed, step by step (plan/steps.hpp): the mirroring
// rule, the order of the steps for each shape of key, and what each step's
// answer must show. Apigee is modelled by expected_after: it answers each
// step as asked, an added product coming out with the status given.
#include "plan/steps.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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
                      mirror_row{pending, revoked, leave},
                      // an unknown status is never approved
                      mirror_row{unknown, approved, revoke}, mirror_row{unknown, pending, leave},
                      mirror_row{unknown, unknown, leave}));

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

}  // namespace
