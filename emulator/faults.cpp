#include "faults.hpp"

#include <algorithm>
#include <iterator>
#include <random>

#include "hooks.hpp"

namespace keyrot::emulator {

std::optional<response> injected_failure(state& st) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double r429 = u(st.fault_rng), r503 = u(st.fault_rng);
    if (st.fault.p429 > 0 && r429 < st.fault.p429) {
        auto r = error_response(429, "RESOURCE_EXHAUSTED", "Quota exceeded (emulated)");
        r.headers.emplace_back("Retry-After", std::to_string(st.fault.retry_after_seconds));
        r.delay_ms = st.fault.latency_ms;
        return r;
    }
    if (st.fault.p503 > 0 && r503 < st.fault.p503) {
        auto r = error_response(503, "UNAVAILABLE", "The service is unavailable (emulated)");
        r.headers.emplace_back("Retry-After", std::to_string(st.fault.retry_after_seconds));
        r.delay_ms = st.fault.latency_ms;
        return r;
    }
    return std::nullopt;
}

bool drop_after_write(state& st) {
    if (st.fault.p_drop_after_write <= 0) return false;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return u(st.fault_rng) < st.fault.p_drop_after_write;
}

// Corrupts what the emulator says about one app (f.hostile_app) in the
// org app list and in GET of that app; `page-loop` makes every list page's
// nextPageToken point back at the first page. Huge arrays and duplicate
// members are spliced in as raw text in place of marker strings, so the body
// is built without a json tree of 200,000 nodes (about 10 MB of text).
response hostile_response(const faults& f, json j, bool list) {
    const std::string& mode = f.hostile_mode;
    if (mode.empty()) return json_response(j);
    if (mode == "page-loop") {
        // upper_bound of ("", "") is the first app: the token names page one.
        if (list) j["nextPageToken"] = to_hex("\x1f");
        return json_response(j);
    }
    if (mode == "page-cap") {
        // A server that stops after one page: no nextPageToken, totalSize intact.
        if (list) j.erase("nextPageToken");
        return json_response(j);
    }
    std::vector<std::pair<std::string, std::string>> splices;  // "marker" -> raw text
    auto corrupt = [&](json& a) {
        if (!a.is_object() || !a.contains("name") || a["name"] != f.hostile_app) return;
        json* creds =
            a.contains("credentials") && a["credentials"].is_array() && !a["credentials"].empty()
                ? &a["credentials"]
                : nullptr;
        if (mode == "wrong-types") {
            a["attributes"] = "not-a-list";
            if (creds) {
                (*creds)[0]["expiresAt"] = {{"seconds", 1}};
                (*creds)[0]["apiProducts"] = 42;
            }
        } else if (mode == "missing-fields") {
            if (creds)
                for (auto& c : *creds) {
                    c.erase("consumerKey");
                    c.erase("status");
                }
        } else if (mode == "huge-array") {
            std::string cs = creds ? creds->dump(-1, ' ', false, json::error_handler_t::replace)
                                   : std::string("[]");
            cs.pop_back();  // the closing ']'
            cs.reserve(cs.size() + 200000 * 32);
            for (int i = 0; i < 200000; ++i) {
                if (cs.size() > 1) cs += ',';
                cs += "{\"consumerKey\":\"junk-" + std::to_string(i) + "\"}";
            }
            cs += ']';
            std::string as = "[";
            as.reserve(100000 * 40);
            for (int i = 0; i < 100000; ++i) {
                if (i) as += ',';
                as += "{\"name\":\"junk-" + std::to_string(i) + "\",\"value\":\"x\"}";
            }
            as += ']';
            const auto n = std::to_string(splices.size());
            a["credentials"] = "@@hostile-credentials-" + n + "@@";
            a["attributes"] = "@@hostile-attributes-" + n + "@@";
            splices.emplace_back("\"@@hostile-credentials-" + n + "@@\"", std::move(cs));
            splices.emplace_back("\"@@hostile-attributes-" + n + "@@\"", std::move(as));
        } else if (mode == "duplicate-keys") {
            if (creds) creds->push_back((*creds)[0]);
            // "name":"X","name":"X" in place of "name":"X".
            const auto n = std::to_string(splices.size());
            std::string name = a["name"].dump(-1, ' ', false, json::error_handler_t::replace);
            a["name"] = "@@hostile-name-" + n + "@@";
            splices.emplace_back("\"@@hostile-name-" + n + "@@\"", name + ",\"name\":" + name);
        }
    };
    if (list) {
        if (j.contains("app") && j["app"].is_array())
            for (auto& a : j["app"]) corrupt(a);
    } else {
        corrupt(j);
    }
    response r = json_response(j);
    for (const auto& [marker, raw] : splices) {
        auto at = r.body.find(marker);
        if (at != std::string::npos) r.body.replace(at, marker.size(), raw);
    }
    return r;
}

