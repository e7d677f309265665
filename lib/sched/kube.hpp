// keyrot::sched talking to the Kubernetes API server with the pod's service
// account, and the ConfigMap that holds the executor's crash-recovery state
// where leader election is on (docs/deployment.md, "State across failover").
//
// Contract:
// - kube_call re-reads the bearer token from cfg.token_file before every
//   request (the kubelet rotates projected tokens) and wipes its copies. It
//   returns the answer whatever its status; an error only when no answer came.
// - configmap_store keeps each entry as one data key of the ConfigMap
//   cfg.state_configmap in cfg.namespace_ (created on the first put, labelled
//   app.kubernetes.io/managed-by: keyrotd). put and erase are JSON merge
//   patches that name only their own key, so writers of different entries
//   never conflict and nothing else in the ConfigMap is touched. A 2xx from the
//   API server means the change is in etcd: durable, and what the next leader
//   reads. load() is one GET (404: no entries yet).
// - Only the leader writes it (the executor writes only while it may write);
//   RBAC in deploy/kubernetes/base/rbac.yaml allows get/patch on that one name
//   and create.
#pragma once

#include <string>

#include "common/asio.hpp"
#include "common/result.hpp"
#include "exec/state_store.hpp"
#include "http/client.hpp"
#include "sched/leader.hpp"

namespace keyrot::sched {

net::awaitable<result<http::response>> kube_call(http::client& client, const lease_config& cfg,
                                                 std::string method, std::string target,
                                                 std::string body,
                                                 std::string content_type = "application/json");

// "HTTP 409 Conflict: <Status.message>" for an answer the caller did not expect.
std::string describe_kube_reply(const http::response& r);

// Options for configmap_store's own http::client: the API server of `cfg`,
// one attempt (a failed put fails the action, which the next pass redoes),
// bounded by the renew deadline.
http::options state_http_options(const lease_config& cfg);

class configmap_store final : public exec::state_store {
  public:
    // `client` (state_http_options) must outlive the store.
    configmap_store(http::client& client, lease_config cfg);
    net::awaitable<result<void>> load() override;
    net::awaitable<bool> put(std::string name, std::string value) override;
    net::awaitable<bool> erase(std::string name) override;
    std::string describe() const override;

  private:
    std::string item_path() const;
    net::awaitable<bool> patch(const std::string& name, const std::string* value);
    http::client& client_;
    lease_config cfg_;
    bool exists_ = true;  // until a GET or PATCH says 404
};

}  // namespace keyrot::sched
