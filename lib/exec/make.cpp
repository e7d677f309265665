// The executor's making part: the planner's making steps run in order around
// an import (import.cpp) or a generate (generate.cpp), then the completion
// (complete.cpp); and the journal's recovery for keys made without a marker
// (docs/rotation.md).
#include <algorithm>
#include <chrono>
#include <optional>

#include "apigee/api.hpp"
#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "exec/keygen.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

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

}  // namespace keyrot::exec
