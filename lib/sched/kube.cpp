#include "sched/kube.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/secret.hpp"

namespace keyrot::sched {

using json = nlohmann::json;

namespace {

// (A function of its own: GCC 12 cannot compile brace-initialised JSON inside a coroutine.)
json configmap_body(const lease_config& cfg, const json& data) {
    return {
        {"apiVersion", "v1"},
        {"kind", "ConfigMap"},
        {"metadata",
         {{"name", cfg.state_configmap},
          {"namespace", cfg.namespace_},
          {"labels",
           {{"app.kubernetes.io/name", "keyrotd"}, {"app.kubernetes.io/managed-by", "keyrotd"}}}}},
        {"data", data}};
}

}  // namespace

net::awaitable<result<http::response>> kube_call(http::client& client, const lease_config& cfg,
                                                 std::string method, std::string target,
                                                 std::string body, std::string content_type) {
    std::string t = read_secret_file(cfg.token_file);
    if (t.empty()) {
        error e;
        e.what = error::kind::auth;
        e.message = "cannot read the service account token " + cfg.token_file;
        co_return e;
    }
    http::request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    if (!req.body.empty()) req.content_type = std::move(content_type);
    req.headers.emplace_back("Accept", "application/json");
    std::string value = "Bearer " + t;
    req.authorization = secret(value);
    cleanse(value);
    cleanse(t);
    auto r = co_await client.send(std::move(req));
    co_return r;
}

std::string describe_kube_reply(const http::response& r) {
    std::string out = "HTTP " + std::to_string(r.status);
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object()) {
        if (auto it = j.find("reason"); it != j.end() && it->is_string())
            out += " " + it->get<std::string>();
        if (auto it = j.find("message"); it != j.end() && it->is_string()) {
            std::string m = it->get<std::string>();
            if (m.size() > 200) m = m.substr(0, 200) + "...";
            out += ": " + m;
        }
    }
    return out;
}

// ---------------------------------------------------------------- configmap_store

http::options state_http_options(const lease_config& cfg) {
    http::options o = lease_http_options(cfg);
    o.timeout = std::max<milliseconds>(cfg.renew_deadline, milliseconds(100));
    o.connect_timeout = o.timeout;
    o.max_concurrency = 4;
    o.max_idle_connections = 4;
    return o;
}

configmap_store::configmap_store(http::client& client, lease_config cfg)
    : client_(client), cfg_(std::move(cfg)) {}

std::string configmap_store::describe() const {
    return "ConfigMap " + cfg_.namespace_ + "/" + cfg_.state_configmap;
}

std::string configmap_store::item_path() const {
    return "/api/v1/namespaces/" + cfg_.namespace_ + "/configmaps/" + cfg_.state_configmap;
}

net::awaitable<result<void>> configmap_store::load() {
    auto got = co_await kube_call(client_, cfg_, "GET", item_path(), "");
    if (!got) co_return got.err();
    if (got->status == 404) {
        exists_ = false;
        entries_.clear();
        co_return result<void>{};
    }
    error bad;
    bad.what = error::kind::http;
    bad.status = got->status;
    if (got->status != 200) {
        bad.message = "GET " + item_path() + ": " + describe_kube_reply(*got);
        co_return bad;
    }
    const auto j = json::parse(got->body, nullptr, false);
    if (!j.is_object()) {
        bad.what = error::kind::protocol;
        bad.message = "GET " + item_path() + ": not a ConfigMap";
        co_return bad;
    }
    exists_ = true;
    entries_.clear();
    if (auto d = j.find("data"); d != j.end() && d->is_object())
        for (const auto& [k, v] : d->items())
            if (v.is_string()) entries_[k] = v.get<std::string>();
    co_return result<void>{};
}

net::awaitable<bool> configmap_store::patch(const std::string& name, const std::string* value) {
    json data = json::object();
    data[name] = value ? json(*value) : json(nullptr);
    for (int round = 0; round < 2; ++round) {
        if (!exists_) {
            if (value == nullptr) co_return true;  // nothing to erase
            const json cm = configmap_body(cfg_, data);
            auto r = co_await kube_call(client_, cfg_, "POST",
                                        "/api/v1/namespaces/" + cfg_.namespace_ + "/configmaps",
                                        cm.dump());
            if (!r) {
                spdlog::warn("state: create {}: {}", describe(), r.err().describe());
                co_return false;
            }
            if (r->status == 201 || r->status == 200) {
                exists_ = true;
                co_return true;
            }
            if (r->status != 409) {
                spdlog::warn("state: create {}: {}", describe(), describe_kube_reply(*r));
                co_return false;
            }
            exists_ = true;  // someone created it meanwhile: patch it
        }
        json merge = json::object();
        merge["data"] = data;
        auto r = co_await kube_call(client_, cfg_, "PATCH", item_path(), merge.dump(),
                                    "application/merge-patch+json");
        if (!r) {
            spdlog::warn("state: patch {}: {}", describe(), r.err().describe());
            co_return false;
        }
        if (r->status == 200) co_return true;
        if (r->status == 404) {
            exists_ = false;
            continue;
        }
        spdlog::warn("state: patch {}: {}", describe(), describe_kube_reply(*r));
        co_return false;
    }
    co_return false;
}

net::awaitable<bool> configmap_store::put(std::string name, std::string value) {
    // (No co_await in an if condition: GCC 12 miscompiles that as a coroutine's
    // first statement; the resumed frame traps. See executor::begin.)
    const bool ok = co_await patch(name, &value);
    if (ok) entries_[name] = std::move(value);
    co_return ok;
}

net::awaitable<bool> configmap_store::erase(std::string name) {
    const bool ok = co_await patch(name, nullptr);
    if (ok) entries_.erase(name);
    co_return ok;
}

}  // namespace keyrot::sched
