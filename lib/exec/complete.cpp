// The executor's completion part: the planner's completion steps (products,
// statuses, scopes, final marker) on a made key, each answer checked against
// what its step must leave; then the delivery (docs/rotation.md).
#include <optional>

#include "apigee/api.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

net::awaitable<bool> executor::complete(planned_app& pa, credential s,
                                        const plan::successor_spec& spec,
                                        const std::string& replaces) {
    const apigee::app_owner dev = apigee::app_owner::of(pa.snapshot);
    const std::string& name = pa.snapshot.name;
    const std::string fp = s.fingerprint;
    const secret key = s.consumer_key;

    // An earlier completion already wrote the final marker (the planner asks
    // again only to approve products left pending): it was audited then.
    const bool final_already = sorted(s.attributes) == sorted(spec.attributes);
    // The planner's steps (plan/steps.hpp), each answer checked against what
    // the step must leave. Bounded, in case Apigee and we disagree.
    plan::status_phase statuses = plan::status_phase::open;
    const std::size_t max_steps = 2 * spec.products.size() + 6;
    for (std::size_t n = 0;; ++n) {
        const std::optional<plan::step> st = plan::next_completion_step(s, spec, statuses);
        if (!st) break;
        if (n == max_steps)
            co_return fail(
                pa, fp, replaces,
                std::string("completion does not converge at: ") + plan::to_string(st->kind));
        if (st->kind == plan::step_kind::final_marker)
            if (const auto wrong = plan::check_before_final(s, spec))
                co_return fail(pa, fp, replaces, "before the final marker: " + *wrong);
        // Around the write, what the step asks (plan/steps.hpp): the intent
        // of `completed` for the write that makes it complete.
        const std::optional<intent> in =
            step_intent(pa, *st, fp, replaces,
                        st->kind == plan::step_kind::add_products_final
                            ? "products, attributes and final marker in one update"
                            : "products, statuses, scopes and attributes copied; marker final",
                        false);
        if (in) {
            const bool began = co_await begin(pa, *in);
            if (!began) co_return false;
        }
        std::optional<credential> answer;  // the key as a write answered or a read showed it
        switch (st->kind) {
            case plan::step_kind::add_products_final:
            case plan::step_kind::add_products:
            case plan::step_kind::final_marker: {
                // The complete attribute list rides along: an update may replace
                // the attributes with those sent, or wipe them when none are sent.
                auto r = co_await api_.update_key(dev, name, key, st->products, st->attributes);
                if (!r && st->completes && maybe_applied(r.err()))
                    r = co_await api_.get_key(dev, name, key);  // took effect?
                if (!r)
                    co_return fail(
                        pa, fp, replaces,
                        std::string(plan::to_string(st->kind)) + ": " + r.err().describe());
                answer = std::move(r.value());
                break;
            }
            case plan::step_kind::set_product_status: {
                const std::string& product = st->products.front();
                auto r = co_await api_.set_key_product_status(dev, name, key, product, st->approve);
                if (!r)
                    co_return fail(pa, fp, replaces,
                                   "set status of " + product + ": " + r.err().describe());
                // 204 without the key: verify_statuses reads it back.
                s = plan::expected_after(std::move(s), *st, approval::unknown);
                statuses = plan::status_phase::unverified;
                continue;
            }
            case plan::step_kind::verify_statuses: {
                auto back = co_await api_.get_key(dev, name, key);
                if (!back)
                    co_return fail(pa, fp, replaces,
                                   "read back product statuses: " + back.err().describe());
                answer = std::move(back.value());
                statuses = plan::status_phase::verified;
                break;
            }
            case plan::step_kind::set_scopes: {
                auto r =
                    co_await api_.replace_key_scopes(dev, name, key, st->scopes, st->attributes);
                if (!r) co_return fail(pa, fp, replaces, "set scopes: " + r.err().describe());
                answer = std::move(r.value());
                break;
            }
            case plan::step_kind::create_pending:
            case plan::step_kind::create_bare:
            case plan::step_kind::generate:
            case plan::step_kind::mark_pending:
            case plan::step_kind::revoke:
            case plan::step_kind::remove:
                // Not completion steps: next_completion_step never returns them.
                co_return fail(pa, fp, replaces,
                               std::string("not a completion step: ") + plan::to_string(st->kind));
        }
        if (const auto wrong = plan::check_after(*st, *answer, spec))
            co_return fail(pa, fp, replaces, *wrong);
        // What the step decides, as Apigee answered it.
        s.products = answer->products;
        if (st->kind != plan::step_kind::verify_statuses) {
            s.attributes = answer->attributes;
            s.scopes = answer->scopes;
        }
        if (in) {
            keep(pa, s, key);  // the record names its times
            const bool finished = co_await finish(pa, *in);
            if (!finished) co_return false;
        }
    }
    keep(pa, s, key);
    if (!final_already && delivery_ && delivery_->wants(pa.snapshot, *pa.policy)) {
        // At the start of the overlap; the revocation gate retries a failure.
        auto d = co_await deliver(pa, fp, replaces);
        delivered(pa, fp, replaces, "overlap", static_cast<bool>(d));
        if (!d) fail(pa, fp, replaces, "deliver: " + d.err().message);
    }
    co_return true;
}

}  // namespace keyrot::exec
