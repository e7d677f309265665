// Wiring: builds the HTTP client, the token source and api objects from the
// `apigee:` section of the config.
//
// Ownership: a `session` owns the client and the token source; every api made
// by for_organization() holds references to both, so the session must outlive
// its apis (one session per process; all organisations share its connection
// pool and its requests_per_second budget, which is Apigee's per-caller quota).
// A `connection` bundles a session with one api and destroys the api first.
// Config problems (bad URL, http:// to a non-loopback host, unreadable caFile,
// auth method not built) are errors of kind config, for start-up to fail on.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "apigee/api.hpp"
#include "common/asio.hpp"
#include "common/result.hpp"
#include "http/client.hpp"

namespace keyrot::policy {
struct apigee_config;
}

namespace keyrot::apigee {

struct session {
    std::unique_ptr<http::client> http;
    std::unique_ptr<auth::token_source> auth;
    api_options options;  // the flavor (apigee.flavor) and Edge's rows
    ~session();

    std::unique_ptr<api> for_organization(std::string organization) const {
        return std::make_unique<api>(*http, *auth, std::move(organization), options);
    }
};

// apigee_config → api_options (flavor, apigee.edge.appListRows).
api_options api_options_of(const policy::apigee_config& cfg);

// apigee_config → http::options (url, caFile, timeout, maxConcurrency, requestsPerSecond).
http::options client_options(const policy::apigee_config& cfg);

result<std::unique_ptr<session>> open_session(net::any_io_executor ex,
                                              const policy::apigee_config& cfg,
                                              http::observer_fn observer = {},
                                              http::tracer_fn tracer = {});

struct connection {
    std::unique_ptr<session> owner;  // declared first: destroyed after `org_api`
    std::unique_ptr<api> org_api;
};

result<std::unique_ptr<connection>> connect(net::any_io_executor ex,
                                            const policy::apigee_config& cfg,
                                            std::string organization,
                                            http::observer_fn observer = {});

}  // namespace keyrot::apigee
