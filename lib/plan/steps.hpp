// How a successor is completed, one write at a time: given the successor as
// Apigee last showed it and what it must hold (successor_spec), the next step.
// Pure: lib/exec runs the steps and checks each answer with check_after();
// tests/unit/simulation_test.cpp runs the same steps against its model of
// Apigee. The rules (docs/rotation.md, "How a successor is built"):
//
// 1. Products the successor lacks are added, with the key's complete
//    attribute list riding along (an update may replace the attributes with
//    those sent). When every product is approved on the old key and there are
//    no scopes, nothing can come out wider than the old key: the final marker
//    goes in the same update.
// 2. Each product's status mirrors the old key's, never wider (trap 3): a
//    `pending` the API cannot set becomes `revoked`, an unknown status is
//    never approved. One product per step; then one read back of them all.
// 3. Scopes, replaced (the attribute list rides along).
// 4. Last, the final marker with the old key's attributes: now it is complete.
//
// Before its completion a successor is made in one or two writes, as the
// method and the flavor allow (making_steps): an import on Apigee X is one
// keys/create carrying the old key's attributes and the pending marker; an
// import on Apigee Edge is a keys/create (it takes no attributes) and then
// the pending marker; a generated key is the app's generate-key call and then
// the pending marker. A key is retired in one write (retire_step): revoked,
// or deleted.
//
// Each step also says what must be on disk, or true, before its write, so
// that a crash or a lost answer is recovered and never repeated blindly
// (docs/rotation.md, the crash windows); lib/exec does what the step says:
// - `records`: the audit record the write makes true. Its intent is written
//   first and the record once the answer is checked; a crash in between is
//   replayed from the intent (never lost, never twice).
// - `journal_first`: a write that makes a key keyrotd cannot name in advance
//   (generate) or cannot mark in the same call (an import on Edge) is
//   preceded by a journal entry naming the app's keys (and the key an import
//   makes): the next pass finds a key made without a marker and marks it.
//   `ends_journal`: the entry goes once this step's answer is checked.
// - `delivery_gate`: an old key is revoked only once every delivery target
//   holds its successor, verified (docs/delivery.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/model.hpp"
#include "plan/planner.hpp"
#include "policy/config.hpp"

namespace keyrot::plan {

enum class step_kind {
    add_products_final,  // update key: add `products`; attributes := `attributes` (final)
    add_products,        // update key: add `products`; attributes := the key's own (kept)
    set_product_status,  // `products[0]` approved (`approve`) or revoked
    verify_statuses,     // read the key back: every product as the spec wants it
    set_scopes,          // replace the scopes with `scopes`; attributes ride along
    final_marker,        // update key: attributes := `attributes` (the final marker)
    // Making a successor of `replaces` (making_steps):
    create_pending,  // keys/create with `attributes` (the pending marker among them)
    create_bare,     // keys/create with nothing but the key and secret (Apigee Edge)
    generate,        // the app's generate-key call (the old key's products and scopes)
    mark_pending,    // update key: attributes := `attributes` (theirs + the pending marker)
    // Retiring a key (retire_step):
    revoke,  // set the key's status to revoked
    remove,  // delete the key
};
const char* to_string(step_kind k);

// The audit record a step's write makes true (lib/exec: audit_action).
enum class audited { none, created, completed, revoked, deleted };
const char* to_string(audited a);

struct step {
    step_kind kind = step_kind::final_marker;
    std::vector<std::string> products;
    bool approve = false;
    std::vector<std::string> scopes;
    std::vector<attribute> attributes;  // the complete list sent
    // This step makes the successor complete (the `completed` audit record
    // brackets it): add_products_final and final_marker.
    bool completes = false;
    std::string replaces;  // making steps: the old key the successor replaces
    // Around the write (see the top of this file).
    audited records = audited::none;
    bool journal_first = false;
    bool ends_journal = false;
    bool delivery_gate = false;
};

// `attrs` with keyrotd's lineage marker set to `value` (added when absent).
std::vector<attribute> with_marker(std::vector<attribute> attrs, const std::string& value);

// The writes that make a successor for `act` (a create_successor), in order;
// its completion (next_completion_step) follows. A mark_pending step is
// built for the new key by marking() once it exists.
std::vector<step> making_steps(const action& act, policy::rotation_method method, bool edge);

// The mark_pending step for new key `s`: its own attributes and the pending
// marker of `replaces` (an update may replace the attributes with those sent).
step marking(const credential& s, const std::string& replaces);

// The write that retires a key: revoke for a revoke_key, remove for a delete_key.
step retire_step(const action& act);

// Before old key `old` is revoked, its successor (`s`, as Apigee has it at
// `now`) must be valid and still hold every product `old` has approved,
// approved: the reason when it does not.
std::optional<std::string> check_revocable(const credential& s, const std::string& successor_fp,
                                           const credential& old, sys_ms now);

// What product status `want` (the old key's) makes of `actual` (the
// successor's; unknown when it lacks the product). Never wider.
enum class status_change { leave, approve, revoke };
const char* to_string(status_change c);
status_change mirror(approval want, approval actual);

// Where the statuses stand: `open` (mirror them), `unverified` (a status
// was set since the key was last read: the status calls answer 204 without
// the key, so read it back before going on), `verified` (read back and
// checked: never set again, even where Apigee kept `pending` for a revoke).
enum class status_phase { open, unverified, verified };

// The next step for successor `s` towards `spec`; nullopt when it is complete.
std::optional<step> next_completion_step(const credential& s, const successor_spec& spec,
                                         status_phase statuses);

// What `s` should look like once `st` took effect, for the parts `st` decides
// (statuses it sets, scopes, attributes; an added product's status is
// Apigee's to choose: `added_status`). A made key is approved; a removed key
// is gone (`s` comes back as it was).
credential expected_after(credential s, const step& st, approval added_status);

// Whether `answer` (Apigee's answer to `st`, or the key read back after it)
// shows the step took effect; the reason when it does not. For
// verify_statuses, `answer` is the key read back; for remove, a key read
// back at all is the reason (a 404 shows the deletion took effect).
std::optional<std::string> check_after(const step& st, const credential& answer,
                                       const successor_spec& spec);
// The same for the steps that need no spec: making and retiring steps.
std::optional<std::string> check_after(const step& st, const credential& answer);

// Before the final marker goes on successor `s` (Apigee's last answer):
// every product as the old key has it, none approved that the old key has
// not approved, the same scopes; the reason when not. It holds whenever the
// steps above ran as planned: it guards the marker against a wrong step
// table (mirror()) when the statuses were read, not set, in this pass.
std::optional<std::string> check_before_final(const credential& s, const successor_spec& spec);

}  // namespace keyrot::plan
