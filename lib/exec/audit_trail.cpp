// The executor's audit trail: intents written before each Apigee write and
// recovered after a crash, action records, delivery reports.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apigee/api.hpp"
#include "common/durable.hpp"
#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"
#include "exec/inventory.hpp"
#include "exec/keygen.hpp"
#include "plan/steps.hpp"

namespace keyrot::exec {

using namespace detail;

// A key as Apigee answered it after a verified write replaces our copy (or
// joins the snapshot), so the next plan needs no re-read of the app.
void executor::keep(planned_app& pa, credential c, const secret& key) const {
    c.consumer_key = key;
    c.fingerprint = fingerprint(key);
    // Not needed for planning; delivery puts it into the targets (as Apigee
    // answered it, saving a GET key per delivery).
    if (!delivery_ || !delivery_->wants(pa.snapshot, *pa.policy)) c.consumer_secret.clear();
    for (auto& k : pa.snapshot.credentials) {
        if (k.fingerprint == c.fingerprint) {
            k = std::move(c);
            return;
        }
    }
    pa.snapshot.credentials.push_back(std::move(c));
}

intent executor::make_intent(const planned_app& pa, audit_action action, const std::string& key,
                             const std::string& replaces, std::string detail, bool late) const {
    intent i;
    i.organization = pa.snapshot.organization;
    i.developer = pa.snapshot.developer_email;
    i.team = pa.snapshot.app_group;
    i.app = pa.snapshot.name;
    i.policy = pa.policy ? pa.policy->name : "";
    i.action = action;
    i.key = key;
    i.replaces = replaces;
    i.detail = std::move(detail);
    i.late = late;
    i.ts = clock_();
    return i;
}

std::optional<intent> executor::step_intent(const planned_app& pa, const plan::step& st,
                                            const std::string& key, const std::string& replaces,
                                            std::string detail, bool late) const {
    audit_action action = audit_action::created;
    switch (st.records) {
        case plan::audited::none:
            return std::nullopt;
        case plan::audited::created:
            action = audit_action::created;
            break;
        case plan::audited::completed:
            action = audit_action::completed;
            break;
        case plan::audited::revoked:
            action = audit_action::revoked;
            break;
        case plan::audited::deleted:
            action = audit_action::deleted;
            break;
    }
    return make_intent(pa, action, key, replaces, std::move(detail), late);
}

net::awaitable<bool> executor::begin(const planned_app& pa, const intent& i) {
    // (Plain statements around each co_await: GCC 12 miscompiles a co_await in
    // an if condition followed by co_return here; the resumed frame traps.)
    const bool written = co_await intents_.write(i);
    if (!written)
        fail(pa, i.key, i.replaces,
             "cannot write the audit intent (" + store_.describe() + "); not writing");
    co_return written;
}

net::awaitable<bool> executor::finish(const planned_app& pa, const intent& i) {
    const bool durable = record(pa, i.action, i.key, i.replaces, i.detail, false, i.late);
    if (durable) co_await intents_.remove(i);
    co_return durable;
}

// Intents left by a crash: the action is audited if Apigee shows it took effect.
// A key the listing does not show (revoked keys are listed only when needed)
// is read by itself: absent from a listing is not the same as deleted.
net::awaitable<void> executor::recover_intents(planned_app& pa) {
    auto it = pending_intents_.find(owner_id(pa.snapshot) + "\n" + pa.snapshot.name);
    if (it == pending_intents_.end()) co_return;
    std::vector<intent> todo = std::move(it->second);
    pending_intents_.erase(it);
    for (const intent& i : todo) {
        const credential* k = find_key(pa.snapshot, i.key);
        credential fetched;
        if (k == nullptr && !i.key.empty()) {
            // Only a fingerprint is kept: the key itself is found among the app's.
            const apigee::app_owner owner = apigee::app_owner::of(pa.snapshot);
            auto fresh = co_await api_.get_app(owner, pa.snapshot.name);
            if (!fresh) continue;  // keep the intent; the next pass tries again
            for (auto& c : fresh->credentials)
                if (c.fingerprint == i.key) fetched = std::move(c), k = &fetched;
        }
        const std::string* mark = k ? find_attribute(k->attributes, k_marker_attribute) : nullptr;
        bool happened = false;
        switch (i.action) {
            case audit_action::created:
                happened = k != nullptr;
                break;
            case audit_action::completed:
                happened = mark != nullptr && *mark == i.replaces;
                break;
            case audit_action::revoked:
                happened = k != nullptr && k->status == approval::revoked;
                break;
            case audit_action::deleted:
                happened = k == nullptr;
                break;
            case audit_action::failed:
            case audit_action::skipped:
                break;  // never an intent
        }
        // The record may be in the audit log already (a crash after writing it,
        // before the intent was removed): never twice.
        if (happened && !audited_.count({i.action, i.key})) {
            if (!record(pa, i.action, i.key, i.replaces, i.detail + " (recorded after a restart)",
                        false, i.late))
                continue;  // keep the intent; the audit log is not writable
            audited_.emplace(i.action, i.key);
        }
        co_await intents_.remove(i);
    }
}

// (action, key) of the audit log's last records: those an intent may already
// have produced. Intents are short-lived, so the tail is enough.
std::set<std::pair<audit_action, std::string>> executor::recently_audited() const {
    std::set<std::pair<audit_action, std::string>> out;
    for_each_tail_line(state_dir_ / "audit.jsonl", 8 << 20, [&out](const std::string& line) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object() || j.value("dryRun", false)) return;
        if (const auto action = parse_audit_action(j.value("action", "")))
            out.emplace(*action, j.value("key", ""));
    });
    return out;
}

bool executor::record(const planned_app& pa, audit_action action, const std::string& key,
                      const std::string& replaces, std::string detail, bool dry_run, bool late) {
    action_record r;
    r.ts = clock_();
    r.organization = pa.snapshot.organization;
    r.developer = pa.snapshot.developer_email;
    r.team = pa.snapshot.app_group;
    r.app = pa.snapshot.name;
    r.policy = pa.policy ? pa.policy->name : "";
    r.action = action;
    r.kind = pa.current;
    r.key = key;
    r.replaces = replaces;
    r.dry_run = dry_run;
    r.late = late;
    r.detail = std::move(detail);
    r.developer_status = pa.snapshot.developer_status;
    // Times of the keys named, as this pass knows them (not in the audit line).
    if (const credential* k = key.empty() ? nullptr : find_key(pa.snapshot, key)) {
        r.key_issued_at = k->issued_at;
        r.key_expires_at = k->expires_at;
    }
    if (const credential* o = replaces.empty() ? nullptr : find_key(pa.snapshot, replaces))
        r.replaces_expires_at = o->expires_at;
    return obs_.on_action(r);
}

void executor::delivered(const planned_app& pa, const std::string& key, const std::string& replaces,
                         const char* stage, bool ok) {
    delivery_record r;
    r.organization = pa.snapshot.organization;
    r.developer = pa.snapshot.developer_email;
    r.app = pa.snapshot.name;
    r.policy = pa.policy->name;
    r.key = key;
    r.replaces = replaces;
    r.stage = stage;
    r.ok = ok;
    try {
        obs_.on_delivery(r);
    } catch (...) {  // an observer never turns a delivery into an exception
    }
}

bool executor::fail(const planned_app& pa, const std::string& key, const std::string& replaces,
                    std::string detail) {
    record(pa, audit_action::failed, key, replaces, std::move(detail));
    return false;
}

}  // namespace keyrot::exec
