#include "notify/webhook_sink.hpp"

#include <chrono>

#include "http/rules.hpp"

namespace keyrot::notify {

std::pair<std::string, std::string> split_url(const std::string& url) {
    const auto scheme = url.find("://");
    const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash == std::string::npos) return {url, "/"};
    return {url.substr(0, slash), url.substr(slash)};
}

result<std::unique_ptr<webhook_sink>> webhook_sink::create(
    net::any_io_executor ex, const webhook_config& c, std::function<sys_ms()> clock,
    const std::function<void(http::options&)>& tune) {
    auto keys = signer::load(c.secret_files, c.ed25519_key_files);
    if (!keys) {
        error e = keys.err();
        e.message = "notify webhook " + c.name + ": " + e.message;
        return e;
    }
    return create(std::move(ex), c, std::move(keys.value()), std::move(clock), tune);
}

result<std::unique_ptr<webhook_sink>> webhook_sink::create(
    net::any_io_executor ex, const webhook_config& c, signer keys, std::function<sys_ms()> clock,
    const std::function<void(http::options&)>& tune) {
    auto fail = [&](std::string m) {
        error e;
        e.what = error::kind::config;
        e.message = "notify webhook " + c.name + ": " + std::move(m);
        return e;
    };
    if (keys.empty()) return fail("no signing key");
    auto [base, target] = split_url(c.url);
    if (auto u = http::parse_url(base); !u) return fail(u.err().message);
    if (target.find_first_of("?#") != std::string::npos)
        return fail("the URL must not carry a query or fragment");

    http::options o;
    o.base_url = base;
    o.ca_file = c.ca_file;
    o.timeout = c.timeout;
    o.connect_timeout = std::min<milliseconds>(c.timeout, 10 * k_second);
    o.max_attempts = 1;
    o.max_concurrency = 1;
    o.requests_per_second = 0;
    o.max_response_bytes = 64u << 10;
    o.user_agent = "keyrotd/0.1 (webhooks)";
    if (tune) tune(o);
    auto cl = http::client::create(std::move(ex), std::move(o));
    if (!cl) return fail(cl.err().message);

    std::unique_ptr<webhook_sink> s(new webhook_sink());
    s->config_ = c;
    s->signer_ = std::move(keys);
    s->target_ = target;
    s->clock_ = clock ? std::move(clock) : system_now;
    s->client_ = std::move(cl.value());
    return s;
}

net::awaitable<attempt_result> webhook_sink::deliver(std::string id, std::string body) {
    http::request req;
    req.method = "POST";
    req.target = target_;
    req.content_type = "application/json";
    req.headers = webhook_headers(
        signer_, id, std::chrono::floor<std::chrono::seconds>(clock_()).time_since_epoch().count(),
        body);
    req.body = std::move(body);
    auto res = co_await client_->send(std::move(req));

    attempt_result out;
    if (!res) {
        // The client's message names the request target: keep it out.
        std::string msg = res.err().describe();
        for (auto pos = msg.find(target_); target_.size() > 1 && pos != std::string::npos;
             pos = msg.find(target_))
            msg.replace(pos, target_.size(), "<path>");
        out.error = "webhook " + config_.name + ": " + msg;
        co_return out;
    }
    out.status = res->status;
    if (classify(out.status) != outcome::delivered) {
        out.error = "webhook " + config_.name + ": HTTP " + std::to_string(out.status);
        if (auto ra = res->header("Retry-After"))
            out.retry_after = http::parse_retry_after(*ra, 24 * k_hour);
    }
    co_return out;
}

}  // namespace keyrot::notify
