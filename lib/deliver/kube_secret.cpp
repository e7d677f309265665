#include "deliver/kube_secret.hpp"

#include <fstream>
#include <iterator>

#include "common/fingerprint.hpp"

namespace keyrot::deliver {

using json = nlohmann::json;

namespace {

// "HTTP 409 Conflict: the object has been modified" from a v1 Status (no data in it).
std::string describe_status_reply(const http::response& r) {
    std::string out = "HTTP " + std::to_string(r.status);
    const auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.value("kind", "") == "Status") {
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

json labels_of(const kube_secret_place& place) {
    json l = json::object();
    for (const auto& [k, v] : place.labels) l[k] = v;
    l[std::string(k_managed_by_label)] = std::string(k_owner);
    return l;
}

json annotations_of(const kube_secret_place& place) {
    json a = json::object();
    for (const auto& [k, v] : place.annotations) a[k] = v;
    return a;
}

// Parses an answer that may hold key material, wiping the raw body.
}  // namespace

std::string secret_create_body(const kube_secret_place& place, const field_map& fields) {
    json data = json::object();
    for (const auto& [k, v] : fields) data[k] = base64_encode(v.reveal());
    json obj = {{"apiVersion", "v1"},
                {"kind", "Secret"},
                {"type", "Opaque"},
                {"metadata",
                 {{"name", place.name},
                  {"namespace", place.namespace_},
                  {"labels", labels_of(place)},
                  {"annotations", annotations_of(place)}}},
                {"data", std::move(data)}};
    std::string out = obj.dump();
    wipe(obj);
    return out;
}

result<secret_view> read_secret(const json& obj) {
    if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].is_object())
        return make_error(error::kind::protocol, "not a Secret");
    secret_view v;
    const json& md = obj["metadata"];
    v.resource_version = md.value("resourceVersion", "");
    if (auto l = md.find("labels"); l != md.end() && l->is_object()) {
        auto it = l->find(std::string(k_managed_by_label));
        v.owned = it != l->end() && it->is_string() && it->get<std::string>() == k_owner;
    }
    if (auto d = obj.find("data"); d != obj.end() && d->is_object()) {
        for (const auto& name : field_names()) {
            auto it = d->find(name);
            if (it == d->end()) continue;
            if (!it->is_string())
                return make_error(error::kind::protocol, "data." + name + " is not a string");
            auto decoded = base64_decode(it->get_ref<const std::string&>());
            if (!decoded)
                return make_error(error::kind::protocol, "data." + name + " is not base64");
            v.fields[name] = secret(std::move(*decoded));
        }
    }
    return v;
}

bool metadata_in_place(const json& current, const kube_secret_place& place) {
    const json& md = current["metadata"];
    const auto has_all = [&](const char* key, const json& want) {
        const auto it = md.find(key);
        for (const auto& [k, v] : want.items()) {
            if (it == md.end() || !it->is_object()) return false;
            const auto f = it->find(k);
            if (f == it->end() || *f != v) return false;
        }
        return true;
    };
    return has_all("labels", labels_of(place)) && has_all("annotations", annotations_of(place));
}

std::string secret_update_body(const json& current, const kube_secret_place& place,
                               const field_map& fields) {
    json obj = current;
    json& md = obj["metadata"];
    if (!md.contains("labels") || !md["labels"].is_object()) md["labels"] = json::object();
    const json labels = labels_of(place);
    for (const auto& [k, v] : labels.items()) md["labels"][k] = v;
    if (!md.contains("annotations") || !md["annotations"].is_object())
        md["annotations"] = json::object();
    const json annotations = annotations_of(place);
    for (const auto& [k, v] : annotations.items()) md["annotations"][k] = v;
    if (!obj.contains("data") || !obj["data"].is_object()) obj["data"] = json::object();
    json& data = obj["data"];
    for (const auto& name : field_names())
        if (auto it = data.find(name); it != data.end()) {
            wipe(*it);
            data.erase(it);
        }
    for (const auto& [k, v] : fields) data[k] = base64_encode(v.reveal());
    std::string out = obj.dump();
    wipe(obj);
    return out;
}

