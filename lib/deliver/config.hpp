// The `deliver:` section of a rotation policy and its allow-list for app
// attributes (docs/delivery.md, "Configuration"). Pure: no I/O.
//
//   deliver:
//     - {kind: kubernetesSecret, namespace: team-a, name: "apigee-{app}",
//        annotations: {reloader.stakater.com/match: "true"}}
//     - {kind: vault, address: "https://vault:8200", mount: secret,
//        path: "apigee/{app}", kubernetesRole: keyrotd}     # or tokenFile: FILE
//     - {kind: secretManager, project: acme-prod, secret: "apigee-{app}"}
//   attributeTargets: {attribute: keyrotd_target, prefix: "team-"}   # or a list of them
//
// parse_config reads only the keys `deliver` and `attributeTargets` of the
// object it is given (a policy); inside them every unknown key is an error.
// Errors (kind config) name the field: "deliver[1].path: unknown placeholder {ap}".
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "common/result.hpp"
#include "deliver/naming.hpp"

namespace keyrot::deliver {

struct kubernetes_secret_config {
    std::string namespace_;  // literal: RBAC grants only the namespaces configured
    std::string name;        // template (name_kind::kubernetes_name)
    std::map<std::string, std::string> annotations;
    std::map<std::string, std::string> labels;  // extra labels; managed-by is always set
    friend bool operator==(const kubernetes_secret_config&,
                           const kubernetes_secret_config&) = default;
};

struct vault_config {
    std::string address;  // https://host:port (http:// only to loopback)
    std::string mount = "secret";
    std::string path;             // template (name_kind::vault_path)
    std::string token_file;       // either this ...
    std::string kubernetes_role;  // ... or the Kubernetes auth method with this role
    std::string kubernetes_mount = "kubernetes";
    std::string ca_file;
    friend bool operator==(const vault_config&, const vault_config&) = default;
};

struct secret_manager_config {
    std::string project;                        // project id or number
    std::string secret;                         // template (name_kind::secret_manager_id)
    std::map<std::string, std::string> labels;  // extra labels; managed-by is always set
    friend bool operator==(const secret_manager_config&, const secret_manager_config&) = default;
};

using target_config = std::variant<kubernetes_secret_config, vault_config, secret_manager_config>;

struct config {
    std::vector<target_config> targets;
    std::vector<attribute_rule> attribute_rules;
    bool empty() const { return targets.empty(); }
};

// `policy`: an object; a missing `deliver` gives an empty config.
result<config> parse_config(const nlohmann::json& policy);

// "kubernetesSecret" | "vault" | "secretManager".
std::string kind_name(const target_config& t);

}  // namespace keyrot::deliver
