// Internal: the seed format (docs/emulator.md): loading one (--seed, POST
// /__emulator/seed) and dumping the whole state in it (GET /__emulator/state).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "state.hpp"

namespace keyrot::emulator {

// Orgs in the seed replace orgs of the same name. Throws std::runtime_error
// on a bad seed (an org that fails is not loaded, earlier ones stay).
void load_seed(state& st, const nlohmann::json& seed);
nlohmann::json dump_state(const state& st);

}  // namespace keyrot::emulator
