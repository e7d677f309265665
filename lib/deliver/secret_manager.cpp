#include "deliver/secret_manager.hpp"

#include "deliver/crc32c.hpp"

namespace keyrot::deliver {

using json = nlohmann::json;

namespace {

constexpr int k_max_pages = 50;

// "HTTP 403 PERMISSION_DENIED: …" from Google's error object (never a payload).
std::string describe_google_reply(const http::response& r) {
    std::string out = "HTTP " + std::to_string(r.status);
    const auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
        const json& e = j["error"];
        if (auto s = e.find("status"); s != e.end() && s->is_string())
            out += " " + s->get<std::string>();
        if (auto m = e.find("message"); m != e.end() && m->is_string()) {
            std::string text = m->get<std::string>();
            if (text.size() > 200) text = text.substr(0, 200) + "...";
            out += ": " + text;
        }
    }
    return out;
}

bool is_conflict(const http::response& r) {
    return r.status == 409 || r.status == 412 ||
           describe_google_reply(r).find("ABORTED") != std::string::npos;
}

std::map<std::string, std::string> aliases_of(const json& secret_resource) {
    std::map<std::string, std::string> out;
    if (auto a = secret_resource.find("versionAliases");
        a != secret_resource.end() && a->is_object())
        for (const auto& [k, v] : a->items()) {
            if (v.is_string())
                out[k] = v.get<std::string>();
            else if (v.is_number_integer())
                out[k] = std::to_string(v.get<long long>());
        }
    return out;
}

long long as_number(const std::string& s) {
    try {
        return std::stoll(s);
    } catch (const std::exception&) {
        return -1;
    }
}

std::optional<std::uint32_t> parse_crc(const json& payload) {
    const auto it = payload.find("dataCrc32c");
    if (it == payload.end()) return std::nullopt;
    long long v = -1;
    if (it->is_string())
        v = as_number(it->get<std::string>());
    else if (it->is_number_integer())
        v = it->get<long long>();
    if (v < 0 || v > 0xFFFFFFFFLL) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

}  // namespace

std::optional<sm_version_view> sm_read_access(const json& j) {
    if (!j.is_object() || !j.contains("payload") || !j["payload"].is_object()) return std::nullopt;
    const json& p = j["payload"];
    const auto d = p.find("data");
    if (d == p.end() || !d->is_string()) return std::nullopt;
    auto data = base64_decode(d->get_ref<const std::string&>());
    if (!data) return std::nullopt;
    sm_version_view v;
    v.version = sm_version_number(j.value("name", ""));
    v.crc32c = crc32c(*data);
    const auto stored = parse_crc(p);
    v.checksum_ok = !stored || *stored == v.crc32c;
    json fields = json::parse(*data, nullptr, false);
    cleanse(*data);
    if (fields.is_object()) {
        field_map f;
        for (const auto& name : field_names())
            if (auto it = fields.find(name); it != fields.end() && it->is_string())
                f[name] = secret(it->get<std::string>());
        v.digest = fields_digest(f);
        v.key = current_key_fingerprint(f);
        v.previous = previous_key_fingerprint(f);
    }
    wipe(fields);
    return v;
}

std::string sm_create_body(const secret_manager_place& place) {
    json labels = json::object();
    for (const auto& [k, v] : place.labels) labels[k] = v;
    labels["managed-by"] = std::string(k_owner);
    json body = {{"replication", {{"automatic", json::object()}}}, {"labels", labels}};
    return body.dump();
}

std::string sm_add_version_body(const std::string& payload_json) {
    json body = json::object();
    body["payload"] = json::object();
    body["payload"]["data"] = base64_encode(payload_json);
    body["payload"]["dataCrc32c"] = std::to_string(crc32c(payload_json));
    std::string out = body.dump();
    wipe(body);
    return out;
}

std::string sm_aliases_body(const std::map<std::string, std::string>& aliases,
                            const std::string& etag) {
    json a = json::object();
    for (const auto& [k, v] : aliases) a[k] = v;
    json body = json::object();
    body["versionAliases"] = std::move(a);
    if (!etag.empty()) body["etag"] = etag;
    return body.dump();
}

std::string sm_version_number(std::string_view name) {
    constexpr std::string_view k_versions = "/versions/";
    const auto at = name.rfind(k_versions);
    if (at == std::string_view::npos || name.rfind("projects/", 0) != 0) return {};
    std::string n(name.substr(at + k_versions.size()));
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return {};
    return n;
}

std::map<std::string, std::string> sm_next_aliases(std::map<std::string, std::string> aliases,
                                                   const std::string& version, bool keep_previous) {
    const auto cur = aliases.find("current");
    if (cur != aliases.end() && cur->second != version) aliases["previous"] = cur->second;
    aliases["current"] = version;
    if (!keep_previous) aliases.erase("previous");
    return aliases;
}

bool sm_owned(const json& s) {
    const auto l = s.find("labels");
    if (l == s.end() || !l->is_object()) return false;
    const auto o = l->find("managed-by");
    return o != l->end() && o->is_string() && o->get<std::string>() == k_owner;
}

// ---------------------------------------------------------------- the target

secret_manager_target::secret_manager_target(http::client& client, google_auth auth,
                                             secret_manager_place place)
    : client_(client), auth_(std::move(auth)), place_(std::move(place)) {}

std::string secret_manager_target::describe() const { return "secretManager " + secret_path(); }

std::string secret_manager_target::secret_path() const {
    return "projects/" + place_.project + "/secrets/" + place_.secret_id;
}

net::awaitable<result<http::response>> secret_manager_target::call(std::string method,
                                                                   std::string path,
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
        if (!req.body.empty() || method == "POST" || method == "PATCH")
            req.content_type = "application/json";
        req.authorization = std::move(*h);
        auto r = co_await client_.send(std::move(req));
        if (r && r->status == 401 && round == 0 && auth_.invalidate) {
            auth_.invalidate();
            continue;
        }
        cleanse(body);
        co_return r;
    }
    co_return make_error(error::kind::internal, "unreachable");
}

