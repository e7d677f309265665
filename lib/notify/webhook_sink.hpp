// A sink that POSTs each event to one URL as a Standard Webhook (webhook.hpp).
//
// Contract:
// - One attempt per deliver(): the http::client is made with max_attempts 1
//   (the dispatcher owns the retry schedule) and the webhook's timeout. TLS as
//   for the Apigee client (http/client.hpp): https:// verifies peer and host,
//   caFile adds to the system store, http:// only to a loopback host, proxies
//   from HTTPS_PROXY/NO_PROXY. Redirects are not followed (a 3xx is a failure).
// - Headers: webhook-id (the event id), webhook-timestamp (unix seconds of the
//   attempt: a retry is signed anew), webhook-signature, Content-Type
//   application/json. The body is sent byte for byte as stored.
// - Error texts name the sink, never the URL's path (a webhook URL may itself
//   carry a token) nor any header or body.
// - create() reads the signing keys (start-up: errors are fatal config errors).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/asio.hpp"
#include "common/result.hpp"
#include "http/client.hpp"
#include "notify/config.hpp"
#include "notify/dispatcher.hpp"
#include "notify/webhook.hpp"

namespace keyrot::notify {

class webhook_sink final : public sink {
  public:
    // `clock`: for webhook-timestamp; default the system clock.
    // `tune`: adjusts the http::options before the client is made (tests: proxies).
    static result<std::unique_ptr<webhook_sink>> create(
        net::any_io_executor ex, const webhook_config& c, std::function<sys_ms()> clock = {},
        const std::function<void(http::options&)>& tune = {});
    // The same with a signer already loaded.
    static result<std::unique_ptr<webhook_sink>> create(
        net::any_io_executor ex, const webhook_config& c, signer keys,
        std::function<sys_ms()> clock = {}, const std::function<void(http::options&)>& tune = {});

    const std::string& name() const override { return config_.name; }
    const sink_filter& filter() const override { return config_.filter; }
    net::awaitable<attempt_result> deliver(std::string id, std::string body) override;

  private:
    webhook_sink() = default;
    webhook_config config_;
    signer signer_;
    std::string target_;  // path the POST goes to
    std::function<sys_ms()> clock_;
    std::unique_ptr<http::client> client_;
};

// Splits "https://host:port/a/b" into ("https://host:port", "/a/b"); the path
// is "/" when the URL has none. Trailing slashes are kept.
std::pair<std::string, std::string> split_url(const std::string& url);

}  // namespace keyrot::notify
