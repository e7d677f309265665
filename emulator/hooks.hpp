// Internal: the /__emulator/ test hooks (docs/emulator.md), a table of method
// + path -> handler. No auth, no faults, not counted as requests.
#pragma once

#include <string>

#include "state.hpp"
#include "util.hpp"

namespace keyrot::emulator {

// `path`: the request's path as sent (not decoded), "/__emulator…".
response serve_hook(state& st, const request& req, const std::string& path);
// A hook's JSON body: {} when empty; 400 unless it is an object.
json hook_body(const request& req);

}  // namespace keyrot::emulator
