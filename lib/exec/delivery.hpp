// Delivery of new keys to the services that use them (docs/delivery.md), as
// the executor sees it: an interface lib/deliver's targets are wired behind.
//
// Contract:
// - deliver() makes every target of the app hold `current` (and `previous`,
//   the key it replaces, during the overlap) and verifies it by reading it
//   back; idempotent (a target already holding it is only verified). An error
//   names the target, never a key or secret.
// - The gate: the executor revokes an old key only after deliver() succeeded
//   for its successor in that same pass, right before the revocation. A
//   failure holds the revocation (reported as a failed revoke whose detail
//   starts "revocation held"); Apigee still ends the old key at its expiry.
// - After a completion the executor delivers at once too (the services get the
//   key at the start of the overlap); a failure there is reported and retried
//   by the gate, it does not undo the completion.
// - revoked() tells the targets the previous key is gone (drop it); its
//   failure is reported, nothing is held.
// - Secrets live in memory only (the secret type); the executor takes them
//   from the pass's listing or a write's answer (GET key when one lacks it).
#pragma once

#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "common/model.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "policy/config.hpp"

namespace keyrot::exec {

struct delivered_key {
    std::string fingerprint;
    secret consumer_key;
    secret consumer_secret;
    time_or_never expires_at;
};

// What one target of an app holds (inspect()): read only, fingerprints only.
struct target_state {
    std::string target;    // "kubernetesSecret team-a/apigee-fleet"
    bool present = false;  // the place exists and is keyrotd's
    std::string key;       // fingerprint of the current key it holds ("": none)
    std::string previous;  // fingerprint of the previous key it holds ("": none)
    std::string error;     // it could not be read, or is not keyrotd's (then the rest is empty)
    std::string skipped;   // the app has no such target: why (an attribute it lacks)
};

class delivery {
  public:
    virtual ~delivery() = default;
    // True when the app's policy names delivery targets.
    virtual bool wants(const app& a, const policy::policy& p) const = 0;
    virtual net::awaitable<result<void>> deliver(const app& a, const policy::policy& p,
                                                 const delivered_key& current,
                                                 const delivered_key* previous) = 0;
    virtual net::awaitable<result<void>> revoked(const app& a, const policy::policy& p,
                                                 const delivered_key& current) = 0;
    // What every target of the app holds now, writing nothing (`plan`,
    // `inventory`). An error for the whole app: its targets cannot be named
    // (an attribute value outside the allow-list, a changed deliver section).
    virtual net::awaitable<result<std::vector<target_state>>> inspect(const app& a,
                                                                      const policy::policy& p) = 0;
};

}  // namespace keyrot::exec
