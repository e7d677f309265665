#include "notify/sinks.hpp"

#include "notify/email_sink.hpp"
#include "notify/webhook_sink.hpp"

namespace keyrot::notify {

result<sink_set> make_sinks(const net::any_io_executor& ex, const config& c) {
    sink_set out;
    for (const auto& w : c.webhooks) {
        auto s = webhook_sink::create(ex, w);
        if (!s) return s.err();
        out.names.push_back(w.name);
        out.sinks.push_back(std::move(s.value()));
    }
    for (const auto& m : c.emails) {
        auto s = email_sink::create(ex, m);
        if (!s) return s.err();
        out.names.push_back(m.name);
        out.sinks.push_back(std::move(s.value()));
    }
    return out;
}

}  // namespace keyrot::notify
