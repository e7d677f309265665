// The executor's successor-making part: a key imported or generated, then
// completed (products, statuses, scopes, final marker), and the journal's
// recovery for keys made without a marker (docs/rotation.md).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apigee/api.hpp"
#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "exec/inventory.hpp"
#include "exec/keygen.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

// keys/create; when the answer may hide a success (lost, or 409: the key
// exists), the key read back instead of creating another. The key made is
// named by `nk`'s consumer key and its fingerprint.
net::awaitable<executor::create_outcome> executor::create_or_read_back(apigee::app_owner owner,
                                                                       std::string name,
                                                                       const apigee::new_key& nk) {
    create_outcome out;
    auto created = co_await api_.create_key(owner, name, nk);
    if (created) {
        out.key = std::move(created.value());
    } else if (!maybe_applied(created.err()) && !created.err().is_status(409)) {
        out.absent = true;
        out.error = "create key: " + created.err().describe();
        co_return out;
    } else {
        auto back = co_await api_.get_key(owner, name, nk.consumer_key);
        if (!back) {
            out.absent = back.err().is_status(404);
            out.error = "create key: " + created.err().describe() +
                        (out.absent ? "; not created (the read-back finds no such key)"
                                    : "; read-back failed too: " + back.err().describe()) +
                        ", the next pass starts over";
            co_return out;
        }
        out.key = std::move(back.value());
    }
    out.key->fingerprint = fingerprint(nk.consumer_key);
    out.key->consumer_key = nk.consumer_key;
    co_return out;
}

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

// The making steps (plan::making_steps), one write each, in order; then the
// completion. Around each write, what its step asks: the journal entry
// first, the intent of its audit record, the entry dropped once checked.
// A write known not to have happened drops what was written for it (the
// next pass starts over); one that may have happened keeps it, so that the
// next pass finds the key by it, and never makes a second one.
net::awaitable<bool> executor::make_successor(planned_app& pa, const plan::action& act) {
    const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
    const std::string name = pa.snapshot.name;
    const policy::rotation_method method = pa.policy->rotation.method;
    const bool import = method == policy::rotation_method::import_key;
    if (import && api_.edge() && !act.expires_at.is_never())
        co_return fail(pa, "", act.key,
                       "import on Apigee Edge cannot set an expiry (keyLifetime must be never)");
    if (find_key(pa.snapshot, act.key) == nullptr)
        co_return fail(pa, "", act.key, "old key vanished");
    const std::vector<plan::step> steps = plan::making_steps(act, method, api_.edge());

    // An import names its key before it exists; generate learns it from the answer.
    apigee::new_key nk;
    std::string named;  // the fingerprint of the key an import makes
    if (import) {
        nk.consumer_key = random_token(48);
        nk.consumer_secret = random_token(48);
        const sys_ms now = clock_();
        if (!act.expires_at.is_never())
            nk.expires_in = std::max<std::chrono::seconds>(
                std::chrono::seconds(1),
                std::chrono::duration_cast<std::chrono::seconds>(act.expires_at.at() - now));
        named = fingerprint(nk.consumer_key);
    }
    std::optional<credential> made;  // the new key, once a step made it
    bool reported = false;           // a failure was reported on the way
    bool keep_journal = false;       // the app is still to be put back (create_outcome)
    for (const plan::step& planned : steps) {
        const bool marks = planned.kind == plan::step_kind::mark_pending;
        if (marks && !made)
            co_return fail(pa, "", act.key, "no key to mark: the making steps are out of order");
        // A marking carries the new key's own attributes (an update may replace them).
        const plan::step st = marks ? plan::marking(*made, act.key) : planned;
        const std::string fp = made ? made->fingerprint : named;

        std::optional<app> before;  // generate: the app read right before
        if (st.kind == plan::step_kind::generate) {
            auto read = co_await api_.get_app(owner, name);
            if (!read)
                co_return fail(pa, "", act.key,
                               "read app before generate: " + read.err().describe());
            before = std::move(read.value());
        }
        bool journaled = false;
        if (st.journal_first) {
            journal_entry je{pa.snapshot.organization,
                             owner_id(pa.snapshot),
                             name,
                             act.key,
                             {},
                             clock_(),
                             named};
            for (const auto& c : (before ? *before : pa.snapshot).credentials)
                je.known.push_back(c.fingerprint);
            if (before) {  // generate may replace them: recovery puts them back
                je.app_attributes = before->attributes;
                je.callback_url = before->callback_url;
            }
            journaled = co_await journal_.write(je);
            if (!journaled)
                co_return fail(pa, "", act.key,
                               std::string("cannot write the ") + (import ? "import" : "generate") +
                                   " journal (" + store_.describe() + ")");
        }
        const std::optional<intent> in =
            step_intent(pa, st, fp, act.key, created_detail(act), act.late);
        if (in) {
            const bool began = co_await begin(pa, *in);
            if (!began) co_return false;
        }

        if (marks) {
            auto marked =
                co_await api_.update_key(owner, name, made->consumer_key, {}, st.attributes);
            if (!marked)
                co_return fail(pa, fp, act.key, "mark new key: " + marked.err().describe());
            if (auto wrong = plan::check_after(st, marked.value(), act.spec))
                co_return fail(pa, fp, act.key, "mark new key: " + *wrong);
            made->attributes = marked->attributes;
            made->products = marked->products;
        } else {
            create_outcome out;
            if (st.kind == plan::step_kind::generate) {
                out = co_await generate_key(pa, act, st, *before);
            } else {
                nk.attributes = st.attributes;  // create_bare: none (Apigee Edge takes none)
                out = co_await create_or_read_back(owner, name, nk);
            }
            reported = reported || out.reported;
            keep_journal = keep_journal || out.keep_journal;
            if (!out.key) {
                // A key that was never made is named nowhere (no fingerprint of
                // it in the log or the audit record): the record names the old key.
                if (out.absent && in) co_await intents_.remove(*in);
                if (out.absent && journaled)
                    co_await journal_.remove(pa.snapshot.organization, owner_id(pa.snapshot), name);
                co_return fail(pa, "", act.key, out.error);
            }
            made = std::move(out.key);
            if (auto wrong = plan::check_after(st, *made, act.spec))
                co_return fail(pa, made->fingerprint, act.key, *wrong);
        }
        if (st.ends_journal && !keep_journal)
            co_await journal_.remove(pa.snapshot.organization, owner_id(pa.snapshot), name);
        if (in) {
            const bool finished = co_await finish(pa, *in);
            if (!finished) co_return false;
        }
    }
    if (!made) co_return fail(pa, "", act.key, "the making steps made no key");
    const bool completed = co_await complete(pa, std::move(*made), act.spec, act.key);
    co_return completed && !reported;
}

