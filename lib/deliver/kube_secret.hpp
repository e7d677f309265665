// A Kubernetes v1 Secret as a delivery target, through the API server with the
// pod's service account (the endpoint the leader election uses: same API URL,
// token file and CA file).
//
// Contract (besides target.hpp's):
// - data: consumerKey, consumerSecret, expiresAt and, during the overlap,
//   previousConsumerKey/previousConsumerSecret/previousExpiresAt (fields.hpp).
//   Other data keys of the Secret are kept.
// - A Secret is created with label app.kubernetes.io/managed-by: keyrotd and
//   the configured annotations and labels. An existing Secret without that
//   label is never written (error kind config, code NOT_OWNED).
// - Updates are PUTs carrying the resourceVersion just read: on 409 the Secret
//   is read again and the update recomputed, at most k_max_conflicts times
//   (then error kind http, status 409). Never a blind overwrite.
// - verify: GET, and the SHA-256 of keyrotd's data fields must equal the
//   receipt's digest. An unchanged resourceVersion confirms it outright; a new
//   one (another writer touched labels or other keys) passes only because the
//   digest matches.
// - The bearer token is re-read from token_file before every request (the
//   kubelet rotates projected tokens); its copies are wiped.
#pragma once

#include <map>
#include <string>

#include "deliver/fields.hpp"
#include "deliver/target.hpp"
#include "http/client.hpp"

namespace keyrot::deliver {

// The in-cluster API server (sched::lease_config's api_url, token_file, ca_file).
struct kube_endpoint {
    std::string api_url;
    std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
};

struct kube_secret_place {
    std::string namespace_;
    std::string name;
    std::map<std::string, std::string> annotations;
    std::map<std::string, std::string> labels;
};

class kubernetes_secret_target final : public target {
  public:
    // `client` is bound to endpoint.api_url and must outlive the target.
    kubernetes_secret_target(http::client& client, std::string token_file, kube_secret_place place);
    net::awaitable<result<receipt>> put(const payload& p) override;
    net::awaitable<result<void>> verify(const receipt& r) override;
    net::awaitable<result<void>> drop_previous(const receipt& r) override;
    std::string describe() const override;
    net::awaitable<result<holding>> inspect() override;

  private:
    net::awaitable<result<http::response>> call(std::string method, std::string path,
                                                std::string body);
    std::string item_path() const;
    http::client& client_;
    std::string token_file_;
    kube_secret_place place_;
};

// ---- pure parts (tests/unit/deliver_test.cpp); bodies hold key material: wipe them ----

// The POST body creating the Secret with `fields`.
std::string secret_create_body(const kube_secret_place& place, const field_map& fields);

// What an existing Secret (JSON) holds for keyrotd: whether it carries the
// managed-by label, its resourceVersion, and keyrotd's data fields (decoded).
struct secret_view {
    bool owned = false;
    std::string resource_version;
    field_map fields;
};
result<secret_view> read_secret(const nlohmann::json& obj);

// The PUT body: `current` (as read) with keyrotd's data fields replaced by
// `fields` (other keys kept), the managed-by label and the place's labels and
// annotations set; resourceVersion as read.
std::string secret_update_body(const nlohmann::json& current, const kube_secret_place& place,
                               const field_map& fields);
// True when `current` already carries the place's labels and annotations.
bool metadata_in_place(const nlohmann::json& current, const kube_secret_place& place);

}  // namespace keyrot::deliver
