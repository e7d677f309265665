// Internal: the faults the tests switch on with /__emulator/faults: latency,
// 429/503 decided before a /v1 call, a connection dropped after a write took
// effect, hostile answers about one app, and "generate wipes the app" (read by
// app_post). Faults hit /v1 only.
#pragma once

#include <optional>

#include "state.hpp"
#include "util.hpp"

namespace keyrot::emulator {

// 429 or 503 (with Retry-After) for a /v1 call about to run, by p429/p503.
// Draws from the fault RNG on every call, fault or not.
std::optional<response> injected_failure(state& st);
// Whether a successful write's answer is lost (pDropAfterWrite).
bool drop_after_write(state& st);
// The body for an app list page (`list`) or one app, corrupted by the hostile
// fault when it is on and the answer names its app.
response hostile_response(const faults& f, json j, bool list);

// GET and POST /__emulator/faults.
response get_faults(state& st, const request& req);
response post_faults(state& st, const request& req);

}  // namespace keyrot::emulator
