// Token sources: where the Authorization header for Apigee comes from.
//
// authorization_header() returns the full header value ("Bearer x", "Basic …"),
// or an empty secret when no header is to be sent (method none). Failures are
// errors of kind auth whose messages name the variable or file, never a token.
// invalidate() is called after a 401: the next call must not return the cached
// value without re-reading its source.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>  // before Asio: see common/asio.hpp

#include "common/asio.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "common/time.hpp"

namespace keyrot::policy {
struct auth_config;
}
namespace keyrot::http {
class client;
class transport;
}  // namespace keyrot::http

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
// without credentials. `google` resolves Application Default Credentials as
// find_google_credentials() says; a key file mints tokens at its token_uri
// through a client made like `for_google` (same CA file, timeouts, proxy).
result<std::unique_ptr<token_source>> make_token_source(const policy::auth_config& cfg,
                                                        http::client* for_google);

// Where `google` takes its credentials from, first match wins (Google's
// Application Default Credentials, plus systemd's credential directory):
//   1. auth.path (a service-account key file);
//   2. $GOOGLE_APPLICATION_CREDENTIALS (must name a readable file when set);
//   3. $CREDENTIALS_DIRECTORY/sa-key.json, when that file exists (systemd
//      LoadCredential=sa-key.json:…, systemd/keyrotd.service.d/credentials.conf);
//   4. the GCE/GKE metadata server: $GCE_METADATA_HOST (host[:port]) or
//      169.254.169.254, plain HTTP (the one exception, see docs/http.md).
struct google_credentials {
    std::string key_file;       // empty: the metadata server
    std::string origin;         // which rule matched, for start-up logs and errors
    std::string metadata_host;  // host[:port], when key_file is empty
};
using env_fn = std::function<const char*(const char*)>;
result<google_credentials> find_google_credentials(const std::string& configured_path,
                                                   const env_fn& env);

inline constexpr std::string_view k_metadata_token_path =
    "/computeMetadata/v1/instance/service-accounts/default/token";
inline constexpr std::string_view k_default_metadata_host = "169.254.169.254";

// google with a service-account key file (JWT bearer grant, RS256); the key is
// loaded and checked here, tokens are minted on first use and cached until
// shortly before they expire, or until invalidate(). `origin_note` says where
// the file was found (describe()).
result<std::unique_ptr<token_source>> make_google(const std::string& key_file,
                                                  http::client* for_google,
                                                  const std::string& origin_note = "auth.path");

// google through the metadata server at `host_port` (host[:port]): GET
// k_metadata_token_path with Metadata-Flavor: Google over plain HTTP on a client
// of its own (never a proxy, never an Authorization header), cached like a
// key-file token. `for_google` gives the executor and user agent. The host must
// be an IP literal or resolve to a loopback or link-local address.
result<std::unique_ptr<token_source>> make_google_metadata(const std::string& host_port,
                                                           http::client* for_google);

// edge-oauth (flavor edge): Apigee Edge's login server at cfg.token_url
// (default policy::k_edge_login_url), on a client of its own made like
// `for_login` (same CA file and timeouts). Password grant (user or $userEnv,
// the password read from passwordFile at each grant), with
// `?mfa_token=<TOTP of mfaSeedFile>` when a seed is configured; or a SAML
// zone's passcode (passcodeFile, never sent twice). Tokens cached until
// shortly before expires_in; renewed with the refresh token, and by a fresh
// grant when the refresh is refused (401/400). invalidate() (a 401 on a
// management call) makes the next call renew.
result<std::unique_ptr<token_source>> make_edge_oauth(const policy::auth_config& cfg,
                                                      http::client* for_login);
// The same over any transport to the login server (`target`: the token path),
// with a clock (the system's when empty): for tests.
std::unique_ptr<token_source> make_edge_oauth_over(std::unique_ptr<http::transport> login,
                                                   net::any_io_executor ex, std::string target,
                                                   const policy::auth_config& cfg,
                                                   std::function<sys_ms()> clock = {});

// RFC 4648 base64 (with padding), for Basic.
std::string base64(std::string_view in);

}  // namespace keyrot::auth