// ---------------------------------------------------------------- the target

kubernetes_secret_target::kubernetes_secret_target(http::client& client, std::string token_file,
                                                   kube_secret_place place)
    : client_(client), token_file_(std::move(token_file)), place_(std::move(place)) {}

std::string kubernetes_secret_target::describe() const {
    return "kubernetesSecret " + place_.namespace_ + "/" + place_.name;
}

std::string kubernetes_secret_target::item_path() const {
    return "/api/v1/namespaces/" + place_.namespace_ + "/secrets/" + place_.name;
}

net::awaitable<result<http::response>> kubernetes_secret_target::call(std::string method,
                                                                      std::string path,
                                                                      std::string body) {
    std::string token = read_secret_file(token_file_);
    if (token.empty()) {
        cleanse(body);
        co_return make_error(error::kind::auth,
                             describe() + ": cannot read the service account token " + token_file_);
    }
    http::request req;
    req.method = std::move(method);
    req.target = std::move(path);
    req.body = std::move(body);
    if (!req.body.empty()) req.content_type = "application/json";
    req.headers.emplace_back("Accept", "application/json");
    std::string value = "Bearer " + token;
    req.authorization = secret(value);
    cleanse(value);
    cleanse(token);
    auto r = co_await client_.send(std::move(req));
    co_return r;
}

net::awaitable<result<receipt>> kubernetes_secret_target::put(const payload& p) {
    const field_map fields = payload_fields(p);
    receipt rc;
    rc.target = describe();
    rc.key = p.fingerprint();
    rc.digest = fields_digest(fields);
    rc.has_previous = p.previous.has_value();
    for (int attempt = 0; attempt < k_max_conflicts; ++attempt) {
        auto got = co_await call("GET", item_path(), "");
        if (!got) co_return got.err();
        if (got->status == 404) {
            auto created =
                co_await call("POST", "/api/v1/namespaces/" + place_.namespace_ + "/secrets",
                              secret_create_body(place_, fields));
            if (!created) co_return created.err();
            if (created->status == 409) continue;  // created meanwhile: read it
            if (created->status != 201 && created->status != 200)
                co_return make_error(error::kind::http,
                                     describe() + ": create: " + describe_status_reply(*created),
                                     created->status);
            json obj = parse_wiping(*created);
            auto view = read_secret(obj);
            wipe(obj);
            if (!view)
                co_return make_error(error::kind::protocol,
                                     describe() + ": create: " + view.err().message);
            rc.version = view->resource_version;
            rc.written = true;
            co_return rc;
        }
        if (got->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": read: " + describe_status_reply(*got),
                                 got->status);
        json obj = parse_wiping(*got);
        auto view = read_secret(obj);
        if (!view) {
            wipe(obj);
            co_return make_error(error::kind::protocol, describe() + ": " + view.err().message);
        }
        if (!view->owned) {
            wipe(obj);
            error e = make_error(error::kind::config,
                                 describe() + ": refused: the Secret exists without the label " +
                                     std::string(k_managed_by_label) + "=" + std::string(k_owner) +
                                     " (keyrotd never writes a Secret it does not manage)");
            e.code = "NOT_OWNED";
            co_return e;
        }
        if (fields_digest(view->fields) == rc.digest && metadata_in_place(obj, place_)) {
            wipe(obj);
            rc.version = view->resource_version;
            co_return rc;
        }
        std::string body = secret_update_body(obj, place_, fields);
        wipe(obj);
        auto updated = co_await call("PUT", item_path(), std::move(body));
        if (!updated) co_return updated.err();
        if (updated->status == 409) continue;  // modified since read: read again
        if (updated->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": update: " + describe_status_reply(*updated),
                                 updated->status);
        json after = parse_wiping(*updated);
        auto written = read_secret(after);
        wipe(after);
        if (!written)
            co_return make_error(error::kind::protocol,
                                 describe() + ": update: " + written.err().message);
        rc.version = written->resource_version;
        rc.written = true;
        co_return rc;
    }
    co_return make_error(error::kind::http,
                         describe() + ": still conflicting after " +
                             std::to_string(k_max_conflicts) + " attempts (409)",
                         409);
}