net::awaitable<result<json>> secret_manager_target::get_or_create_secret() {
    for (int round = 0; round < 2; ++round) {
        auto got = co_await call("GET", "/v1/" + secret_path(), "");
        if (!got) co_return got.err();
        if (got->status == 404 && round == 0) {
            auto made = co_await call(
                "POST", "/v1/projects/" + place_.project + "/secrets?secretId=" + place_.secret_id,
                sm_create_body(place_));
            if (!made) co_return made.err();
            if (made->status == 409) continue;  // created meanwhile: read it
            if (made->status != 200)
                co_return make_error(error::kind::http,
                                     describe() + ": create: " + describe_google_reply(*made),
                                     made->status);
            json j = json::parse(made->body, nullptr, false);
            co_return j;
        }
        if (got->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": read: " + describe_google_reply(*got),
                                 got->status);
        json j = json::parse(got->body, nullptr, false);
        if (!j.is_object())
            co_return make_error(error::kind::protocol, describe() + ": not a Secret");
        if (!sm_owned(j)) {
            error e = make_error(error::kind::config,
                                 describe() +
                                     ": refused: the secret exists without the label "
                                     "managed-by=keyrotd (keyrotd never writes a secret "
                                     "it does not manage)");
            e.code = "NOT_OWNED";
            co_return e;
        }
        co_return j;
    }
    co_return make_error(error::kind::http, describe() + ": created and then not found", 404);
}

net::awaitable<result<std::optional<sm_version_view>>> secret_manager_target::access(
    std::string version) {
    auto got =
        co_await call("GET", "/v1/" + secret_path() + "/versions/" + version + ":access", "");
    if (!got) co_return got.err();
    if (got->status == 404 || got->status == 400 || got->status == 412 /* disabled */) {
        cleanse(got->body);
        co_return std::optional<sm_version_view>{};
    }
    if (got->status != 200) {
        const std::string why = describe_google_reply(*got);
        cleanse(got->body);
        co_return make_error(error::kind::http, describe() + ": access " + version + ": " + why,
                             got->status);
    }
    json j = parse_wiping(*got);
    std::optional<sm_version_view> out = sm_read_access(j);
    wipe(j);
    co_return out;
}

