// edge-oauth: access tokens from Apigee Edge's login server (the one behind
// get_token and acurl): OAuth 2.0 password grant with the client edgecli, an
// MFA code (TOTP) in the query when a seed is configured, or a SAML zone's
// one-time passcode; refreshed with the refresh token, and a fresh grant when
// the refresh is refused (docs/configuration.md, "Apigee Edge").
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "auth/bearer.hpp"
#include "auth/token_source.hpp"
#include "auth/totp.hpp"
#include "common/codec.hpp"
#include "http/client.hpp"
#include "http/rules.hpp"
#include "http/transport.hpp"
#include "policy/config.hpp"

namespace keyrot::auth {

namespace {

using json = nlohmann::json;

using detail::auth_error;
using detail::clip;

// The file's content without surrounding white space; nullopt when unreadable.
std::optional<std::string> read_secret_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t b = 0, e = text.size();
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (b < e && space(text[b])) ++b;
    while (e > b && space(text[e - 1])) --e;
    std::string out = text.substr(b, e - b);
    cleanse(text);
    return out;
}

class edge_source final : public token_source {
  public:
    edge_source(std::unique_ptr<http::transport> login, net::any_io_executor ex, std::string target,
                const policy::auth_config& cfg, std::function<sys_ms()> clock)
        : login_(std::move(login)),
          ex_(std::move(ex)),
          target_(std::move(target)),
          cfg_(cfg),
          clock_(std::move(clock)) {
        if (!clock_) clock_ = system_now;
    }

    net::awaitable<result<secret>> authorization_header() override {
        // One token request at a time; the others wait for its answer.
        // (Named arguments: GCC 12 mishandles temporaries passed to a coroutine.)
        net::any_io_executor ex = ex_;
        std::function<sys_ms()> clock = clock_;
        detail::token_cache::renewal renew = [this] { return renew_token(); };
        auto r = co_await cache_.get(ex, clock, renew);
        co_return r;
    }

    // After a 401 on a management call: the next call renews (refresh first).
    void invalidate() override { cache_.invalidate(); }

    std::string describe() const override {
        return "edge-oauth " + who() + " at " + target_ +
               (cfg_.mfa_seed_file.empty() ? "" : " with MFA");
    }

  private:
    std::string who() const {
        if (!cfg_.passcode_file.empty()) return "(SAML passcode " + cfg_.passcode_file + ")";
        return cfg_.user.empty() ? "$" + cfg_.user_env : cfg_.user;
    }

    net::awaitable<result<secret>> renew_token() {
        if (!refresh_token_.empty()) {
            std::string body = "grant_type=refresh_token&refresh_token=" +
                               http::encode_component(refresh_token_.reveal());
            std::string target = target_;
            auto r = co_await token_request(std::move(target), std::move(body), "refresh");
            if (r) co_return r;
            // Refused (expired, unknown): a full grant. A network failure is
            // not a refusal: keep the refresh token, report it.
            if (r.err().status == 0) co_return r;
            refresh_token_.clear();
        }
        auto g = co_await grant();
        co_return g;
    }

    net::awaitable<result<secret>> grant() {
        std::string body;
        std::string target = target_;
        if (!cfg_.passcode_file.empty()) {
            auto pc = read_secret_file(cfg_.passcode_file);
            if (!pc || pc->empty())
                co_return auth_error("cannot read a passcode from " + cfg_.passcode_file);
            // A passcode is single use: never send one twice.
            if (!used_passcode_.empty() && used_passcode_.reveal() == *pc) {
                cleanse(*pc);
                co_return auth_error(
                    "the passcode in " + cfg_.passcode_file +
                    " was used already and the session ended: put a fresh one there (from "
                    "your SAML zone's /passcode page)");
            }
            body =
                "grant_type=password&response_type=token&passcode=" + http::encode_component(*pc);
            used_passcode_ = secret(*pc);
            cleanse(*pc);
        } else {
            std::string user = cfg_.user;
            if (user.empty()) {
                const char* v = std::getenv(cfg_.user_env.c_str());
                if (v == nullptr || *v == '\0')
                    co_return auth_error("environment variable " + cfg_.user_env +
                                         " (edge-oauth user) is unset or empty");
                user = v;
            }
            auto pw = read_secret_file(cfg_.password_file);
            if (!pw || pw->empty())
                co_return auth_error("cannot read a password from " + cfg_.password_file);
            body = "grant_type=password&username=" + http::encode_component(user) +
                   "&password=" + http::encode_component(*pw);
            cleanse(*pw);
            if (!cfg_.mfa_seed_file.empty()) {
                auto text = read_secret_file(cfg_.mfa_seed_file);
                if (!text) {
                    cleanse(body);
                    co_return auth_error("cannot read the MFA seed from " + cfg_.mfa_seed_file);
                }
                auto seed = base32_decode(*text);
                cleanse(*text);
                if (!seed) {
                    cleanse(body);
                    co_return auth_error("the MFA seed in " + cfg_.mfa_seed_file +
                                         " is not base32 (A-Z, 2-7)");
                }
                std::string code = totp(*seed, std::chrono::floor<std::chrono::seconds>(clock_()));
                cleanse(*seed);
                target += (target.find('?') == std::string::npos ? "?" : "&");
                target += "mfa_token=" + code;
                cleanse(code);
            }
        }
        auto r = co_await token_request(std::move(target), std::move(body), "password grant");
        co_return r;
    }