net::awaitable<result<void>> kubernetes_secret_target::verify(const receipt& r) {
    auto got = co_await call("GET", item_path(), "");
    if (!got) co_return got.err();
    if (got->status != 200)
        co_return make_error(error::kind::http,
                             describe() + ": verify: " + describe_status_reply(*got), got->status);
    json obj = parse_wiping(*got);
    auto view = read_secret(obj);
    wipe(obj);
    if (!view) co_return make_error(error::kind::protocol, describe() + ": " + view.err().message);
    if (!view->owned)
        co_return make_error(error::kind::config,
                             describe() + ": verify: the Secret lost its managed-by label");
    if (fields_digest(view->fields) != r.digest) {
        const std::string holds = current_key_fingerprint(view->fields);
        co_return make_error(error::kind::protocol,
                             describe() + ": verify: holds " +
                                 (holds.empty() ? std::string("no key") : "key " + holds) +
                                 ", not what was written (key " + r.key + ", resourceVersion " +
                                 r.version + " -> " + view->resource_version + ")");
    }
    co_return result<void>{};
}

net::awaitable<result<holding>> kubernetes_secret_target::inspect() {
    auto got = co_await call("GET", item_path(), "");
    if (!got) co_return got.err();
    holding h;
    if (got->status == 404) {
        cleanse(got->body);
        co_return h;
    }
    if (got->status != 200)
        co_return make_error(error::kind::http,
                             describe() + ": read: " + describe_status_reply(*got), got->status);
    json obj = parse_wiping(*got);
    auto view = read_secret(obj);
    wipe(obj);
    if (!view) co_return make_error(error::kind::protocol, describe() + ": " + view.err().message);
    if (!view->owned) {
        error e = make_error(error::kind::config, describe() + ": exists without the label " +
                                                      std::string(k_managed_by_label) + "=" +
                                                      std::string(k_owner));
        e.code = "NOT_OWNED";
        co_return e;
    }
    h.present = true;
    h.key = current_key_fingerprint(view->fields);
    h.previous = previous_key_fingerprint(view->fields);
    h.version = view->resource_version;
    co_return h;
}

net::awaitable<result<void>> kubernetes_secret_target::drop_previous(const receipt& r) {
    for (int attempt = 0; attempt < k_max_conflicts; ++attempt) {
        auto got = co_await call("GET", item_path(), "");
        if (!got) co_return got.err();
        if (got->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": drop previous: " + describe_status_reply(*got),
                                 got->status);
        json obj = parse_wiping(*got);
        auto view = read_secret(obj);
        if (!view || !view->owned) {
            wipe(obj);
            co_return make_error(view ? error::kind::config : error::kind::protocol,
                                 describe() + ": drop previous: " +
                                     (view ? std::string("the Secret lost its managed-by label")
                                           : view.err().message));
        }
        const std::string holds = current_key_fingerprint(view->fields);
        if (holds != r.key) {
            wipe(obj);
            co_return make_error(error::kind::protocol, describe() + ": drop previous: holds key " +
                                                            holds + ", not " + r.key +
                                                            "; left alone");
        }
        field_map keep;
        for (auto& [k, v] : view->fields)
            if (!is_previous_field(k)) keep[k] = v;
        if (keep.size() == view->fields.size()) {
            wipe(obj);
            co_return result<void>{};  // nothing to drop
        }
        std::string body = secret_update_body(obj, place_, keep);
        wipe(obj);
        auto updated = co_await call("PUT", item_path(), std::move(body));
        if (!updated) co_return updated.err();
        if (updated->status == 409) continue;
        if (updated->status != 200)
            co_return make_error(error::kind::http,
                                 describe() + ": drop previous: " + describe_status_reply(*updated),
                                 updated->status);
        cleanse(updated->body);
        co_return result<void>{};
    }
    co_return make_error(error::kind::http,
                         describe() + ": drop previous: still conflicting after " +
                             std::to_string(k_max_conflicts) + " attempts (409)",
                         409);
}

}  // namespace keyrot::deliver
