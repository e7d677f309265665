#include "deliver/vault.hpp"

#include <fstream>
#include <iterator>

namespace keyrot::deliver {

using json = nlohmann::json;

namespace {

std::string describe_vault_reply(const http::response& r) {
    std::string out = "HTTP " + std::to_string(r.status);
    const std::string text = vault_error_text(r.body);
    if (!text.empty()) out += ": " + text;
    return out;
}

// data.data and data.metadata.version of a KV v2 read.
struct kv_read {
    json data = json::object();
    long long version = 0;
};

result<kv_read> parse_kv_read(const json& j) {
    if (!j.is_object() || !j.contains("data") || !j["data"].is_object())
        return make_error(error::kind::protocol, "not a KV v2 read");
    kv_read out;
    const json& d = j["data"];
    if (auto it = d.find("data"); it != d.end() && it->is_object()) out.data = *it;
    if (auto m = d.find("metadata"); m != d.end() && m->is_object())
        if (auto v = m->find("version"); v != m->end() && v->is_number_integer())
            out.version = v->get<long long>();
    return out;
}

field_map our_fields(const json& data) {
    field_map f;
    for (const auto& name : field_names())
        if (auto it = data.find(name); it != data.end() && it->is_string())
            f[name] = secret(it->get<std::string>());
    return f;
}

}  // namespace

std::string vault_write_body(const json& existing_data, const field_map& fields, long long cas) {
    json data = existing_data.is_object() ? existing_data : json::object();
    for (const auto& name : field_names())
        if (auto it = data.find(name); it != data.end()) {
            wipe(*it);
            data.erase(it);
        }
    for (const auto& [k, v] : fields) data[k] = v.reveal();
    json body = json::object();
    body["options"] = json::object({{"cas", cas}});
    body["data"] = std::move(data);
    std::string out = body.dump();
    wipe(body);
    return out;
}

std::string vault_metadata_body() {
    json body = {{"custom_metadata", {{"managed-by", std::string(k_owner)}}}};
    return body.dump();
}

std::string vault_login_body(const std::string& role, const std::string& jwt) {
    json body = {{"role", role}, {"jwt", jwt}};
    std::string out = body.dump();
    wipe(body);
    return out;
}

bool vault_owned(const json& answer) {
    if (!answer.is_object() || !answer.contains("data") || !answer["data"].is_object())
        return false;
    const json& d = answer["data"];
    const auto cm = d.find("custom_metadata");
    if (cm == d.end() || !cm->is_object()) return false;
    const auto owner = cm->find("managed-by");
    return owner != cm->end() && owner->is_string() && owner->get<std::string>() == k_owner;
}

std::string vault_error_text(const std::string& body) {
    const auto j = json::parse(body, nullptr, false);
    if (!j.is_object()) return {};
    const auto it = j.find("errors");
    if (it == j.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return {};
    std::string m = (*it)[0].get<std::string>();
    if (m.size() > 200) m = m.substr(0, 200) + "...";
    return m;
}

// ---------------------------------------------------------------- auth

std::unique_ptr<vault_auth> vault_auth::from_token_file(std::string path) {
    std::unique_ptr<vault_auth> a(new vault_auth());
    a->token_file_ = std::move(path);
    return a;
}

std::unique_ptr<vault_auth> vault_auth::from_kubernetes(http::client& client, std::string mount,
                                                        std::string role, std::string jwt_file) {
    std::unique_ptr<vault_auth> a(new vault_auth());
    a->client_ = &client;
    a->mount_ = std::move(mount);
    a->role_ = std::move(role);
    a->token_file_ = std::move(jwt_file);
    return a;
}

void vault_auth::invalidate() {
    cached_.clear();
    valid_until_ = {};
}

net::awaitable<result<secret>> vault_auth::header() {
    if (role_.empty()) {
        std::string token = read_secret_file(token_file_);
        if (token.empty())
            co_return make_error(error::kind::auth,
                                 "cannot read the Vault token file " + token_file_);
        std::string value = "Bearer " + token;
        cleanse(token);
        secret out(value);
        cleanse(value);
        co_return out;
    }
    if (!cached_.empty() && std::chrono::steady_clock::now() < valid_until_) co_return cached_;
    std::string jwt = read_secret_file(token_file_);
    if (jwt.empty())
        co_return make_error(error::kind::auth,
                             "cannot read the service account token " + token_file_);
    http::request req;
    req.method = "POST";
    req.target = "/v1/auth/" + mount_ + "/login";
    req.body = vault_login_body(role_, jwt);
    req.content_type = "application/json";
    cleanse(jwt);
    const auto sent = std::chrono::steady_clock::now();
    auto r = co_await client_->send(std::move(req));
    if (!r)
        co_return make_error(error::kind::auth, "Vault login (role " + role_ + ", auth/" + mount_ +
                                                    "): " + r.err().describe());
    if (r->status != 200)
        co_return make_error(error::kind::auth, "Vault login (role " + role_ + ", auth/" + mount_ +
                                                    "): " + describe_vault_reply(*r));
    json j = parse_wiping(*r);
    std::string token;
    long long lease = 0;
    if (j.is_object() && j.contains("auth") && j["auth"].is_object()) {
        const json& a = j["auth"];
        if (auto t = a.find("client_token"); t != a.end() && t->is_string())
            token = t->get<std::string>();
        if (auto l = a.find("lease_duration"); l != a.end() && l->is_number_integer())
            lease = l->get<long long>();
    }
    wipe(j);
    if (token.empty())
        co_return make_error(error::kind::auth, "Vault login (role " + role_ +
                                                    "): the answer has no auth.client_token");
    std::string value = "Bearer " + token;
    cleanse(token);
    cached_ = secret(value);
    cleanse(value);
    // 80% of the lease; a token without one (0) is used until a 403.
    valid_until_ = lease > 0 ? sent + std::chrono::milliseconds(lease * 800)
                             : std::chrono::steady_clock::time_point::max();
    co_return cached_;
}

// ---------------------------------------------------------------- the target

vault_target::vault_target(http::client& client, vault_auth& auth, vault_place place)
    : client_(client), auth_(auth), place_(std::move(place)) {}

std::string vault_target::describe() const {
    return "vault " + client_.opts().base_url + " " + place_.mount + "/" + place_.path;
}

net::awaitable<result<http::response>> vault_target::call(std::string method, std::string path,
                                                          std::string body) {
    for (int round = 0; round < 2; ++round) {
        auto h = co_await auth_.header();
        if (!h) {
            cleanse(body);
            co_return make_error(error::kind::auth, describe() + ": " + h.err().message);
        }
        http::request req;
        req.method = method;
        req.target = path;
        req.body = body;
        if (!req.body.empty()) req.content_type = "application/json";
        req.authorization = std::move(*h);
        auto r = co_await client_.send(std::move(req));
        if (r && r->status == 403 && round == 0 && auth_.can_refresh()) {
            auth_.invalidate();  // an expired or revoked login token: log in once more
            continue;
        }
        cleanse(body);
        co_return r;
    }
    co_return make_error(error::kind::internal, "unreachable");
}

net::awaitable<result<void>> vault_target::ensure_owned(bool& exists) {
    const std::string path = "/v1/" + place_.mount + "/metadata/" + place_.path;
    auto meta = co_await call("GET", path, "");
    if (!meta) co_return meta.err();
    if (meta->status == 404) {
        exists = false;
        auto mark = co_await call("POST", path, vault_metadata_body());
        if (!mark) co_return mark.err();
        if (mark->status != 204 && mark->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": mark as keyrotd's: " + describe_vault_reply(*mark),
                                 mark->status);
        co_return result<void>{};
    }
    if (meta->status != 200)
        co_return make_error(error::kind::http,
                             describe() + ": metadata: " + describe_vault_reply(*meta),
                             meta->status);
    exists = true;
    const json j = json::parse(meta->body, nullptr, false);
    if (!vault_owned(j)) {
        error e = make_error(error::kind::config,
                             describe() +
                                 ": refused: the entry exists without custom_metadata "
                                 "managed-by=keyrotd (keyrotd never writes an entry it "
                                 "does not manage)");
        e.code = "NOT_OWNED";
        co_return e;
    }
    co_return result<void>{};
}

net::awaitable<result<receipt>> vault_target::put(const payload& p) {
    const field_map fields = payload_fields(p);
    receipt rc;
    rc.target = describe();
    rc.key = p.fingerprint();
    rc.digest = fields_digest(fields);
    rc.has_previous = p.previous.has_value();
    const std::string data_path = "/v1/" + place_.mount + "/data/" + place_.path;
    for (int attempt = 0; attempt < k_max_conflicts; ++attempt) {
        bool exists = false;
        auto owned = co_await ensure_owned(exists);
        if (!owned) co_return owned.err();
        kv_read current;
        if (exists) {
            auto got = co_await call("GET", data_path, "");
            if (!got) co_return got.err();
            json j = parse_wiping(*got);
            if (got->status == 200) {
                auto parsed = parse_kv_read(j);
                wipe(j);
                if (!parsed)
                    co_return make_error(error::kind::protocol,
                                         describe() + ": read: " + parsed.err().message);
                current = std::move(*parsed);
            } else if (got->status == 404) {
                // No live version (none yet, or the latest deleted): cas is still
                // the current version number, which a 404 carries in data.metadata.
                auto parsed = parse_kv_read(j);
                wipe(j);
                if (parsed) current.version = parsed->version;
                current.data = json::object();
            } else {
                wipe(j);
                co_return make_error(error::kind::http,
                                     describe() + ": read: " + describe_vault_reply(*got),
                                     got->status);
            }
            if (fields_digest(our_fields(current.data)) == rc.digest) {
                wipe(current.data);
                rc.version = std::to_string(current.version);
                co_return rc;
            }
        }
        std::string body = vault_write_body(current.data, fields, current.version);
        wipe(current.data);
        auto w = co_await call("POST", data_path, std::move(body));
        if (!w) co_return w.err();
        if (w->status == 400 && vault_error_text(w->body).find(k_cas_mismatch) != std::string::npos)
            continue;  // written by someone else since the read: read again
        if (w->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": write: " + describe_vault_reply(*w), w->status);
        json j = parse_wiping(*w);
        long long version = 0;
        if (j.is_object() && j.contains("data") && j["data"].is_object())
            version = j["data"].value("version", 0LL);
        if (version <= 0)
            co_return make_error(error::kind::protocol,
                                 describe() + ": write: the answer names no version");
        rc.version = std::to_string(version);
        rc.written = true;
        co_return rc;
    }
    co_return make_error(error::kind::http,
                         describe() + ": check-and-set still failing after " +
                             std::to_string(k_max_conflicts) + " attempts",
                         400);
}

net::awaitable<result<void>> vault_target::verify(const receipt& r) {
    auto got = co_await call("GET", "/v1/" + place_.mount + "/data/" + place_.path, "");
    if (!got) co_return got.err();
    if (got->status != 200) {
        cleanse(got->body);
        co_return make_error(error::kind::http,
                             describe() + ": verify: HTTP " + std::to_string(got->status),
                             got->status);
    }
    json j = parse_wiping(*got);
    auto parsed = parse_kv_read(j);
    wipe(j);
    if (!parsed)
        co_return make_error(error::kind::protocol,
                             describe() + ": verify: " + parsed.err().message);
    const field_map f = our_fields(parsed->data);
    wipe(parsed->data);
    if (fields_digest(f) != r.digest) {
        const std::string holds = current_key_fingerprint(f);
        co_return make_error(error::kind::protocol,
                             describe() + ": verify: version " + std::to_string(parsed->version) +
                                 " holds " +
                                 (holds.empty() ? std::string("no key") : "key " + holds) +
                                 ", not what version " + r.version + " got (key " + r.key + ")");
    }
    co_return result<void>{};
}

net::awaitable<result<holding>> vault_target::inspect() {
    holding h;
    auto meta = co_await call("GET", "/v1/" + place_.mount + "/metadata/" + place_.path, "");
    if (!meta) co_return meta.err();
    if (meta->status == 404) co_return h;
    if (meta->status != 200)
        co_return make_error(error::kind::http,
                             describe() + ": metadata: " + describe_vault_reply(*meta),
                             meta->status);
    if (!vault_owned(json::parse(meta->body, nullptr, false))) {
        error e = make_error(error::kind::config,
                             describe() + ": exists without custom_metadata managed-by=keyrotd");
        e.code = "NOT_OWNED";
        co_return e;
    }
    h.present = true;
    auto got = co_await call("GET", "/v1/" + place_.mount + "/data/" + place_.path, "");
    if (!got) co_return got.err();
    if (got->status == 404) {  // marked, no live version (yet)
        cleanse(got->body);
        co_return h;
    }
    if (got->status != 200) {
        cleanse(got->body);
        co_return make_error(error::kind::http,
                             describe() + ": read: HTTP " + std::to_string(got->status),
                             got->status);
    }
    json j = parse_wiping(*got);
    auto parsed = parse_kv_read(j);
    wipe(j);
    if (!parsed)
        co_return make_error(error::kind::protocol, describe() + ": read: " + parsed.err().message);
    const field_map f = our_fields(parsed->data);
    wipe(parsed->data);
    h.key = current_key_fingerprint(f);
    h.previous = previous_key_fingerprint(f);
    h.version = std::to_string(parsed->version);
    co_return h;
}

net::awaitable<result<void>> vault_target::drop_previous(const receipt& r) {
    const std::string data_path = "/v1/" + place_.mount + "/data/" + place_.path;
    for (int attempt = 0; attempt < k_max_conflicts; ++attempt) {
        bool exists = false;
        auto owned = co_await ensure_owned(exists);
        if (!owned) co_return owned.err();
        auto got = co_await call("GET", data_path, "");
        if (!got) co_return got.err();
        if (got->status != 200) {
            cleanse(got->body);
            co_return make_error(
                error::kind::http,
                describe() + ": drop previous: HTTP " + std::to_string(got->status), got->status);
        }
        json j = parse_wiping(*got);
        auto parsed = parse_kv_read(j);
        wipe(j);
        if (!parsed)
            co_return make_error(error::kind::protocol,
                                 describe() + ": drop previous: " + parsed.err().message);
        field_map f = our_fields(parsed->data);
        const std::string holds = current_key_fingerprint(f);
        if (holds != r.key) {
            wipe(parsed->data);
            co_return make_error(error::kind::protocol, describe() + ": drop previous: holds key " +
                                                            holds + ", not " + r.key +
                                                            "; left alone");
        }
        field_map keep;
        for (auto& [k, v] : f)
            if (!is_previous_field(k)) keep[k] = v;
        if (keep.size() == f.size()) {
            wipe(parsed->data);
            co_return result<void>{};
        }
        std::string body = vault_write_body(parsed->data, keep, parsed->version);
        wipe(parsed->data);
        auto w = co_await call("POST", data_path, std::move(body));
        if (!w) co_return w.err();
        if (w->status == 400 && vault_error_text(w->body).find(k_cas_mismatch) != std::string::npos)
            continue;
        cleanse(w->body);
        if (w->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": drop previous: HTTP " + std::to_string(w->status),
                                 w->status);
        co_return result<void>{};
    }
    co_return make_error(error::kind::http,
                         describe() + ": drop previous: check-and-set still failing after " +
                             std::to_string(k_max_conflicts) + " attempts",
                         400);
}

}  // namespace keyrot::deliver
