// The revocation gate's targets (exec/delivery.hpp) made from the policies'
// `deliver:` sections with lib/deliver (docs/delivery.md).
//
// - create() builds one target_factory per policy that delivers. Errors are start-up errors (exit
// 78):
//   a kubernetesSecret target outside a cluster, an unreadable CA file.
// - deliver(): every target of the app gets the payload (put) and is read back
//   (verify), each tried even when an earlier one failed; any failure fails the
//   call, naming each failed target once ("; " between them). A target whose
//   name uses an app attribute the app lacks is skipped (and named in the
//   error if nothing else was delivered).
// - revoked(): every target gets the current key without the previous one,
//   then drops the previous fields/versions; a target that fails gets one more
//   try (the executor does not call it again).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "auth/token_source.hpp"
#include "deliver/factory.hpp"
#include "exec/delivery.hpp"
#include "policy/config.hpp"

namespace keyrot::daemon {

class delivery_gate final : public exec::delivery {
  public:
    // `google` (the Apigee token source, for secretManager) and the fence must
    // outlive the gate. A policy whose deliver section was added or changed by a
    // reload (SIGHUP) after create() holds its revocations until a restart.
    static result<std::unique_ptr<delivery_gate>> create(
        const net::any_io_executor& ex, const policy::config& cfg, auth::token_source* google,
        std::function<std::optional<milliseconds>()> write_budget);

    bool wants(const app& a, const policy::policy& p) const override;
    net::awaitable<result<void>> deliver(const app& a, const policy::policy& p,
                                         const exec::delivered_key& current,
                                         const exec::delivered_key* previous) override;
    net::awaitable<result<void>> revoked(const app& a, const policy::policy& p,
                                         const exec::delivered_key& current) override;
    net::awaitable<result<std::vector<exec::target_state>>> inspect(
        const app& a, const policy::policy& p) override;

  private:
    result<deliver::target_factory*> factory(const policy::policy& p);
    // policy name -> (its deliver JSON at start-up, its targets)
    std::map<std::string, std::pair<std::string, std::unique_ptr<deliver::target_factory>>>
        by_policy_;
};

}  // namespace keyrot::daemon