net::awaitable<result<void>> secret_manager_target::set_aliases(std::string version,
                                                                bool keep_previous) {
    for (int attempt = 0; attempt < k_max_conflicts; ++attempt) {
        auto s = co_await get_or_create_secret();
        if (!s) co_return s.err();
        const auto before = aliases_of(*s);
        const auto after = sm_next_aliases(before, version, keep_previous);
        if (after == before) co_return result<void>{};
        auto r = co_await call("PATCH", "/v1/" + secret_path() + "?updateMask=versionAliases",
                               sm_aliases_body(after, s->value("etag", "")));
        if (!r) co_return r.err();
        if (r->status == 200) co_return result<void>{};
        if (is_conflict(*r)) continue;
        co_return make_error(error::kind::http,
                             describe() + ": aliases: " + describe_google_reply(*r), r->status);
    }
    co_return make_error(error::kind::http, describe() + ": aliases: still conflicting", 409);
}

net::awaitable<result<receipt>> secret_manager_target::put(const payload& p) {
    const field_map fields = payload_fields(p);
    std::string text = fields_json(fields);
    receipt rc;
    rc.target = describe();
    rc.key = p.fingerprint();
    rc.digest = fields_digest(fields);
    rc.crc32c = crc32c(text);
    rc.has_previous = p.previous.has_value();
    auto s = co_await get_or_create_secret();
    if (!s) {
        cleanse(text);
        co_return s.err();
    }
    // Already there? The version `current` names, or the latest (an addVersion
    // whose answer was lost): compared by the digest of the fields.
    const auto aliases = aliases_of(*s);
    std::vector<std::string> candidates;
    if (auto c = aliases.find("current"); c != aliases.end()) candidates.push_back(c->second);
    candidates.push_back("latest");
    std::string version;
    for (const auto& c : candidates) {
        auto got = co_await access(c);
        if (!got) {
            cleanse(text);
            co_return got.err();
        }
        const auto& v = *got;
        if (v && v->checksum_ok && v->digest == rc.digest && !v->version.empty()) {
            version = v->version;
            break;
        }
    }
    if (version.empty()) {
        auto added = co_await call("POST", "/v1/" + secret_path() + ":addVersion",
                                   sm_add_version_body(text));
        cleanse(text);
        if (!added) co_return added.err();
        if (added->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": addVersion: " + describe_google_reply(*added),
                                 added->status);
        const json v = json::parse(added->body, nullptr, false);
        version = v.is_object() ? sm_version_number(v.value("name", "")) : "";
        if (version.empty())
            co_return make_error(error::kind::protocol,
                                 describe() + ": addVersion: the answer names no version");
        rc.written = true;
    }
    cleanse(text);
    auto aliased = co_await set_aliases(version, p.previous.has_value());
    if (!aliased) co_return aliased.err();
    rc.version = version;
    co_return rc;
}

net::awaitable<result<void>> secret_manager_target::verify(const receipt& r) {
    auto v = co_await call("GET", "/v1/" + secret_path() + "/versions/" + r.version, "");
    if (!v) co_return v.err();
    if (v->status != 200)
        co_return make_error(
            error::kind::http,
            describe() + ": verify: version " + r.version + ": " + describe_google_reply(*v),
            v->status);
    const json vj = json::parse(v->body, nullptr, false);
    const std::string state = vj.is_object() ? vj.value("state", "") : "";
    if (state != "ENABLED")
        co_return make_error(error::kind::protocol,
                             describe() + ": verify: version " + r.version + " is " +
                                 (state.empty() ? "of unknown state" : state));
    auto got = co_await access(r.version);
    if (!got) co_return got.err();
    const auto& view = *got;
    if (!view || !view->checksum_ok || view->crc32c != r.crc32c || view->digest != r.digest)
        co_return make_error(
            error::kind::protocol,
            describe() + ": verify: version " + r.version +
                " does not hold what was written (key " + r.key + "; holds " +
                (view && !view->key.empty() ? "key " + view->key : std::string("no readable key")) +
                ")");
    auto s = co_await get_or_create_secret();
    if (!s) co_return s.err();
    const auto aliases = aliases_of(*s);
    const auto cur = aliases.find("current");
    if (cur == aliases.end() || cur->second != r.version)
        co_return make_error(error::kind::protocol,
                             describe() + ": verify: alias current names version " +
                                 (cur == aliases.end() ? std::string("none") : cur->second) +
                                 ", not " + r.version);
    co_return result<void>{};
}

