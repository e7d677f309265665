// Planner throughput: plan_app() and match_policy() over synthetic apps, as a
// pass does for every app of an organisation. Reports keys/s (items/s).
//   build/release/bench/planner_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "common/fingerprint.hpp"
#include "common/model.hpp"
#include "plan/planner.hpp"
#include "policy/config.hpp"

namespace {

using namespace keyrot;

constexpr sys_ms k_now{milliseconds{1'800'000'000'000}};

// One app with `keys` keys; `due` of the apps (1 in 10) hold a key expiring
// within rotateBefore, others a fresh one; every 7th app is mid-rotation
// (a complete successor, the old key in its overlap).
app make_app(int i, int keys) {
    app a;
    a.organization = "bench";
    a.developer_email = "dev" + std::to_string(i % 500) + "@bench.example";
    a.name = "app-" + std::to_string(i);
    a.attributes = {{"DisplayName", "Bench " + std::to_string(i)}, {"tier", "gold"}};
    a.callback_url = "https://bench.example/cb";
    for (int k = 0; k < keys; ++k) {
        credential c;
        c.consumer_key = secret("benchKey" + std::to_string(i) + "x" + std::to_string(k));
        c.fingerprint = fingerprint(c.consumer_key);
        c.status = approval::approved;
        c.issued_at = k_now - 30 * k_day;
        c.expires_at = (i % 10 == 0 && k == 0) ? k_now + 3 * k_day : k_now + 60 * k_day;
        c.attributes = {{"owner", "bench"}};
        c.scopes = {"read"};
        c.products = {{"payments", approval::approved}, {"reports", approval::revoked}};
        a.credentials.push_back(std::move(c));
    }
    if (i % 7 == 0 && !a.credentials.empty()) {
        credential s = a.credentials.front();
        s.consumer_key = secret("benchSucc" + std::to_string(i));
        s.fingerprint = fingerprint(s.consumer_key);
        s.issued_at = k_now - k_day;
        s.expires_at = k_now + 89 * k_day;
        s.attributes.push_back(
            {std::string(k_marker_attribute), a.credentials.front().fingerprint});
        a.credentials.push_back(std::move(s));
    }
    return a;
}

std::vector<policy::policy> make_policies() {
    std::vector<policy::policy> ps;
    for (int i = 0; i < 5; ++i) {
        policy::policy p;
        p.name = "p" + std::to_string(i);
        p.organization = "bench";
        p.priority = i;
        p.match.apps = {i == 0 ? "*" : "app-" + std::to_string(i) + "*"};
        p.match.developers = {"*@bench.example"};
        p.rotation.key_lifetime = 90 * k_day;
        p.rotation.rotate_before = 14 * k_day;
        p.rotation.overlap = 7 * k_day;
        ps.push_back(std::move(p));
    }
    return ps;
}

void bm_plan_apps(benchmark::State& st) {
    const int n = static_cast<int>(st.range(0));
    const int keys = static_cast<int>(st.range(1));
    std::vector<app> apps;
    apps.reserve(n);
    for (int i = 0; i < n; ++i) apps.push_back(make_app(i, keys));
    const auto policies = make_policies();
    std::size_t total_keys = 0;
    for (const auto& a : apps) total_keys += a.credentials.size();
    std::size_t actions = 0;
    for (auto _ : st) {
        for (const auto& a : apps) {
            const policy::policy* p = plan::match_policy(a, policies);
            if (p == nullptr) continue;
            auto plan = plan::plan_app(a, *p, k_now);
            actions += plan.actions.size();
            benchmark::DoNotOptimize(plan);
        }
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * total_keys));
    st.counters["keys"] = static_cast<double>(total_keys);
    st.counters["actions_per_pass"] =
        static_cast<double>(actions) / static_cast<double>(std::max<int64_t>(1, st.iterations()));
    st.SetLabel("items = keys");
}
BENCHMARK(bm_plan_apps)->Args({10'000, 2})->Args({100'000, 2})->Unit(benchmark::kMillisecond);

void bm_match_policy(benchmark::State& st) {
    const auto policies = make_policies();
    const app a = make_app(4242, 2);
    for (auto _ : st) benchmark::DoNotOptimize(plan::match_policy(a, policies));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(bm_match_policy);

}  // namespace

BENCHMARK_MAIN();
