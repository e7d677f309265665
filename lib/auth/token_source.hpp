// Token sources: where the Authorization header for Apigee comes from.
//
// authorization_header() returns the full header value ("Bearer x", "Basic …"),
// or an empty secret when no header is to be sent (method none). Failures are
// errors of kind auth whose messages name the variable or file, never a token.
// invalidate() is called after a 401: the next call must not return the cached
// value without re-reading its source.
#pragma once

#include <memory>
#include <string>
#include <utility>  // before Asio: see common/asio.hpp

#include "common/asio.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"

namespace keyrot::policy {
struct auth_config;
}
namespace keyrot::http {
class client;
}

namespace keyrot::auth {

class token_source {
  public:
    virtual ~token_source() = default;
    virtual net::awaitable<result<secret>> authorization_header() = 0;
    virtual void invalidate() = 0;
    virtual std::string describe() const = 0;  // "token-env API_TOKEN": for start-up logs
};

// none: no header.
std::unique_ptr<token_source> make_none();
// token-env: "Bearer " + $VAR (trimmed), read on every call.
std::unique_ptr<token_source> make_token_env(std::string var);
// token-file: "Bearer " + file content (trimmed); re-read when its mtime or size
// changes, or after invalidate().
std::unique_ptr<token_source> make_token_file(std::string path);
// basic: "Basic " + base64($USER_VAR:$PASSWORD_VAR), read on every call.
std::unique_ptr<token_source> make_basic(std::string user_var, std::string password_var);

// Builds the source an auth_config names. Errors (kind config) for unknown
// methods and missing fields, so start-up fails loudly rather than running
// without credentials. `google` reads a service-account key file (auth `path`,
// else $GOOGLE_APPLICATION_CREDENTIALS) and mints tokens at its token_uri through
// a client made like `for_google` (same CA file, timeouts, proxy). The GCE
// metadata server is not supported (it is plain HTTP).
result<std::unique_ptr<token_source>> make_token_source(const policy::auth_config& cfg,
                                                        http::client* for_google);

// google with a service-account key file (JWT bearer grant, RS256); the key is
// loaded and checked here, tokens are minted on first use and cached until
// shortly before they expire, or until invalidate().
result<std::unique_ptr<token_source>> make_google(const std::string& key_file,
                                                  http::client* for_google);

// RFC 4648 base64 (with padding), for Basic.
std::string base64(std::string_view in);

}  // namespace keyrot::auth