net::awaitable<result<holding>> secret_manager_target::inspect() {
    auto got = co_await call("GET", "/v1/" + secret_path(), "");
    if (!got) co_return got.err();
    holding h;
    if (got->status == 404) co_return h;
    if (got->status != 200)
        co_return make_error(error::kind::http,
                             describe() + ": read: " + describe_google_reply(*got), got->status);
    const json j = json::parse(got->body, nullptr, false);
    if (!j.is_object()) co_return make_error(error::kind::protocol, describe() + ": not a Secret");
    if (!sm_owned(j)) {
        error e = make_error(error::kind::config,
                             describe() + ": exists without the label managed-by=keyrotd");
        e.code = "NOT_OWNED";
        co_return e;
    }
    h.present = true;
    // What readers of `current` get (`latest` before keyrotd set an alias).
    const auto aliases = aliases_of(j);
    const auto cur = aliases.find("current");
    // (a named argument: GCC 12 frees a temporary passed to a coroutine twice)
    const std::string version = cur == aliases.end() ? std::string("latest") : cur->second;
    auto v = co_await access(version);
    if (!v) co_return v.err();
    if (const auto& view = *v) {
        h.key = view->key;
        h.previous = view->previous;
        h.version = view->version;
    }
    co_return h;
}

net::awaitable<result<void>> secret_manager_target::drop_previous(const receipt& r) {
    auto s = co_await get_or_create_secret();
    if (!s) co_return s.err();
    const auto aliases = aliases_of(*s);
    const auto cur = aliases.find("current");
    if (cur == aliases.end() || cur->second != r.version)
        co_return make_error(error::kind::protocol,
                             describe() + ": drop previous: alias current names version " +
                                 (cur == aliases.end() ? std::string("none") : cur->second) +
                                 ", not " + r.version + "; left alone");
    const auto prev = aliases.find("previous");
    const long long keep_from = as_number(prev != aliases.end() ? prev->second : cur->second);
    if (keep_from <= 0)
        co_return make_error(error::kind::protocol, describe() + ": drop previous: bad alias");
    std::vector<std::string> older;
    std::string page;
    for (int n = 0; n < k_max_pages; ++n) {
        std::string path = "/v1/" + secret_path() + "/versions?filter=state:ENABLED&pageSize=100";
        if (!page.empty()) path += "&pageToken=" + page;
        auto l = co_await call("GET", path, "");
        if (!l) co_return l.err();
        if (l->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": list versions: " + describe_google_reply(*l),
                                 l->status);
        const json j = json::parse(l->body, nullptr, false);
        if (!j.is_object())
            co_return make_error(error::kind::protocol, describe() + ": list versions: bad answer");
        if (auto vs = j.find("versions"); vs != j.end() && vs->is_array())
            for (const auto& v : *vs) {
                if (!v.is_object() || v.value("state", "") != "ENABLED") continue;
                const std::string num = sm_version_number(v.value("name", ""));
                const long long x = as_number(num);
                if (x > 0 && x < keep_from) older.push_back(num);
            }
        page = j.value("nextPageToken", "");
        if (page.empty()) break;
    }
    for (const auto& num : older) {
        auto d =
            co_await call("POST", "/v1/" + secret_path() + "/versions/" + num + ":disable", "{}");
        if (!d) co_return d.err();
        if (d->status != 200)
            co_return make_error(
                error::kind::http,
                describe() + ": disable version " + num + ": " + describe_google_reply(*d),
                d->status);
    }
    co_return result<void>{};
}

}  // namespace keyrot::deliver
