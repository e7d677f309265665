// Helpers the executor's parts share (executor.cpp: passes; make.cpp: the
// making steps and journal recovery; import.cpp, generate.cpp: the two ways
// to make a key; complete.cpp: completion; retire.cpp: revoke, deliver,
// delete; audit_trail.cpp: intents and records). Internal to lib/exec.
#pragma once

#include <algorithm>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/model.hpp"
#include "common/result.hpp"
#include "exec/executor.hpp"

namespace keyrot::exec::detail {

inline const credential* find_key(const app& a, const std::string& fp) {
    for (const auto& c : a.credentials)
        if (c.fingerprint == fp) return &c;
    return nullptr;
}

template <typename T>
inline std::vector<T> sorted(std::vector<T> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        if constexpr (std::is_same_v<T, attribute>)
            return std::tie(a.name, a.value) < std::tie(b.name, b.value);
        else
            return a < b;
    });
    return v;
}

// Whether a failed write may have taken effect, so that reading back is the
// only way to know (docs/apigee-api.md, trap 4).
inline bool maybe_applied(const error& e) {
    return e.what == error::kind::network || (e.what == error::kind::http && e.status >= 500);
}

// A `created` record: why, and when the new key expires.
inline std::string created_detail(const plan::action& act) {
    return act.reason + "; the new key expires " + format_time(act.expires_at);
}

// A re-read app replaces the snapshot; what only the org list and the developer
// list tell (organisation, developer email and status) is kept. `read_at`:
// when it was read (planned_app::read_at).
inline void adopt(planned_app& pa, app fresh, sys_ms read_at) {
    fresh.organization = pa.snapshot.organization;
    fresh.developer_email = pa.snapshot.developer_email;
    fresh.developer_status = pa.snapshot.developer_status;
    pa.snapshot = std::move(fresh);
    pa.read_at = read_at;
}

// How long a snapshot is trusted to show a successor as Apigee has it: a
// revocation within this of the listing (or a re-read) checks the successor
// in the snapshot instead of reading it again. A person who revokes the
// successor inside this window is seen by the next pass, which plans a new one.
inline constexpr milliseconds k_fresh_snapshot = std::chrono::minutes(1);

// The keys of an app keyrotd does not rotate that still work and will stop
// (approved, in an approved app, with an expiry still ahead): key.expiring's
// candidates. Keys that never expire are left out, to keep the summary small.
inline void add_unmatched(const app& a, sys_ms now, std::vector<unmatched_key>& out) {
    if (a.status == approval::revoked) return;  // none of its keys works
    for (const auto& c : a.credentials) {
        if (c.status != approval::approved || c.expires_at.is_never() || c.expires_at <= now)
            continue;
        out.push_back({a.app_group.empty() ? a.developer_email : std::string(), a.app_group, a.name,
                       c.fingerprint, c.issued_at, c.expires_at, a.developer_status});
    }
}

}  // namespace keyrot::exec::detail
