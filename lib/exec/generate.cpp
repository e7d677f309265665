// The executor's generate part: the app's generate-key call, which rewrites
// the app, and the repair of what it wiped (Trap 1; docs/rotation.md). The
// steps around it are in make.cpp.
#include <optional>

#include "apigee/api.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

// The app's generate-key call with `before` (the app read right before: the
// body must repeat everything it holds); the new key is the one `before`
// did not have.
net::awaitable<executor::create_outcome> executor::generate_key(planned_app& pa,
                                                                const plan::action& act,
                                                                const plan::step& st,
                                                                const app& before) {
    const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
    create_outcome out;
    app body = before;
    body.api_products = st.products;
    body.scopes = st.scopes;
    const sys_ms now = clock_();
    body.key_expires_in = act.expires_at.is_never()
                              ? std::nullopt
                              : std::optional<milliseconds>(act.expires_at.at() - now);
    pa.reread = true;  // the app itself is rewritten: re-read it before planning again
    auto after = co_await api_.generate_key(owner, body);
    if (!after) {
        if (!maybe_applied(after.err())) {
            out.absent = true;
            out.error = "generate key: " + after.err().describe();
            co_return out;
        }
        after = co_await api_.get_app(owner, before.name);
        if (!after) {
            out.error = "read app after generate: " + after.err().describe();
            co_return out;
        }
    }
    const credential* fresh = nullptr;
    for (const auto& c : after->credentials)
        if (find_key(before, c.fingerprint) == nullptr && !plan::check_after(st, c, act.spec))
            fresh = &c;
    if (sorted(after->attributes) != sorted(before.attributes) ||
        after->callback_url != before.callback_url) {
        // Trap 1: generate replaced the app's attributes or callback URL. Put them back.
        auto restored = co_await api_.update_app(owner, before);
        out.reported = true;
        out.keep_journal = !restored;
        fail(pa, fresh ? fresh->fingerprint : "", act.key,
             std::string("generate changed the app's attributes or callback URL; ") +
                 (restored ? "restored them" : "restoring FAILED: " + restored.err().describe()));
    }
    if (fresh == nullptr) {
        out.absent = true;
        out.error = "generate: no new key found; the next pass starts over";
        co_return out;
    }
    out.key = *fresh;
    co_return out;
}

}  // namespace keyrot::exec
