#include "hooks.hpp"

#include <algorithm>
#include <stdexcept>

#include "faults.hpp"
#include "seed.hpp"

namespace keyrot::emulator {

json hook_body(const request& req) {
    if (req.body.empty()) return json::object();
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(400, "Invalid JSON payload received.");
    return j;
}

namespace {

response get_state(state& st, const request&) { return json_response(dump_state(st)); }

response post_seed(state& st, const request& req) {
    json j = hook_body(req);
    try {
        load_seed(st, j);
    } catch (const std::runtime_error& e) {
        fail(400, e.what());
    }
    json names = json::array();
    for (const auto& [n, _] : st.orgs) names.push_back(n);
    return json_response({{"organizations", std::move(names)}});
}

response get_tokens(state& st, const request&) { return json_response(st.auth.dump()); }

// Edge: {"passcodes": ["PC", ...]} adds one-time SAML passcodes.
response post_passcodes(state& st, const request& req) {
    json j = hook_body(req);
    const json* list = field(j, "passcodes");
    if (list == nullptr || !list->is_array()) fail(400, "passcodes must be a list of strings");
    for (const auto& p : *list) {
        if (!p.is_string() || p.get_ref<const std::string&>().empty())
            fail(400, "passcodes must be a list of non-empty strings");
        st.auth.add_passcode(p.get<std::string>());
    }
    return get_tokens(st, req);
}

response get_requests(state& st, const request&) {
    json c = json::object();
    std::uint64_t total = 0;
    for (const auto& [k, v] : st.counters) {
        c[k] = v;
        total += v;
    }
    return json_response({{"total", total}, {"byRoute", c}});
}

response get_rate(state& st, const request&) {
    json list = json::array();
    std::uint64_t peak = 0;
    for (const auto& [s, n] : st.rate) {
        list.push_back({{"second", s}, {"count", n}});
        peak = std::max(peak, n);
    }
    return json_response({{"rate", std::move(list)}, {"peak", peak}});
}

response post_reset_counters(state& st, const request&) {
    st.counters.clear();
    st.rate.clear();
    return no_content();
}

response get_availability(state& st, const request&) {
    auto rec = [](const availability_record& r) {
        return json{{"ts", std::to_string(r.ts)},
                    {"org", r.org},
                    {"developer", r.developer},
                    {"team", r.team},
                    {"app", r.app},
                    {"usableBefore", r.usable_before},
                    {"usableKeys", r.usable_keys},
                    {"request", r.request},
                    {"key", r.key}};
    };
    json records = json::array(), lost = json::array();
    for (const auto& r : st.availability) records.push_back(rec(r));
    for (const auto& r : st.ever_lost_last) lost.push_back(rec(r));
    return json_response({{"records", std::move(records)},
                          {"everLostLast", std::move(lost)},
                          {"dropped", st.availability_dropped}});
}

response delete_availability(state& st, const request&) {
    st.availability.clear();
    st.ever_lost_last.clear();
    st.availability_dropped = 0;
    return no_content();
}

bool is_edge_reading(const std::string& n) {
    const auto& e = readings::edge_names();
    return std::find(e.begin(), e.end(), n) != e.end();
}

response get_readings(state& st, const request&) {
    json out = json::object();
    for (const auto& n : readings::names())
        if (st.edge || !is_edge_reading(n)) out[n] = st.profile.get(n);
    return json_response(out);
}

response post_readings(state& st, const request& req) {
    json j = hook_body(req);
    for (const auto& [name, v] : j.items()) {
        if (!v.is_boolean()) fail(400, name + " must be true or false");
        if (name == "strict") {
            st.profile.all(v.get<bool>());
        } else if ((!st.edge && is_edge_reading(name)) || !st.profile.set(name, v.get<bool>())) {
            fail(400, "unknown reading " + name);
        }
    }
    return get_readings(st, req);
}

response get_writes(state& st, const request&) {
    json out = json::array();
    for (const auto& w : st.writes)
        out.push_back({{"start", w.start},
                       {"end", w.end},
                       {"userAgent", w.user_agent},
                       {"request", w.request}});
    return json_response({{"writes", std::move(out)}});
}

response delete_writes(state& st, const request&) {
    st.writes.clear();
    return no_content();
}

response get_invariants(state& st, const request&) {
    json lost = json::array();
    for (const auto& l : st.markers_lost)
        lost.push_back({{"ts", std::to_string(l.ts)},
                        {"org", l.org},
                        {"app", l.app},
                        {"key", l.key},
                        {"request", l.request}});
    return json_response({{"markersLost", std::move(lost)}});
}

response delete_invariants(state& st, const request&) {
    st.markers_lost.clear();
    return no_content();
}

response get_clock(state& st, const request&) {
    return json_response({{"now", std::to_string(st.now())}, {"offsetMs", st.clock_offset_ms}});
}

response post_clock(state& st, const request& req) {
    json j = hook_body(req);
    if (auto it = j.find("advanceMs"); it != j.end()) {
        auto v = json_int64(*it);
        if (!v) fail(400, "advanceMs must be an int64");
        st.clock_offset_ms += *v;
    }
    if (auto it = j.find("offsetMs"); it != j.end()) {
        auto v = json_int64(*it);
        if (!v) fail(400, "offsetMs must be an int64");
        st.clock_offset_ms = *v;
    }
    return get_clock(st, req);
}

struct hook {
    const char* method;
    const char* path;
    response (*fn)(state& st, const request& req);
};

const hook k_hooks[] = {
    {"GET", "/__emulator/state", get_state},
    {"POST", "/__emulator/seed", post_seed},
    {"GET", "/__emulator/faults", get_faults},
    {"POST", "/__emulator/faults", post_faults},
    {"GET", "/__emulator/tokens", get_tokens},
    {"POST", "/__emulator/passcodes", post_passcodes},
    {"GET", "/__emulator/requests", get_requests},
    {"GET", "/__emulator/rate", get_rate},
    {"POST", "/__emulator/reset-counters", post_reset_counters},
    {"GET", "/__emulator/availability", get_availability},
    {"DELETE", "/__emulator/availability", delete_availability},
    {"GET", "/__emulator/readings", get_readings},
    {"POST", "/__emulator/readings", post_readings},
    {"GET", "/__emulator/writes", get_writes},
    {"DELETE", "/__emulator/writes", delete_writes},
    {"GET", "/__emulator/invariants", get_invariants},
    {"DELETE", "/__emulator/invariants", delete_invariants},
    {"GET", "/__emulator/clock", get_clock},
    {"POST", "/__emulator/clock", post_clock},
};

}  // namespace

response serve_hook(state& st, const request& req, const std::string& path) {
    bool known = false;
    for (const auto& h : k_hooks) {
        if (path != h.path) continue;
        if (req.method == h.method) return h.fn(st, req);
        known = true;
    }
    if (known) fail(405, "method " + req.method + " is not allowed on " + path);
    fail(404, "unknown emulator hook " + path);
}

}  // namespace keyrot::emulator
