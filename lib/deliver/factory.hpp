// Makes an app's delivery targets from a policy's `deliver:` config, owning
// the HTTP clients and Vault logins they share. The one entry point for wiring.
//
//   auto f = deliver::target_factory::create(io.get_executor(), cfg, env);   // start-up
//   auto ts = f.value()->targets_for(app);   // per app, per pass
//   for each target: put(payload) -> receipt; verify(receipt)   // all verified: may revoke
//   after the revocation: drop_previous(receipt)
//
// targets_for never does I/O. A target whose name uses an app attribute the
// app does not have is left out and listed in `skipped` (why); a name that is
// illegal or outside the attribute's allowed prefix is an error for that app
// (the gate must then hold the revocation: the app has a target keyrotd
// cannot deliver to).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/model.hpp"
#include "deliver/config.hpp"
#include "deliver/kube_secret.hpp"
#include "deliver/secret_manager.hpp"
#include "deliver/target.hpp"
#include "deliver/vault.hpp"
#include "http/client.hpp"

namespace keyrot::deliver {

struct environment {
    // The in-cluster API server (copy sched::lease_config's api_url, token_file,
    // ca_file). Needed by kubernetesSecret targets and Vault's Kubernetes auth.
    kube_endpoint kube;
    // Google credentials for secretManager (e.g. the Apigee token source).
    google_auth google;
    std::string secret_manager_url = std::string(k_secret_manager_url);
    // Timeouts, proxy, concurrency and user agent for every client made here;
    // base_url and ca_file are set per client. (Fencing: set write_budget as
    // the Apigee client's, so a replica that lost the lease stops delivering.)
    http::options base;
};

struct app_targets {
    std::vector<std::unique_ptr<target>> targets;
    std::vector<std::string> skipped;  // "vault ...: app has no attribute keyrotd_target"
};

class target_factory {
  public:
    // Errors (kind config): a kind the environment cannot serve (kubernetesSecret
    // without kube.api_url, secretManager without google.header) or a client
    // that cannot be made (bad URL, unreadable CA file).
    static result<std::unique_ptr<target_factory>> create(const net::any_io_executor& ex,
                                                          config cfg, environment env);
    result<app_targets> targets_for(const app& a);
    const config& cfg() const { return cfg_; }

  private:
    target_factory() = default;
    config cfg_;
    environment env_;
    std::unique_ptr<http::client> kube_client_;
    std::unique_ptr<http::client> sm_client_;
    std::map<std::size_t, std::unique_ptr<http::client>> vault_clients_;  // by target index
    std::map<std::size_t, std::unique_ptr<vault_auth>> vault_auths_;
};

}  // namespace keyrot::deliver