// ---------------------------------------------------------------- the hook

namespace {

json faults_json(const state& st) {
    return json{{"latencyMs", st.fault.latency_ms},
                {"writeLatencyMs", st.fault.write_latency_ms},
                {"p503", st.fault.p503},
                {"p429", st.fault.p429},
                {"retryAfterSeconds", st.fault.retry_after_seconds},
                {"pDropAfterWrite", st.fault.p_drop_after_write},
                {"seed", st.fault.seed},
                {"metadataDown", st.auth.metadata_down},
                {"generateWipesApp", st.fault.generate_wipes_app},
                {"hostile", st.fault.hostile_mode.empty() ? json(nullptr)
                                                          : json{{"mode", st.fault.hostile_mode},
                                                                 {"app", st.fault.hostile_app}}}};
}

}  // namespace

response get_faults(state& st, const request&) { return json_response(faults_json(st)); }

response post_faults(state& st, const request& req) {
    json j = hook_body(req);
    auto num = [&](const char* name, double lo, double hi) -> std::optional<double> {
        auto it = j.find(name);
        if (it == j.end() || it->is_null()) return std::nullopt;
        double v = 0;
        if (it->is_number())
            v = it->get<double>();
        else if (auto i = json_int64(*it))
            v = static_cast<double>(*i);
        else
            fail(400, std::string(name) + " must be a number");
        if (v < lo || v > hi) fail(400, std::string(name) + " is out of range");
        return v;
    };
    faults f = st.fault;
    if (auto v = num("latencyMs", 0, 600000)) f.latency_ms = static_cast<millis>(*v);
    if (auto v = num("writeLatencyMs", 0, 600000)) f.write_latency_ms = static_cast<millis>(*v);
    if (auto v = num("p503", 0, 1)) f.p503 = *v;
    if (auto v = num("p429", 0, 1)) f.p429 = *v;
    if (auto v = num("retryAfterSeconds", 0, 86400)) f.retry_after_seconds = static_cast<int>(*v);
    if (auto v = num("pDropAfterWrite", 0, 1)) f.p_drop_after_write = *v;
    if (auto v = num("seed", 0, 1e18)) {
        f.seed = static_cast<std::uint64_t>(*v);
        st.fault_rng.seed(f.seed);
    }
    if (auto it = j.find("generateWipesApp"); it != j.end() && !it->is_null()) {
        if (!it->is_boolean()) fail(400, "generateWipesApp must be a boolean");
        f.generate_wipes_app = it->get<bool>();
    }
    std::optional<bool> metadata_down;
    if (auto it = j.find("metadataDown"); it != j.end() && !it->is_null()) {
        if (!it->is_boolean()) fail(400, "metadataDown must be a boolean");
        metadata_down = it->get<bool>();
    }
    if (auto it = j.find("hostile"); it != j.end()) {
        f.hostile_mode.clear();
        f.hostile_app.clear();
        if (!it->is_null()) {
            if (!it->is_object()) fail(400, "hostile must be an object or null");
            auto mode = it->find("mode");
            if (mode != it->end() && !mode->is_null()) {
                static const char* const modes[] = {"wrong-types", "missing-fields",
                                                    "huge-array",  "duplicate-keys",
                                                    "page-loop",   "page-cap"};
                if (!mode->is_string() || std::none_of(std::begin(modes), std::end(modes),
                                                       [&](const char* m) { return *mode == m; }))
                    fail(400,
                         "hostile.mode must be wrong-types, missing-fields, huge-array, "
                         "duplicate-keys, page-loop or page-cap");
                f.hostile_mode = mode->get<std::string>();
                auto app = it->find("app");
                if (app != it->end() && !app->is_null()) {
                    if (!app->is_string()) fail(400, "hostile.app must be a string");
                    f.hostile_app = app->get<std::string>();
                }
                if (f.hostile_app.empty() && f.hostile_mode != "page-loop" &&
                    f.hostile_mode != "page-cap")
                    fail(400, "hostile.app is required for this mode");
            }
        }
    }
    st.fault = f;
    if (metadata_down) st.auth.metadata_down = *metadata_down;
    return json_response(faults_json(st));
}

}  // namespace keyrot::emulator
