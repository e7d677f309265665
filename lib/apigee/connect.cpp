#include "apigee/connect.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "auth/token_source.hpp"
#include "policy/config.hpp"

namespace keyrot::apigee {

session::~session() = default;

http::options client_options(const policy::apigee_config& cfg) {
    http::options o;
    o.base_url = cfg.url;
    o.ca_file = cfg.ca_file;
    o.timeout = cfg.timeout;
    o.connect_timeout = std::min<milliseconds>(cfg.timeout, 10 * k_second);
    o.max_concurrency = cfg.max_concurrency;
    o.requests_per_second = cfg.requests_per_second;
    // In Kubernetes, name the replica (its leader-election identity) so that
    // Apigee's audit logs, and the HA tests, can tell writers apart.
    if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') {
        std::string name(pod);
        std::erase_if(name, [](char c) {  // a DNS label's characters only
            return !(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
        });
        if (!name.empty()) o.user_agent += " (pod " + name.substr(0, 253) + ")";
    }
    return o;
}

api_options api_options_of(const policy::apigee_config& cfg) {
    api_options o;
    o.flavor = cfg.edge() ? flavor::edge : flavor::x;
    o.edge_rows = cfg.app_list_rows;
    return o;
}

result<std::unique_ptr<session>> open_session(net::any_io_executor ex,
                                              const policy::apigee_config& cfg,
                                              http::observer_fn observer, http::tracer_fn tracer) {
    auto opts = client_options(cfg);
    opts.observer = std::move(observer);
    opts.tracer = std::move(tracer);
    auto client = http::client::create(std::move(ex), std::move(opts));
    if (!client) return client.err();
    auto source = auth::make_token_source(cfg.auth, client->get());
    if (!source) return source.err();
    auto s = std::make_unique<session>();
    s->http = std::move(client.value());
    s->auth = std::move(source.value());
    s->options = api_options_of(cfg);
    return s;
}

result<std::unique_ptr<connection>> connect(net::any_io_executor ex,
                                            const policy::apigee_config& cfg,
                                            std::string organization, http::observer_fn observer) {
    auto s = open_session(std::move(ex), cfg, std::move(observer));
    if (!s) return s.err();
    auto c = std::make_unique<connection>();
    c->owner = std::move(s.value());
    c->org_api = c->owner->for_organization(std::move(organization));
    return c;
}

}  // namespace keyrot::apigee
