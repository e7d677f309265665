// leader_driver: one leader_elector on the lease that lease_config_from_env()
// describes (the test sets KEYROTD_LEASE_URL, POD_NAME, POD_NAMESPACE, ...).
// Prints, one line each, flushed, times in epoch milliseconds:
//   LEADER <identity> <ts> <write_deadline>     may_write() turned true
//   FOLLOWER <identity> <ts> <write_deadline>   may_write() turned false
//   RENEW <identity> <ts> <write_deadline>      a take-over or renewal succeeded
//   EXIT <identity> <ts>
// SIGTERM/SIGINT: stop (release the lease) and exit 0. Logs go to stderr.
// The printed times are the machine's real clock (write deadlines converted from
// the elector's steady clock), so the test can line drivers up. The clock the
// elector writes into the Lease is this replica's own:
//   LEADER_DRIVER_CLOCK_OFFSET_MS  added to it from the start (skew, may be < 0)
//   LEADER_DRIVER_CLOCK_STEP_MS    SIGUSR1 steps it forward by this, SIGUSR2 back
//                                  (an NTP step; the elector must not care)
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>

#include "common/asio.hpp"
#include "common/time.hpp"
#include "http/client.hpp"
#include "sched/leader.hpp"

namespace {

using std::chrono::milliseconds;

// The machine's real clock in epoch milliseconds, as the lines print it.
std::int64_t now_ms() { return keyrot::as_millis(keyrot::system_now()); }

// A steady-clock deadline as real epoch milliseconds (0 for "none").
std::int64_t to_epoch(keyrot::sched::steady_time t) {
    if (t == keyrot::sched::steady_time{}) return 0;
    return keyrot::as_millis(keyrot::system_now() + std::chrono::duration_cast<milliseconds>(
                                                        t - std::chrono::steady_clock::now()));
}

void line(const char* what, const std::string& id, keyrot::sched::steady_time deadline) {
    std::printf("%s %s %lld %lld\n", what, id.c_str(), static_cast<long long>(now_ms()),
                static_cast<long long>(to_epoch(deadline)));
    std::fflush(stdout);
}

milliseconds env_ms(const char* name) {
    const char* v = std::getenv(name);
    return milliseconds(v && *v ? std::stoll(v) : 0);
}

}  // namespace

int main() {
    namespace net = keyrot::net;
    spdlog::set_default_logger(spdlog::stderr_logger_mt("leader_driver"));
    spdlog::set_level(spdlog::level::debug);
    std::optional<keyrot::sched::lease_config> cfg;
    try {
        cfg = keyrot::sched::lease_config_from_env();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "leader_driver: %s\n", e.what());
        return 78;
    }
    if (!cfg) {
        std::fprintf(stderr, "leader_driver: no lease config (set KEYROTD_LEASE_URL)\n");
        return 78;
    }
    net::io_context io;
    auto client =
        keyrot::http::client::create(io.get_executor(), keyrot::sched::lease_http_options(*cfg));
    if (!client) {
        std::fprintf(stderr, "leader_driver: %s\n", client.err().describe().c_str());
        return 78;
    }
    milliseconds skew = env_ms("LEADER_DRIVER_CLOCK_OFFSET_MS");
    const milliseconds step = env_ms("LEADER_DRIVER_CLOCK_STEP_MS");
    keyrot::sched::leader_elector elector(io.get_executor(), **client, *cfg,
                                          [&skew] { return keyrot::system_now() + skew; });
    const std::string id = cfg->identity;
    elector.on_change = [&](bool may_write) {
        line(may_write ? "LEADER" : "FOLLOWER", id, elector.write_deadline());
    };
    elector.on_renew = [&](keyrot::sched::steady_time deadline) { line("RENEW", id, deadline); };

    net::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) elector.stop();
    });
    net::signal_set steps(io, SIGUSR1, SIGUSR2);
    std::function<void(boost::system::error_code, int)> on_step = [&](boost::system::error_code ec,
                                                                      int sig) {
        if (ec) return;
        skew += sig == SIGUSR1 ? step : -step;
        std::printf("STEP %s %lld %lld\n", id.c_str(), static_cast<long long>(now_ms()),
                    static_cast<long long>(skew.count()));
        std::fflush(stdout);
        steps.async_wait(on_step);
    };
    steps.async_wait(on_step);
    int rc = 0;
    net::co_spawn(io, elector.run(), [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::fprintf(stderr, "leader_driver: elector died: %s\n", ex.what());
            }
            rc = 1;
        }
        signals.cancel();
        steps.cancel();
    });
    io.run();
    std::printf("EXIT %s %lld\n", id.c_str(), static_cast<long long>(now_ms()));
    std::fflush(stdout);
    return rc;
}
