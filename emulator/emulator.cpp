#include "emulator.hpp"

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "api.hpp"
#include "common/codec.hpp"
#include "hooks.hpp"
#include "oauth.hpp"
#include "seed.hpp"
#include "state.hpp"
#include "util.hpp"

namespace keyrot::emulator {

namespace {

constexpr std::int64_t k_rate_window_s = 3600;

// Splits and decodes the path of a /v1 call (after "v1") and its query.
// Percent-encoding that does not decode is a 400; a path outside /v1 a 404.
std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> seg;
    std::size_t pos = 1;
    if (path.empty() || path[0] != '/') fail(404, "unknown path");
    while (pos <= path.size()) {
        auto next = path.find('/', pos);
        if (next == std::string::npos) next = path.size();
        auto d = keyrot::percent_decode(std::string_view(path).substr(pos, next - pos), false);
        if (!d) fail(400, "bad percent-encoding in the path");
        seg.push_back(std::move(*d));
        pos = next + 1;
    }
    if (!seg.empty() && seg.back().empty()) seg.pop_back();  // trailing slash
    return seg;
}

std::multimap<std::string, std::string> parse_query(const std::string& query) {
    std::multimap<std::string, std::string> qs;
    std::size_t qp = 0;
    while (qp < query.size()) {
        auto amp = query.find('&', qp);
        if (amp == std::string::npos) amp = query.size();
        auto kv = std::string_view(query).substr(qp, amp - qp);
        auto eq = kv.find('=');
        auto k = keyrot::percent_decode(kv.substr(0, eq), true);
        auto v = eq == std::string_view::npos ? std::optional<std::string>("")
                                              : keyrot::percent_decode(kv.substr(eq + 1), true);
        if (!k || !v) fail(400, "bad percent-encoding in the query");
        if (!k->empty()) qs.emplace(std::move(*k), std::move(*v));
        qp = amp + 1;
    }
    return qs;
}

// Counts a /v1 request in the per-second rate (GET /__emulator/rate).
void count_rate(state& st) {
    using namespace std::chrono;
    auto sec = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    ++st.rate[sec];
    while (!st.rate.empty() && st.rate.begin()->first < sec - k_rate_window_s)
        st.rate.erase(st.rate.begin());
}

}  // namespace

emulator::emulator(std::string token) : state_(std::make_unique<state>()) {
    state_->auth.set_static_token(std::move(token));
}

emulator::~emulator() = default;

oauth& emulator::auth() { return state_->auth; }
void emulator::load_seed(const nlohmann::json& seed) { keyrot::emulator::load_seed(*state_, seed); }
void emulator::set_latency(millis ms) { state_->fault.latency_ms = ms; }
readings& emulator::profile() { return state_->profile; }
void emulator::set_list_latency_per_app_us(std::int64_t us) {
    state_->list_latency_per_app_us = us;
}
millis emulator::now() const { return state_->now(); }

void emulator::freeze(millis at, std::uint64_t seed) {
    state_->frozen_at = at;
    state_->id_rng.seed(seed);
}
void emulator::set_flavor(flavor f) {
    state_->edge = f == flavor::edge;
    state_->auth.set_edge(state_->edge);
}
void emulator::set_private_cloud(bool on) { state_->private_cloud = on; }

namespace {

// Sets edge_json() for the call being answered.
struct edge_scope {
    explicit edge_scope(bool on) { edge_json() = on; }
    ~edge_scope() { edge_json() = false; }
};

}  // namespace

response emulator::handle(const request& req) {
    edge_scope edge(state_->edge);
    try {
        std::string path = req.target, query;
        if (auto q = path.find('?'); q != std::string::npos) {
            query = path.substr(q + 1);
            path.resize(q);
        }
        if (path.rfind("/__emulator", 0) == 0) return serve_hook(*state_, req, path);
        // Google's OAuth token endpoint and the GCE metadata server share the
        // port; their tokens expire on the real clock (oauth.hpp).
        if (path == "/token") return state_->auth.token_endpoint(req, wall_ms());
        // The Edge login server (login.apigee.com) shares the port too.
        if (state_->edge && path == "/oauth/token") {
            auto qs = parse_query(query);
            auto mfa = qs.find("mfa_token");
            return state_->auth.edge_token_endpoint(req,
                                                    mfa == qs.end() ? std::string() : mfa->second,
                                                    wall_ms(), state_->profile.refresh_single_use);
        }
        if (path == "/computeMetadata/v1/instance/service-accounts/default/token")
            return state_->auth.metadata_token(req, wall_ms());

        std::vector<std::string> seg = split_path(path);
        auto qs = parse_query(query);
        if (seg.empty() || seg[0] != "v1") fail(404, "unknown path");
        seg.erase(seg.begin());
        if (state_->edge && !seg.empty() && seg[0] == "o") seg[0] = "organizations";
        count_rate(*state_);
        return serve_api(*state_, req, seg, qs);
    } catch (const api_error& e) {
        return error_response(e.code, e.status, e.message, e.edge_code);
    } catch (const nlohmann::json::exception&) {
        return error_response(400, "INVALID_ARGUMENT", "invalid request body");
    } catch (const std::exception&) {
        return error_response(500, "INTERNAL", "internal error");
    }
}

}  // namespace keyrot::emulator
