// What the token sources share (internal to lib/auth): reading an OAuth token
// answer into an Authorization header, and caching that header until shortly
// before it expires with one renewal in flight at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "common/time.hpp"

namespace keyrot::auth::detail {

// A server's message for an error text: control characters blanked, at most
// 200 characters.
std::string clip(std::string s);

error auth_error(std::string message);

struct bearer {
    secret header;  // "Bearer <access_token>"
    std::chrono::seconds expires_in{0};
};

// {"access_token", "token_type" (Bearer, any case, or absent), "expires_in"}
// (`default_expires_in` when absent). The token only when a header can hold
// it. Wipes the token from `doc`; errors name `who`, never the token.
result<bearer> read_bearer(nlohmann::json& doc, std::chrono::seconds default_expires_in,
                           const std::string& who);

// The header, cached until shortly before it expires. Concurrent callers wait
// for the one renewal in flight instead of each renewing.
class token_cache {
  public:
    using renewal = std::function<net::awaitable<result<secret>>()>;

    // The cached header while `clock()` is before its refresh time; else what
    // `renew` answers (it calls store() on success).
    net::awaitable<result<secret>> get(net::any_io_executor ex, std::function<sys_ms()> clock,
                                       renewal renew);
    // Keeps `header` from `now` on, renewed ahead of expiry: 5 minutes before,
    // or a tenth of a short lifetime (at least a second, so a token that lives
    // a few seconds is not used to its last moment). Returns a copy.
    secret store(secret header, sys_ms now, std::chrono::seconds expires_in);
    // After a 401: the next get() renews.
    void invalidate();

  private:
    secret header_;
    std::optional<sys_ms> refresh_at_;  // empty: renew on the next get()
    bool renewing_ = false;
    std::vector<net::steady_timer*> waiters_;
};

}  // namespace keyrot::auth::detail
