// keyrot::deliver: where an app's new consumer key goes, so that the services
// using it read it before the old key is revoked (docs/delivery.md).
//
// Contract:
// - A target is bound to one app and one place (a Kubernetes Secret, a Vault
//   KV v2 entry, a Secret Manager secret); target_factory (factory.hpp) makes
//   them from the policy's `deliver:` section.
// - put(p) writes p.current and, during the overlap, p.previous; it is
//   level-triggered: when the place already holds exactly that, it writes
//   nothing and returns the receipt of what is there. A place keyrotd does not
//   own (no managed-by label / owner metadata) is refused, never written.
//   Conflicts (409, check-and-set) are re-read and retried a bounded number of
//   times, never overwritten blindly.
// - verify(r) reads the place back and succeeds only when it holds the key of
//   r (the gate: the old key may be revoked only after every target of its app
//   verified).
// - drop_previous(r), after the revocation: removes the previous* fields (or
//   disables older versions); refused when the place no longer holds r's key.
// - inspect() reads what the place holds, writing nothing (`plan`,
//   `inventory`): the fingerprints of its current and previous key, or
//   `present == false` when there is no such place yet; a place keyrotd does
//   not own is an error (code NOT_OWNED), as for put().
// - Key material lives in memory only (the `secret` type); request and answer
//   bodies that held it are wiped. Errors, describe() and receipts name the
//   target and key fingerprints, never a key, secret or token.
// - One thread runs the io_context; a target's http::client and token
//   providers must outlive every call.
#pragma once

#include <optional>
#include <string>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"

namespace keyrot::deliver {

struct key_material {
    secret consumer_key;
    secret consumer_secret;
    time_or_never expires_at;  // never: does not expire
};

struct payload {
    key_material current;
    std::optional<key_material> previous;  // during the overlap

    // Fingerprint (common/fingerprint.hpp) of current.consumer_key, for logs.
    std::string fingerprint() const;
    std::string previous_fingerprint() const;  // "" without previous
};

// What put() wrote, enough for verify() and drop_previous(). No key material:
// safe to log (digest is a SHA-256 over 48+ random characters, like a fingerprint).
struct receipt {
    std::string target;        // describe() of the target
    std::string key;           // fingerprint of the key written as current
    std::string version;       // resourceVersion | Vault version | Secret Manager version number
    std::string digest;        // hex SHA-256 of the fields written (Kubernetes, Vault)
    std::uint32_t crc32c = 0;  // of the payload (Secret Manager)
    bool has_previous = false;
    bool written = false;  // false: the place already held it (nothing sent)
};

// What a place holds, read only. No key material: fingerprints.
struct holding {
    bool present = false;  // the place exists (and is keyrotd's)
    std::string key;       // fingerprint of the current consumer key ("": none)
    std::string previous;  // fingerprint of the previous one ("": none)
    std::string version;   // resourceVersion | Vault version | Secret Manager version
};

class target {
  public:
    virtual ~target() = default;
    virtual net::awaitable<result<receipt>> put(const payload& p) = 0;
    virtual net::awaitable<result<void>> verify(const receipt& r) = 0;
    virtual net::awaitable<result<void>> drop_previous(const receipt& r) = 0;
    // "kubernetesSecret team-a/apigee-fleet": kind and place, never a value.
    virtual std::string describe() const = 0;
    virtual net::awaitable<result<holding>> inspect() = 0;
};

}  // namespace keyrot::deliver
