// Consumer keys and secrets for `method: import`, from OpenSSL's CSPRNG.
#pragma once

#include <cstddef>

#include "common/secret.hpp"

namespace keyrot::exec {

// `length` characters of [A-Za-z0-9], uniformly drawn (rejection sampling).
// Throws std::runtime_error if the CSPRNG fails (a bug or a broken system).
secret random_token(std::size_t length = 48);

}  // namespace keyrot::exec
