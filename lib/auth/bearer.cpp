#include "auth/bearer.hpp"

#include <algorithm>
#include <chrono>

namespace keyrot::auth::detail {

std::string clip(std::string s) {
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (s.size() > 200) s.resize(200);
    return s;
}

error auth_error(std::string message) {
    error e;
    e.what = error::kind::auth;
    e.message = std::move(message);
    return e;
}

result<bearer> read_bearer(nlohmann::json& doc, std::chrono::seconds default_expires_in,
                           const std::string& who) {
    auto str = [&doc](const char* k) -> std::string* {
        if (!doc.is_object()) return nullptr;
        auto it = doc.find(k);
        return it != doc.end() && it->is_string() ? &it->get_ref<std::string&>() : nullptr;
    };
    std::string* access = str("access_token");
    if (access == nullptr || access->empty())
        return auth_error(who + ": answer has no access_token");
    if (std::string* type = str("token_type");
        type != nullptr && !type->empty() && *type != "Bearer" && *type != "bearer") {
        cleanse(*access);
        return auth_error(who + ": token_type is not Bearer");
    }
    const bool safe = std::all_of(access->begin(), access->end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
    });
    if (!safe) {
        cleanse(*access);
        return auth_error(who + ": access_token holds characters a header cannot");
    }
    bearer b;
    b.header = secret("Bearer " + *access);
    cleanse(*access);
    b.expires_in = default_expires_in;
    if (auto e = doc.find("expires_in"); e != doc.end() && e->is_number_integer())
        b.expires_in = std::chrono::seconds(std::max<std::int64_t>(1, e->get<std::int64_t>()));
    return b;
}

net::awaitable<result<secret>> token_cache::get(net::any_io_executor ex,
                                                std::function<sys_ms()> clock, renewal renew) {
    while (renewing_) {
        net::steady_timer t(ex, std::chrono::steady_clock::time_point::max());
        waiters_.push_back(&t);
        boost::system::error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (!header_.empty() && refresh_at_ && clock() < *refresh_at_) co_return header_;
    renewing_ = true;
    auto r = co_await renew();
    renewing_ = false;
    for (auto* w : waiters_) w->cancel();
    waiters_.clear();
    co_return r;
}

secret token_cache::store(secret header, sys_ms now, std::chrono::seconds expires_in) {
    header_ = std::move(header);
    using std::chrono::seconds;
    const seconds margin = std::min(seconds(300), std::max(seconds(1), expires_in / 10));
    refresh_at_ = now + expires_in - margin;
    return header_;
}

void token_cache::invalidate() {
    header_.clear();
    refresh_at_.reset();
}

}  // namespace keyrot::auth::detail
