#include "notify/dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <random>

namespace keyrot::notify {

struct dispatcher::slot {
    std::unique_ptr<sink> s;
    bool busy = false;
    bool disabled = false;
    int failures = 0;   // consecutive failed attempts
    sys_ms ready_at{};  // paused until then after a failure
};

dispatcher::dispatcher(const net::any_io_executor& ex, outbox& box,
                       std::vector<std::unique_ptr<sink>> sinks, dispatcher_options opts)
    : ex_(ex), box_(box), opts_(std::move(opts)), timer_(ex) {
    for (auto& s : sinks) {
        auto sl = std::make_unique<slot>();
        sl->s = std::move(s);
        slots_.push_back(std::move(sl));
    }
    if (!opts_.clock) opts_.clock = system_now;
    if (!opts_.random01)
        opts_.random01 = [rng = std::mt19937_64(std::random_device{}())]() mutable {
            return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        };
    if (opts_.schedule.empty()) opts_.schedule = spec_retry_schedule();
}

dispatcher::~dispatcher() = default;

sys_ms dispatcher::now() const { return opts_.clock(); }

void dispatcher::emit(const report& r) const {
    if (opts_.on_report) opts_.on_report(r);
}

void dispatcher::wake() { timer_.cancel(); }

void dispatcher::stop() {
    stopping_ = true;
    wake();
}

bool dispatcher::disabled(const std::string& sink) const {
    for (const auto& sl : slots_)
        if (sl->s->name() == sink) return sl->disabled;
    return false;
}

milliseconds dispatcher::oldest_age() const {
    const auto oldest = box_.oldest_added();
    return oldest ? std::max(milliseconds(0), now() - *oldest) : milliseconds(0);
}

add_result dispatcher::publish(const event& e) {
    std::vector<std::string> names;
    for (const auto& sl : slots_)
        if (!sl->disabled && sl->s->wants(e)) names.push_back(sl->s->name());
    auto r = box_.add(e, names, now());
    if (!r.stored()) {
        report rep;
        rep.what = report::kind::not_stored;
        rep.id = e.id;
        rep.type = std::string(to_string(e.f.type));
        rep.error = r.reason;
        rep.durable = false;
        emit(rep);
    }
    if (r.status == add_status::added && !names.empty()) wake();
    return r;
}

// Abandons every (event, sink) pair older than max_age, whether it was tried or
// not: a sink paused for a day still loses its stale events on time. A sink
// with an attempt in flight is left to that attempt (or the next sweep).
void dispatcher::sweep(sys_ms t) {
    last_sweep_ = t;
    // (No structured binding: clang 14 cannot capture one in the lambda below.)
    for (const auto& entry : box_.older_than(t - opts_.max_age)) {
        const std::string& id = entry.first;
        const std::string& name = entry.second;
        const auto it = std::find_if(slots_.begin(), slots_.end(),
                                     [&](const auto& sl) { return sl->s->name() == name; });
        if (it != slots_.end() && (*it)->busy) continue;
        const outbox_entry* e = box_.find(id);
        if (!e || !e->pending.count(name)) continue;
        report rep;
        rep.what = report::kind::abandoned;
        rep.sink = name;
        rep.id = id;
        rep.type = e->type;
        rep.attempts = e->pending.at(name).attempts;
        rep.error = e->pending.at(name).last_error;
        rep.durable = box_.finish(id, name);
        emit(rep);
    }
}

net::awaitable<void> dispatcher::attempt(std::size_t i, std::string id) {
    slot& sl = *slots_[i];
    const std::string name = sl.s->name();
    const outbox_entry* e = box_.find(id);
    if (!e || !e->pending.count(name)) co_return;
    const std::string body = e->body;
    const std::string type = e->type;
    const sys_ms added = e->added_at;
    const int attempts = e->pending.at(name).attempts + 1;

    attempt_result res = co_await sl.s->deliver(id, body);

    const sys_ms t = now();
    report rep;
    rep.sink = name;
    rep.id = id;
    rep.type = type;
    rep.attempts = attempts;
    rep.status = res.status;
    rep.error = res.error;
    const outcome verdict =
        res.verdict ? *res.verdict : (res.status == 0 ? outcome::retry : classify(res.status));
    switch (verdict) {
        case outcome::delivered:
            sl.failures = 0;
            sl.ready_at = {};
            rep.what = report::kind::delivered;
            rep.error.clear();
            rep.durable = box_.finish(id, name);
            break;
        case outcome::refuse:
            sl.failures = 0;
            sl.ready_at = {};
            rep.what = report::kind::refused;
            rep.durable = box_.finish(id, name);
            break;
        case outcome::disable:
            sl.disabled = true;
            rep.what = report::kind::disabled;
            rep.dropped = box_.drop_sink(name);
            break;
        case outcome::retry: {
            ++sl.failures;
            const auto pause = schedule_next(sl.failures, t, t, opts_.max_age, opts_.random01(),
                                             res.retry_after, opts_.schedule);
            sl.ready_at = pause.give_up ? t : pause.at;
            const auto next = schedule_next(attempts, added, t, opts_.max_age, opts_.random01(),
                                            res.retry_after, opts_.schedule);
            if (next.give_up) {
                rep.what = report::kind::abandoned;
                rep.durable = box_.finish(id, name);
            } else {
                rep.what = report::kind::retrying;
                rep.next_at = std::max(next.at, sl.ready_at);
                rep.durable =
                    box_.reschedule(id, name, delivery_state{attempts, *rep.next_at, res.error});
            }
            break;
        }
    }
    emit(rep);
}

net::awaitable<void> dispatcher::run() {
    running_ = true;
    // Events waiting for a sink that is no longer configured cannot be delivered.
    for (const auto& name : box_.sink_names()) {
        const bool known = std::any_of(slots_.begin(), slots_.end(),
                                       [&](const auto& sl) { return sl->s->name() == name; });
        if (known) continue;
        report rep;
        rep.what = report::kind::dropped;
        rep.sink = name;
        rep.dropped = box_.drop_sink(name);
        emit(rep);
    }
    while (!stopping_) {
        const sys_ms t = now();
        if (t - last_sweep_ >= k_minute) sweep(t);
        time_or_never wake_at;  // the earliest due delivery, if any
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            slot& sl = *slots_[i];
            if (sl.busy || sl.disabled) continue;
            const auto first = box_.earliest(sl.s->name());
            if (!first) continue;
            const sys_ms due = std::max(first->first, sl.ready_at);
            if (due <= t) {
                sl.busy = true;
                ++in_flight_;
                net::co_spawn(ex_, attempt(i, first->second),
                              [this, i](const std::exception_ptr& ep) {
                                  slots_[i]->busy = false;
                                  --in_flight_;
                                  if (ep) {
                                      // Only a bug gets here; report it and keep the sink going.
                                      report rep;
                                      rep.what = report::kind::retrying;
                                      rep.sink = slots_[i]->s->name();
                                      rep.error = "internal error in delivery";
                                      try {
                                          std::rethrow_exception(ep);
                                      } catch (const std::exception& ex) {
                                          rep.error += std::string(": ") + ex.what();
                                      } catch (...) {
                                      }
                                      slots_[i]->ready_at = now() + k_minute;
                                      emit(rep);
                                  }
                                  wake();
                              });
                continue;
            }
            wake_at = earliest(wake_at, due);
        }
        // The sweep, every minute, bounds it.
        const sys_ms until = earliest(wake_at, last_sweep_ + k_minute).at();
        timer_.expires_after(std::max(until - now(), milliseconds(0)));
        boost::system::error_code ec;
        co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    while (in_flight_ > 0) {
        timer_.expires_after(milliseconds(100));
        boost::system::error_code ec;
        co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    running_ = false;
}

}  // namespace keyrot::notify
