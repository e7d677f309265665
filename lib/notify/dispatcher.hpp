// The delivery side of keyrot::notify: sinks and the dispatcher that drains the
// outbox into them.
//
// Contract:
// - publish() is what the rotation code calls. It picks the sinks whose filter
//   matches (disabled ones skipped), stores the event in the outbox (durable
//   before it returns, see outbox.hpp), wakes the dispatcher and returns. It
//   never waits for the network: a slow or dead receiver cannot slow a
//   rotation. A `full` or `failed` result must be logged loudly by the caller.
// - run() is a coroutine of its own (co_spawn it once on the daemon's
//   io_context). Per sink, one attempt is in flight at a time, oldest due event
//   first, so one receiver's trouble never holds up another. After a failed
//   attempt the whole sink pauses along the retry schedule (delivery.hpp) of
//   its consecutive failures: a dead receiver gets a probe at 5 s, 5 min,
//   30 min, … rather than one request per queued event; each event keeps its
//   own attempts and next time (persisted), and is abandoned max_age after it
//   was recorded, tried or not.
// - 410 Gone disables the sink for the life of this dispatcher: its pending
//   events are dropped and reported, later events are not stored for it. A
//   restart tries it again (one request, which will disable it again).
// - A sink may refuse an event for good (outcome::refuse: an SMTP 5xx): the
//   (event, sink) pair is finished and reported `refused`, never retried; the
//   sink is not paused (the server answered).
// - Everything that happens is reported through options.on_report (for logs,
//   metrics and alerts); the dispatcher itself neither logs nor throws.
// - stop() makes run() return once in-flight attempts have finished (each is
//   bounded by its sink's timeout). Events still pending stay in the outbox.
// - One thread runs the io_context; outbox, sinks and dispatcher must outlive run().
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "notify/config.hpp"
#include "notify/delivery.hpp"
#include "notify/event.hpp"
#include "notify/outbox.hpp"

namespace keyrot::notify {

// One delivery attempt's result. status 0: no answer (error says why).
struct attempt_result {
    int status = 0;     // HTTP status, or for email 250 when sent, else the SMTP reply code
    std::string error;  // empty when delivered; never holds a secret
    std::optional<milliseconds> retry_after;  // from a Retry-After header
    // Set by a sink that knows better than classify(status) (email: SMTP codes).
    std::optional<outcome> verdict;
};

// A destination. deliver() makes exactly one attempt and does not throw for
// expected failures.
class sink {
  public:
    virtual ~sink() = default;
    virtual const std::string& name() const = 0;
    virtual const sink_filter& filter() const = 0;
    // Whether publish() stores `e` for this sink: its filter, and for email
    // whether anyone may receive it.
    virtual bool wants(const event& e) const { return matches(filter(), e); }
    virtual net::awaitable<attempt_result> deliver(std::string id, std::string body) = 0;
};

struct report {
    enum class kind {
        delivered,  // 2xx
        retrying,   // failed; next_at says when this event is tried again
        abandoned,  // max_age reached without delivery
        disabled,   // 410 Gone: the sink is off; `dropped` events went with it
        refused,    // the receiver refused this event for good (SMTP 5xx): not retried
        dropped,    // pending for a sink that is not configured (any more)
        not_stored  // publish() could not store the event (full or I/O): see error
    };
    kind what = kind::delivered;
    std::string sink;
    std::string id;
    std::string type;
    int attempts = 0;  // attempts made for this (event, sink), this one included
    int status = 0;
    std::string error;
    std::optional<sys_ms> next_at;
    std::size_t dropped = 0;
    bool durable = true;  // false: the outbox could not record the new state
};

struct dispatcher_options {
    milliseconds max_age = 3 * k_day;
    std::vector<milliseconds> schedule = spec_retry_schedule();  // tests shorten it
    std::function<sys_ms()> clock;                               // default: the system clock
    std::function<double()> random01;                            // default: a PRNG; jitter
    std::function<void(const report&)> on_report;
};

class dispatcher {
  public:
    dispatcher(const net::any_io_executor& ex, outbox& box,
               std::vector<std::unique_ptr<sink>> sinks, dispatcher_options opts);
    ~dispatcher();
    dispatcher(const dispatcher&) = delete;
    dispatcher& operator=(const dispatcher&) = delete;

    // See the contract above. Returns `added` (also when no sink wants it),
    // `duplicate`, or `full`/`failed` with a reason.
    add_result publish(const event& e);

    net::awaitable<void> run();
    void stop();

    std::size_t depth() const { return box_.depth(); }
    // How long the oldest undelivered event has waited; 0 when none.
    milliseconds oldest_age() const;
    bool disabled(const std::string& sink) const;
    std::size_t in_flight() const { return in_flight_; }

  private:
    struct slot;
    net::awaitable<void> attempt(std::size_t slot_index, std::string id);
    void sweep(sys_ms now);
    void wake();
    sys_ms now() const;
    void emit(const report& r) const;

    net::any_io_executor ex_;
    outbox& box_;
    std::vector<std::unique_ptr<slot>> slots_;
    dispatcher_options opts_;
    net::steady_timer timer_;
    bool stopping_ = false;
    bool running_ = false;
    std::size_t in_flight_ = 0;
    sys_ms last_sweep_{};
};

}  // namespace keyrot::notify