net::awaitable<bool> executor::recover_journal(planned_app& pa) {
    const auto& a = pa.snapshot;
    auto je = journal_.read(a.organization, owner_id(a), a.name);
    if (!je) co_return true;
    pa.current = plan::action_kind::create_successor;
    // A key that appeared after the entry is the successor: without a marker
    // (the crash prevented it) it gets one; with ours (the marking took effect
    // but its answer was lost) it only needs its audit record.
    const credential* made = nullptr;
    for (const auto& c : a.credentials) {
        if (std::find(je->known.begin(), je->known.end(), c.fingerprint) != je->known.end())
            continue;
        if (c.issued_at + 5 * k_minute < je->ts) continue;
        if (!je->expect.empty() && c.fingerprint != je->expect) continue;  // an import: that key
        const std::string* mark = find_attribute(c.attributes, k_marker_attribute);
        if (mark != nullptr && *mark != k_pending_prefix + je->replaces && *mark != je->replaces)
            continue;  // someone else's successor
        if (mark == nullptr) {
            const apigee::app_owner owner = apigee::app_owner::of(a);
            const plan::step st = plan::marking(c, je->replaces);
            auto marked =
                co_await api_.update_key(owner, a.name, c.consumer_key, {}, st.attributes);
            // Not marked: keep the entry and leave the app alone this pass; going
            // on would make a second successor while this one is still unmarked.
            if (!marked)
                co_return fail(pa, c.fingerprint, je->replaces,
                               "journal recovery: " + marked.err().describe());
            if (auto wrong = plan::check_after(st, marked.value()))
                co_return fail(pa, c.fingerprint, je->replaces, "journal recovery: " + *wrong);
        }
        // A crash may have left the record already (via an intent, this pass or
        // an earlier one): never twice.
        if (!journal_checked_audit_) {
            for (auto& e : recently_audited()) audited_.insert(e);
            journal_checked_audit_ = true;
        }
        if (!audited_.count({audit_action::created, c.fingerprint}))
            record(pa, audit_action::created, c.fingerprint, je->replaces,
                   je->expect.empty() ? "recovered from the generate journal"
                                      : "recovered from the import journal");
        made = &c;
        break;
    }
    // The generate took effect: it may have replaced the app's attributes or
    // callback URL, and the crash kept them from being put back (Trap 1).
    if (made != nullptr && je->app_attributes &&
        (sorted(a.attributes) != sorted(*je->app_attributes) ||
         a.callback_url != je->callback_url)) {
        app body = a;
        body.attributes = *je->app_attributes;
        body.callback_url = je->callback_url;
        auto restored = co_await api_.update_app(apigee::app_owner::of(a), body);
        // Keep the entry when it failed: the next pass tries again.
        if (!restored)
            co_return fail(pa, made->fingerprint, je->replaces,
                           "journal recovery: the app's attributes or callback URL changed with "
                           "generate; restoring FAILED: " +
                               restored.err().describe());
        fail(pa, made->fingerprint, je->replaces,
             "journal recovery: generate changed the app's attributes or callback URL; restored "
             "them");
    }
    co_await journal_.remove(a.organization, owner_id(a), a.name);
    const apigee::app_owner owner = apigee::app_owner::of(a);
    auto fresh = co_await api_.get_app(owner, a.name);
    if (!fresh)
        co_return fail(pa, "", je->replaces,
                       "re-read after journal recovery: " + fresh.err().describe());
    adopt(pa, std::move(fresh.value()), clock_());
    pa.plan = plan::plan_app(pa.snapshot, *pa.policy, clock_(), {});
    co_return true;
}

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
