#include "auth/token_source.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "auth/bearer.hpp"
#include "policy/config.hpp"

namespace keyrot::auth {

namespace {

using detail::auth_error;

error config_error(std::string msg) {
    error e;
    e.what = error::kind::config;
    e.message = std::move(msg);
    return e;
}

// A header value must not smuggle a second header.
bool header_safe(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return true;
}

class none_source final : public token_source {
  public:
    net::awaitable<result<secret>> authorization_header() override { co_return secret{}; }
    void invalidate() override {}
    std::string describe() const override { return "none"; }
};

class env_source final : public token_source {
  public:
    explicit env_source(std::string var) : var_(std::move(var)) {}
    net::awaitable<result<secret>> authorization_header() override {
        const char* v = std::getenv(var_.c_str());
        std::string tok = v ? v : "";
        trim_secret(tok);
        if (tok.empty())
            co_return auth_error("environment variable " + var_ + " is unset or empty");
        if (!header_safe(tok)) {
            cleanse(tok);
            co_return auth_error("environment variable " + var_ + " holds control characters");
        }
        secret out("Bearer " + tok);
        cleanse(tok);
        co_return out;
    }
    void invalidate() override {}  // read on every call anyway
    std::string describe() const override { return "token-env " + var_; }

  private:
    std::string var_;
};

class file_source final : public token_source {
  public:
    explicit file_source(std::string path) : path_(std::move(path)) {}
    net::awaitable<result<secret>> authorization_header() override {
        struct stat st {};
        if (::stat(path_.c_str(), &st) != 0)
            co_return auth_error("cannot read token file " + path_ + ": " + std::strerror(errno));
        bool changed = !valid_ || st.st_mtim.tv_sec != mtime_.tv_sec ||
                       st.st_mtim.tv_nsec != mtime_.tv_nsec || st.st_size != size_;
        if (changed) {
            std::ifstream in(path_, std::ios::binary);
            if (!in) co_return auth_error("cannot open token file " + path_);
            std::string tok((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            trim_secret(tok);
            if (tok.empty()) co_return auth_error("token file " + path_ + " is empty");
            if (!header_safe(tok)) {
                cleanse(tok);
                co_return auth_error("token file " + path_ + " holds control characters");
            }
            header_ = secret("Bearer " + tok);
            cleanse(tok);
            mtime_ = st.st_mtim;
            size_ = st.st_size;
            valid_ = true;
        }
        co_return header_;
    }
    void invalidate() override {
        valid_ = false;
        header_.clear();
    }
    std::string describe() const override { return "token-file " + path_; }

  private:
    std::string path_;
    secret header_;
    timespec mtime_{};
    off_t size_ = -1;
    bool valid_ = false;
};

class basic_source final : public token_source {
  public:
    basic_source(std::string user_var, std::string password_var)
        : user_var_(std::move(user_var)), password_var_(std::move(password_var)) {}
    net::awaitable<result<secret>> authorization_header() override {
        const char* u = std::getenv(user_var_.c_str());
        const char* p = std::getenv(password_var_.c_str());
        if (!u || !*u)
            co_return auth_error("environment variable " + user_var_ + " is unset or empty");
        if (!p || !*p)
            co_return auth_error("environment variable " + password_var_ + " is unset or empty");
        std::string pair = std::string(u) + ":" + p;
        std::string enc = base64(pair);
        cleanse(pair);
        secret out("Basic " + enc);
        cleanse(enc);
        co_return out;
    }
    void invalidate() override {}
    std::string describe() const override { return "basic " + user_var_ + "/" + password_var_; }

  private:
    std::string user_var_;
    std::string password_var_;
};

}  // namespace

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

result<google_credentials> find_google_credentials(const std::string& configured_path,
                                                   const env_fn& env) {
    auto var = [&](const char* name) -> std::string {
        const char* v = env ? env(name) : nullptr;
        return v ? v : "";
    };
    google_credentials out;
    if (!configured_path.empty()) {
        out.key_file = configured_path;
        out.origin = "auth.path";
        return out;
    }
    // As Google's libraries: a GOOGLE_APPLICATION_CREDENTIALS that names no file
    // is an error, not a reason to fall through to the metadata server.
    if (auto v = var("GOOGLE_APPLICATION_CREDENTIALS"); !v.empty()) {
        out.key_file = v;
        out.origin = "GOOGLE_APPLICATION_CREDENTIALS";
        return out;
    }
    if (auto dir = var("CREDENTIALS_DIRECTORY"); !dir.empty()) {
        std::string f = dir + "/sa-key.json";
        struct stat st {};
        if (::stat(f.c_str(), &st) == 0) {
            out.key_file = f;
            out.origin = "$CREDENTIALS_DIRECTORY";
            return out;
        }
    }
    std::string host = var("GCE_METADATA_HOST");
    out.origin = host.empty() ? "metadata server" : "GCE_METADATA_HOST";
    out.metadata_host = host.empty() ? std::string(k_default_metadata_host) : host;
    return out;
}

std::unique_ptr<token_source> make_none() { return std::make_unique<none_source>(); }
std::unique_ptr<token_source> make_token_env(std::string var) {
    return std::make_unique<env_source>(std::move(var));
}
std::unique_ptr<token_source> make_token_file(std::string path) {
    return std::make_unique<file_source>(std::move(path));
}
std::unique_ptr<token_source> make_basic(std::string user_var, std::string password_var) {
    return std::make_unique<basic_source>(std::move(user_var), std::move(password_var));
}

result<std::unique_ptr<token_source>> make_token_source(const policy::auth_config& cfg,
                                                        http::client* for_google) {
    switch (cfg.method) {
        case policy::auth_method::none:
            return make_none();
        case policy::auth_method::token_env:
            if (cfg.env.empty()) return config_error("auth method token-env needs `env`");
            return make_token_env(cfg.env);
        case policy::auth_method::token_file:
            if (cfg.path.empty()) return config_error("auth method token-file needs `path`");
            return make_token_file(cfg.path);
        case policy::auth_method::basic:
            if (cfg.user_env.empty() || cfg.password_env.empty())
                return config_error("auth method basic needs `userEnv` and `passwordEnv`");
            return make_basic(cfg.user_env, cfg.password_env);
        case policy::auth_method::edge_oauth:
            return make_edge_oauth(cfg, for_google);
        case policy::auth_method::google: {
            auto found =
                find_google_credentials(cfg.path, [](const char* n) { return std::getenv(n); });
            if (!found) return found.err();
            if (found->key_file.empty())
                return make_google_metadata(found->metadata_host, for_google);
            return make_google(found->key_file, for_google, found->origin);
        }
    }
    return config_error("unknown auth method");
}

}  // namespace keyrot::auth
