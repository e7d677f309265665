#include "delivery.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include "apigee/connect.hpp"
#include "sched/leader.hpp"

namespace keyrot::daemon {
namespace {

deliver::key_material material(const exec::delivered_key& k) {
    return {k.consumer_key, k.consumer_secret, k.expires_at};
}

error failed(std::string message) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(message);
    return e;
}

std::string joined(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
    return out;
}

// A target's errors name it already ("vault … secret/apigee/fleet: read: HTTP 403"); name it
// only when one does not, so the audit detail says it once.
error failed(const deliver::target& t, const std::string& step, const std::string& why) {
    const std::string name = t.describe();
    if (why.rfind(name + ":", 0) == 0) return failed(why);
    return failed(name + ": " + step + why);
}

}  // namespace

result<std::unique_ptr<delivery_gate>> delivery_gate::create(
    const net::any_io_executor& ex, const policy::config& cfg, auth::token_source* google,
    std::function<std::optional<milliseconds>()> write_budget) {
    auto gate = std::unique_ptr<delivery_gate>(new delivery_gate());
    deliver::environment env;
    // In a cluster: the API server and service account the Lease uses.
    try {
        if (auto lease = sched::lease_config_from_env()) {
            env.kube.api_url = lease->api_url;
            env.kube.token_file = lease->token_file;
            env.kube.ca_file = lease->ca_file;
        }
    } catch (const std::exception&) {
        // No namespace etc.: the election reports it; kubernetesSecret targets
        // then fail below with "no API server".
    }
    if (const char* url = std::getenv("KEYROTD_KUBE_API_URL"); url && *url)
        env.kube.api_url = url;  // outside a cluster (tests, a kubeconfig proxy)
    if (const char* f = std::getenv("KEYROTD_KUBE_TOKEN_FILE"); f && *f) env.kube.token_file = f;
    if (const char* f = std::getenv("KEYROTD_KUBE_CA_FILE"); f) env.kube.ca_file = f;
    if (google != nullptr) {
        env.google.header = [google] { return google->authorization_header(); };
        env.google.invalidate = [google] { google->invalidate(); };
    }
    if (const char* url = std::getenv("KEYROTD_SECRET_MANAGER_URL"); url && *url)
        env.secret_manager_url = url;
    env.base = apigee::client_options(cfg.apigee);
    env.base.base_url.clear();
    env.base.ca_file.clear();
    env.base.write_budget = std::move(write_budget);
    for (const auto& p : cfg.policies) {
        if (p.deliver_json.empty()) continue;
        auto parsed = deliver::parse_config(nlohmann::json::parse(p.deliver_json));
        if (!parsed) return failed("policy " + p.name + ": " + parsed.err().message);
        if (parsed->empty()) continue;
        auto f = deliver::target_factory::create(ex, std::move(parsed.value()), env);
        if (!f) return failed("policy " + p.name + ": deliver: " + f.err().message);
        gate->by_policy_[p.name] = {p.deliver_json, std::move(f.value())};
    }
    return gate;
}

bool delivery_gate::wants(const app&, const policy::policy& p) const {
    return !p.deliver_json.empty();
}

result<deliver::target_factory*> delivery_gate::factory(const policy::policy& p) {
    auto it = by_policy_.find(p.name);
    if (it == by_policy_.end() || it->second.first != p.deliver_json)
        return failed("the deliver section of policy " + p.name +
                      " changed since keyrotd started; restart keyrotd to apply it");
    return it->second.second.get();
}

net::awaitable<result<void>> delivery_gate::deliver(const app& a, const policy::policy& p,
                                                    const exec::delivered_key& current,
                                                    const exec::delivered_key* previous) {
    auto f = factory(p);
    if (!f) co_return f.err();
    auto targets = f.value()->targets_for(a);
    if (!targets) co_return failed("targets: " + targets.err().message);
    if (targets->targets.empty() && !targets->skipped.empty())
        co_return failed("no target: " + targets->skipped.front());
    deliver::payload pl;
    pl.current = material(current);
    if (previous != nullptr) pl.previous = material(*previous);
    // Every target is tried, so one that fails does not keep the key from the
    // others (their services get it at the start of the overlap); any failure
    // fails the call (the gate holds the revocation).
    std::vector<std::string> why;
    for (auto& t : targets->targets) {
        auto r = co_await t->put(pl);
        if (!r) {
            why.push_back(failed(*t, "", r.err().message).message);
            continue;
        }
        auto v = co_await t->verify(r.value());
        if (!v) why.push_back(failed(*t, "verify: ", v.err().message).message);
    }
    if (!why.empty()) co_return failed(joined(why));
    co_return result<void>{};
}

net::awaitable<result<void>> delivery_gate::revoked(const app& a, const policy::policy& p,
                                                    const exec::delivered_key& current) {
    auto f = factory(p);
    if (!f) co_return f.err();
    auto targets = f.value()->targets_for(a);
    if (!targets) co_return failed("targets: " + targets.err().message);
    deliver::payload pl;
    pl.current = material(current);
    // Nobody retries this later (the executor calls it once, after the
    // revocation): every target is tried, and one that fails gets a second try
    // (a lost answer or a 5xx is the common case; put and drop_previous are
    // level-triggered).
    std::vector<std::string> why;
    for (auto& t : targets->targets) {
        std::string last;
        for (int attempt = 0; attempt < 2; ++attempt) {
            auto r = co_await t->put(pl);
            if (!r) {
                last = failed(*t, "", r.err().message).message;
                continue;
            }
            auto d = co_await t->drop_previous(r.value());
            if (!d) {
                last = failed(*t, "drop previous: ", d.err().message).message;
                continue;
            }
            last.clear();
            break;
        }
        if (!last.empty()) why.push_back(std::move(last));
    }
    if (!why.empty()) co_return failed(joined(why));
    co_return result<void>{};
}

net::awaitable<result<std::vector<exec::target_state>>> delivery_gate::inspect(
    const app& a, const policy::policy& p) {
    auto f = factory(p);
    if (!f) co_return f.err();
    auto targets = f.value()->targets_for(a);
    if (!targets) co_return failed("targets: " + targets.err().message);
    std::vector<exec::target_state> out;
    for (auto& t : targets->targets) {
        exec::target_state st;
        st.target = t->describe();
        auto h = co_await t->inspect();
        if (!h) {
            st.error = h.err().message;
            if (st.error.rfind(st.target + ": ", 0) == 0) st.error.erase(0, st.target.size() + 2);
        } else {
            st.present = h->present;
            st.key = h->key;
            st.previous = h->previous;
        }
        out.push_back(std::move(st));
    }
    for (const auto& why : targets->skipped) {
        exec::target_state st;
        st.skipped = why;
        out.push_back(std::move(st));
    }
    co_return out;
}

}  // namespace keyrot::daemon
