// Serves a populated metrics registry on 127.0.0.1:0 with obs::http_server and
// prints "listening PORT" on stdout; exits 0 on SIGTERM/SIGINT after stop().
// Driven by obs_promtool_test.py, which runs `promtool check metrics` on it.
#include <csignal>
#include <cstdio>
#include <memory>

#include "common/asio.hpp"
#include "obs/http_server.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "obs/recorder.hpp"

namespace {

using namespace keyrot;

exec::action_record record(const char* action, const char* app, const char* key) {
    exec::action_record r;
    r.ts = as_sys_ms(1795608000123);
    r.organization = "acme-prod";
    r.developer = "dev@partner.example.com";
    r.app = app;
    r.policy = "partners-90d";
    r.action = exec::parse_audit_action(action).value();
    r.key = key;
    return r;
}

void populate(obs::metrics& m) {
    obs::recorder rec(nullptr, &m);
    rec.on_action(record("created", "billing", "0123456789abcdef"));
    auto late = record("created", "billing", "1111111111111111");
    late.late = true;
    rec.on_action(late);
    rec.on_action(record("completed", "billing", "0123456789abcdef"));
    rec.on_action(record("revoked", "billing", "fedcba9876543210"));
    rec.on_action(record("deleted", "billing", "fedcba9876543210"));
    rec.on_action(record("failed", "legacy", "2222222222222222"));
    auto drift = record("skipped", "legacy", "2222222222222222");
    drift.detail = "not revoked (drift)";
    rec.on_action(drift);
    auto dry = record("created", "billing", "3333333333333333");
    dry.dry_run = true;
    rec.on_action(dry);

    exec::pass_summary s;
    s.organization = "acme-prod";
    s.ok = true;
    s.started = as_sys_ms(1795608000000);
    s.took = std::chrono::duration<double>(4.2);
    s.next_wake = as_sys_ms(1795611600000);
    s.by_policy.push_back({.policy = "partners-90d",
                           .valid = 10,
                           .due = 2,
                           .overlap = 1,
                           .expired = 3,
                           .revoked = 4,
                           .apps_without_valid_key = 1});
    exec::key_record k;
    k.developer = "dev@partner.example.com";
    k.policy = "partners-90d";
    k.key.state = plan::key_state::valid;
    k.key.expires_at = as_sys_ms(1803384000000);
    k.app = "billing";
    k.key.fingerprint = "0123456789abcdef";
    s.keys.push_back(k);
    // Label values that need escaping in the text format.
    k.app = "odd \"quoted\" \\ app\nname";
    k.key.fingerprint = "4444444444444444";
    s.keys.push_back(k);
    rec.on_pass(s);

    m.on_apigee_request("GET", 200, 0.042);
    m.on_apigee_request("POST", 201, 0.3);
    m.on_apigee_request("POST", 429, 0.01);
    m.on_apigee_request("DELETE", 0, 30);
    m.on_config_reload(true);
    m.on_config_reload(false);
    m.on_audit_failure();
    m.set_interval(600);
    m.set_leader(true);
}

}  // namespace

int main() {
    obs::setup_logging("warn", "text");
    net::io_context io;
    auto registry = std::make_shared<prometheus::Registry>();
    obs::metrics m(registry, {.version = "0.1.0-test"});
    populate(m);

    obs::http_server server(io, registry,
                            [] {
                                return std::pair<bool, std::string>{true, ""};
                            },
                            {.listen = "127.0.0.1:0"});
    server.start();
    std::printf("listening %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);

    net::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) { server.stop(); });
    io.run();
    return 0;
}