    // Sends one token request; on 200 caches the access and refresh tokens.
    // An HTTP refusal is an error with `status` set; anything else has 0.
    net::awaitable<result<secret>> token_request(std::string target, std::string body,
                                                 const char* what) {
        http::request req;
        req.method = "POST";
        req.target = std::move(target);
        req.body = std::move(body);
        req.content_type = "application/x-www-form-urlencoded";
        req.headers.emplace_back("Accept", "application/json");
        // The login server's public client (edgecli:edgeclisecret), as get_token's.
        req.authorization = secret("Basic ZWRnZWNsaTplZGdlY2xpc2VjcmV0");
        const sys_ms now = clock_();
        auto r = co_await login_->send(std::move(req));
        if (!r)
            co_return auth_error("Edge login server " + std::string(what) + ": " +
                                 r.err().describe());
        if (r->status != 200) {
            json doc = json::parse(r->body, nullptr, false);
            cleanse(r->body);
            std::string why;
            if (doc.is_object()) {
                if (auto e = doc.find("error"); e != doc.end() && e->is_string())
                    why = e->get<std::string>();
                if (auto d = doc.find("error_description"); d != doc.end() && d->is_string())
                    why += (why.empty() ? "" : ": ") + d->get<std::string>();
            }
            auto e = auth_error("Edge login server refused the " + std::string(what) + " for " +
                                who() + ": HTTP " + std::to_string(r->status) +
                                (why.empty() ? "" : " " + clip(why)));
            e.status = r->status;
            co_return e;
        }
        json doc = json::parse(r->body, nullptr, false);
        cleanse(r->body);
        auto b = detail::read_bearer(doc, std::chrono::seconds(1799),
                                     "Edge login server");  // Edge's live 30 minutes
        if (!b) co_return b.err();
        if (auto it = doc.find("refresh_token");
            it != doc.end() && it->is_string() && !it->get_ref<std::string&>().empty()) {
            refresh_token_ = secret(it->get_ref<std::string&>());
            cleanse(it->get_ref<std::string&>());
        }
        co_return cache_.store(std::move(b->header), now, b->expires_in);
    }

    std::unique_ptr<http::transport> login_;
    net::any_io_executor ex_;
    std::string target_;
    policy::auth_config cfg_;
    std::function<sys_ms()> clock_;
    detail::token_cache cache_;
    secret refresh_token_;
    secret used_passcode_;
};

}  // namespace

std::unique_ptr<token_source> make_edge_oauth_over(std::unique_ptr<http::transport> login,
                                                   net::any_io_executor ex, std::string target,
                                                   const policy::auth_config& cfg,
                                                   std::function<sys_ms()> clock) {
    return std::make_unique<edge_source>(std::move(login), std::move(ex), std::move(target), cfg,
                                         std::move(clock));
}

result<std::unique_ptr<token_source>> make_edge_oauth(const policy::auth_config& cfg,
                                                      http::client* for_login) {
    auto cfg_error = [](std::string m) {
        error e;
        e.what = error::kind::config;
        e.message = std::move(m);
        return e;
    };
    if (!for_login) return cfg_error("auth method edge-oauth needs an HTTP client");
    if (cfg.passcode_file.empty() &&
        (cfg.password_file.empty() || (cfg.user.empty() && cfg.user_env.empty())))
        return cfg_error(
            "auth method edge-oauth needs user (or userEnv) and passwordFile, or "
            "passcodeFile");
    const std::string url =
        cfg.token_url.empty() ? std::string(policy::k_edge_login_url) : cfg.token_url;
    // tokenUrl = scheme://authority/path: a client of its own for that origin.
    const auto scheme_end = url.find("://");
    const auto path_start =
        scheme_end == std::string::npos ? std::string::npos : url.find('/', scheme_end + 3);
    http::options o = for_login->opts();
    o.base_url = url.substr(0, path_start);
    o.requests_per_second = 0;
    o.observer = {};
    o.max_concurrency = 2;
    auto client = http::client::create(for_login->executor(), std::move(o));
    if (!client) return cfg_error("apigee.auth.tokenUrl: " + client.err().message);
    const auto ex = client.value()->executor();
    std::unique_ptr<http::transport> t = std::move(client.value());
    return make_edge_oauth_over(
        std::move(t), ex, path_start == std::string::npos ? "/" : url.substr(path_start), cfg, {});
}

}  // namespace keyrot::auth
