// The forecast (`keyrotd plan --within`): what will fall due for one app
// between `now` and `until`, from the same rules that plan a pass. Pure: no
// I/O, no clock.
//
// Contract:
// - forecast_app() replays the planner: it plans at `now`, applies the
//   actions to a copy of the app as a pass would (a rotation makes a
//   complete successor at once, a revocation revokes, a deletion removes),
//   then plans again at the plan's next wake-up, until nothing changes before
//   `until`. So a rotation due in 3 days also shows its revocation an overlap
//   later. Actions due at `now` are left out (the plan lists them): only
//   what falls due after `now`, up to and including `until`, in time order.
// - A key that stops working by expiring (not revoked first) in the window
//   gets an `expire` item, also for apps no policy rotates (`p` nullptr) and
//   apps keyrotd leaves alone.
// - A successor that does not exist yet has no fingerprint: its items name it
//   "(successor of FP)" in `key` ("(successor 2 of FP)" for the next
//   generation), FP being the real key it descends from.
// - A report (drift, last valid key, no room for the marker) appears once,
//   at the first moment it holds after `now`.
// - Bounded: at most `max_steps` planner runs per app.
// - Each item says how many Apigee calls its action costs when every call
//   succeeds the first time (apigee_calls()): an upper bound in that case,
//   since a product status is counted as a call whether or not Apigee's
//   approval type already gives it. List reads are per pass, not per item
//   (pass_calls()).
#pragma once

#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/model.hpp"
#include "plan/planner.hpp"
#include "policy/config.hpp"

namespace keyrot::plan {

enum class forecast_kind { rotate, complete, revoke, remove, expire, report };
// "create" (rotate: create and complete a successor), "complete", "revoke", "delete",
// "expire", "report": the names `plan` uses.
const char* to_string(forecast_kind k);

struct forecast_item {
    sys_ms at{};
    forecast_kind kind = forecast_kind::report;
    std::string key;           // the key acted on (rotate: the old key), or "(successor of FP)"
    std::string replaces;      // the key `key` replaces, when known
    time_or_never expires_at;  // rotate: the successor's expiry
    std::string reason;
    int apigee_calls = 0;  // requests its action makes when all goes well (0: expire, report)
};

// The Apigee requests one action makes when every call succeeds at once
// (docs/performance.md, "Calls per rotation"): for a rotation, the successor's
// create and completion as lib/exec makes them for `spec` (the old key's
// products, statuses and scopes) with `method`; for a revocation, the
// successor's check, the write and its read-back (delivery adds none: the
// secrets come from the pass's listing, docs/delivery.md); for a deletion,
// the delete and its read-back.
// `edge`: Apigee Edge, whose keys/create takes no attributes (an import
// marks its key in a second call).
int apigee_calls(forecast_kind kind, const successor_spec& spec, policy::rotation_method method,
                 bool edge);

// The list reads of one full pass over `apps` apps and `developers`
// developers, with pages of `page_size` (the org app list with approved keys;
// with `revoked` also the list with revoked keys, which only apps that have
// some come back in: counted as a second full listing, an upper bound).
int pass_calls(long apps, long developers, int page_size, bool revoked);

std::vector<forecast_item> forecast_app(const app& a, const policy::policy* p, sys_ms now,
                                        sys_ms until, bool edge, int max_steps = 200);

}  // namespace keyrot::plan
