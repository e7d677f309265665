#include "deliver/factory.hpp"

namespace keyrot::deliver {

namespace {

result<std::unique_ptr<http::client>> make_client(net::any_io_executor ex, http::options o,
                                                  std::string url, std::string ca_file,
                                                  const std::string& what) {
    o.base_url = std::move(url);
    o.ca_file = std::move(ca_file);
    auto c = http::client::create(std::move(ex), std::move(o));
    if (!c) return make_error(error::kind::config, what + ": " + c.err().message);
    return std::move(c.value());
}

}  // namespace

result<std::unique_ptr<target_factory>> target_factory::create(const net::any_io_executor& ex,
                                                               config cfg, environment env) {
    std::unique_ptr<target_factory> f(new target_factory());
    for (std::size_t i = 0; i < cfg.targets.size(); ++i) {
        const std::string where = "deliver[" + std::to_string(i) + "]";
        const auto& t = cfg.targets[i];
        if (std::holds_alternative<kubernetes_secret_config>(t) && !f->kube_client_) {
            if (env.kube.api_url.empty())
                return make_error(error::kind::config,
                                  where +
                                      ": kubernetesSecret needs the Kubernetes API server "
                                      "(run in a cluster or set the lease URL)");
            auto c = make_client(ex, env.base, env.kube.api_url, env.kube.ca_file,
                                 where + ": Kubernetes API client");
            if (!c) return c.err();
            f->kube_client_ = std::move(c.value());
        } else if (const auto* v = std::get_if<vault_config>(&t)) {
            auto c = make_client(ex, env.base, v->address, v->ca_file, where + ": Vault client");
            if (!c) return c.err();
            if (!v->kubernetes_role.empty() && env.kube.token_file.empty())
                return make_error(error::kind::config,
                                  where + ": kubernetesRole needs the service-account token file");
            f->vault_auths_[i] =
                v->token_file.empty()
                    ? vault_auth::from_kubernetes(*c.value(), v->kubernetes_mount,
                                                  v->kubernetes_role, env.kube.token_file)
                    : vault_auth::from_token_file(v->token_file);
            f->vault_clients_[i] = std::move(c.value());
        } else if (std::holds_alternative<secret_manager_config>(t) && !f->sm_client_) {
            if (!env.google.header)
                return make_error(error::kind::config,
                                  where + ": secretManager needs Google credentials");
            auto c = make_client(ex, env.base, env.secret_manager_url, "",
                                 where + ": Secret Manager client");
            if (!c) return c.err();
            f->sm_client_ = std::move(c.value());
        }
    }
    f->cfg_ = std::move(cfg);
    f->env_ = std::move(env);
    return f;
}

result<app_targets> target_factory::targets_for(const app& a) {
    app_targets out;
    const auto& rules = cfg_.attribute_rules;
    for (std::size_t i = 0; i < cfg_.targets.size(); ++i) {
        const auto& t = cfg_.targets[i];
        const std::string where = "deliver[" + std::to_string(i) + "] (" + kind_name(t) + ")";
        const auto named = [&](const std::string& tmpl,
                               name_kind kind) -> result<std::optional<std::string>> {
            auto n = render_name(tmpl, a, rules, kind);
            if (!n)
                return make_error(error::kind::config, where + " for app " + a.organization + "/" +
                                                           a.name + ": " + n.err().message);
            if (!*n)
                out.skipped.push_back(where + ": \"" + tmpl + "\" " + why_not_applied(tmpl, a));
            return n;
        };
        if (const auto* k = std::get_if<kubernetes_secret_config>(&t)) {
            auto n = named(k->name, name_kind::kubernetes_name);
            if (!n) return n.err();
            if (!*n) continue;
            out.targets.push_back(std::make_unique<kubernetes_secret_target>(
                *kube_client_, env_.kube.token_file,
                kube_secret_place{k->namespace_, **n, k->annotations, k->labels}));
        } else if (const auto* v = std::get_if<vault_config>(&t)) {
            auto n = named(v->path, name_kind::vault_path);
            if (!n) return n.err();
            if (!*n) continue;
            out.targets.push_back(std::make_unique<vault_target>(
                *vault_clients_.at(i), *vault_auths_.at(i), vault_place{v->mount, **n}));
        } else {
            const auto& s = std::get<secret_manager_config>(t);
            auto n = named(s.secret, name_kind::secret_manager_id);
            if (!n) return n.err();
            if (!*n) continue;
            out.targets.push_back(std::make_unique<secret_manager_target>(
                *sm_client_, env_.google, secret_manager_place{s.project, **n, s.labels}));
        }
    }
    return out;
}

}  // namespace keyrot::deliver
