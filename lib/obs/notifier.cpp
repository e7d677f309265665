#include "obs/notifier.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "common/durable.hpp"
#include "common/time.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace keyrot::obs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string app_key(const std::string& org, const std::string& developer, const std::string& app) {
    return org + "\n" + developer + "\n" + app;
}

// The app's owner as app_key takes it: the developer, or "team:" + a team
// app's AppGroup.
std::string owner_of(const std::string& developer, const std::string& team) {
    return team.empty() ? developer : "team:" + team;
}

const plan::key_view* find_key(const std::vector<exec::key_record>& keys, const std::string& fp) {
    if (fp.empty()) return nullptr;
    for (const auto& k : keys)
        if (k.key.fingerprint == fp) return &k.key;
    return nullptr;
}

// "active" only when the pass knew the developer to be active (listed so, or
// read): never for a developer listed inactive, nor one whose status is not
// known (missing from the developer list), so no mail goes to either.
const char* known_active(owner_status status) {
    return status == owner_status::active ? "active" : "";
}

// A key's developer, for events about the key: none for a key of an app keyrotd
// leaves alone (`skipped`: a revoked app, say), whatever its developer's status.
const char* known_active(const exec::key_record& k) {
    return k.key.state == plan::key_state::skipped ? "" : known_active(k.developer_status);
}

constexpr const char* k_keyless_reason =
    "no valid key: Apigee lists no approved key for this app, so no caller can use it";

// When `k` stops working: its expiry, or its scheduled revocation (complete
// successor's issuedAt + overlap) when that comes first.
time_or_never stops_at(const exec::key_record& k, const std::vector<exec::key_record>& app_keys,
                       const notify_policy* p) {
    const time_or_never end = k.key.expires_at;
    if (p == nullptr || !p->revoke || k.key.successor.empty()) return end;
    const plan::key_view* s = find_key(app_keys, k.key.successor);
    if (s == nullptr || s->pending) return end;
    return earliest(end, s->issued_at + p->overlap);
}

// The shortest lead time `end` is already within at `now`: one warning per
// (key, lead), and a lead passed unseen is not sent late. None when `end` is
// never, past, or beyond every lead.
std::optional<milliseconds> lead_reached(const std::vector<milliseconds>& leads, time_or_never end,
                                         sys_ms now) {
    if (end.is_never() || end <= now) return std::nullopt;
    std::optional<milliseconds> lead;
    for (const milliseconds l : leads)
        if (end <= now + l && (!lead || l < *lead)) lead = l;
    return lead;
}

json sent_to_json(const std::map<std::string, std::tuple<std::string, std::string, sys_ms>>& m) {
    json list = json::array();
    for (const auto& [id, v] : m) {
        json e = json::object();
        e["id"] = id;
        e["organization"] = std::get<0>(v);
        e["key"] = std::get<1>(v);
        e["at"] = as_millis(std::get<2>(v));
        list.push_back(std::move(e));
    }
    json out = json::object();
    out["version"] = 1;
    out["sent"] = std::move(list);
    return out;
}

// One audit line back into the record the observer saw, as far as the line
// has it: not the key times (so a replayed key.rotated has no expiresAt or
// replacesRevokedAt) nor the planned action's kind. A developer was active for
// every write keyrotd made; for a failure or a report the line does not say.
std::optional<exec::action_record> from_audit_line(const std::string& line) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) return std::nullopt;  // a torn last line: not durable
    const auto str = [&j](const char* k) {
        const auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const auto ts = parse_time(str("ts"));  // as the audit log writes it (format_time_ms)
    if (!ts) return std::nullopt;
    exec::action_record r;
    r.ts = *ts;
    r.organization = str("organization");
    r.developer = str("developer");
    r.team = str("team");
    r.app = str("app");
    r.policy = str("policy");
    const auto action = exec::parse_audit_action(str("action"));
    if (!action) return std::nullopt;  // not an action this version audits
    r.action = *action;
    r.key = str("key");
    r.replaces = str("replaces");
    r.detail = str("detail");
    const auto dry = j.find("dryRun");
    r.dry_run = dry == j.end() || !dry->is_boolean() || dry->get<bool>();
    switch (r.action) {
        case exec::audit_action::completed:
            r.kind = plan::action_kind::complete_successor;
            break;
        case exec::audit_action::revoked:
            r.kind = plan::action_kind::revoke_key;
            break;
        case exec::audit_action::deleted:
            r.kind = plan::action_kind::delete_key;
            break;
        case exec::audit_action::created:
            r.kind = plan::action_kind::create_successor;
            break;
        case exec::audit_action::failed:
        case exec::audit_action::skipped:
            r.kind = plan::action_kind::report;  // failed: only reports are classified
            break;
    }
    if (r.kind != plan::action_kind::report && r.kind != plan::action_kind::create_successor)
        r.developer_status = owner_status::active;
    return r;
}

const char* report_outcome(notify::report::kind k) {
    switch (k) {
        case notify::report::kind::delivered:
            return "delivered";
        case notify::report::kind::retrying:
            return "retrying";
        case notify::report::kind::abandoned:
            return "abandoned";
        case notify::report::kind::disabled:
            return "disabled";
        case notify::report::kind::dropped:
            return "dropped";
        case notify::report::kind::not_stored:
            return "not_stored";
        case notify::report::kind::refused:
            return "refused";
    }
    return "unknown";
}

}  // namespace

std::map<std::string, notify_policy> notify_policies(const policy::config& cfg,
                                                     const notify::config& ncfg) {
    std::map<std::string, notify_policy> out;
    for (const auto& p : cfg.policies) {
        notify_policy np;
        np.expiring_at = p.notify_expiring_at ? *p.notify_expiring_at : ncfg.expiring_at;
        np.overlap = p.rotation.overlap;
        np.revoke = p.rotation.revoke;
        out[p.name] = std::move(np);
    }
    // Keys no policy rotates: the config's lead times (policy names are never empty).
    out[""].expiring_at = ncfg.expiring_at;
    return out;
}

std::vector<notify::event_fields> expiring_events(
    const exec::pass_summary& s, const std::map<std::string, notify_policy>& policies, sys_ms now) {
    std::map<std::string, std::vector<exec::key_record>> by_app;
    for (const auto& k : s.keys)
        by_app[app_key(s.organization, owner_of(k.developer, k.team), k.app)].push_back(k);
    std::vector<notify::event_fields> out;
    for (const auto& k : s.keys) {
        if (k.developer.empty() == k.team.empty()) continue;  // exactly one owner
        if (k.key.state == plan::key_state::revoked || k.key.state == plan::key_state::expired)
            continue;
        const auto pit = policies.find(k.policy);
        if (pit == policies.end() || pit->second.expiring_at.empty()) continue;
        const auto& app_keys =
            by_app[app_key(s.organization, owner_of(k.developer, k.team), k.app)];
        const time_or_never end = stops_at(k, app_keys, &pit->second);
        if (end.is_never() || end <= now) continue;
        const auto lead = lead_reached(pit->second.expiring_at, end, now);
        if (!lead) continue;
        notify::event_fields f;
        f.type = notify::event_type::key_expiring;
        f.organization = s.organization;
        f.developer = k.developer;
        f.team = k.team;
        f.developer_status = k.team.empty() ? known_active(k) : "";
        f.app = k.app;
        f.policy = k.policy;
        f.key = k.key.fingerprint;
        f.expires_at = end;
        f.lead_time = *lead;
        f.occurred_at = now;
        out.push_back(std::move(f));
    }
    // Keys no policy rotates (apps no policy matches, team apps): their expiry,
    // at the config's lead times; no policy, and a team app names its team.
    const auto uit = policies.find(k_unmatched_policy);
    if (uit == policies.end() || uit->second.expiring_at.empty()) return out;
    for (const auto& k : s.unmatched_keys) {
        if (k.developer.empty() == k.team.empty()) continue;  // exactly one owner
        const auto lead = lead_reached(uit->second.expiring_at, k.expires_at, now);
        if (!lead) continue;
        notify::event_fields f;
        f.type = notify::event_type::key_expiring;
        f.organization = s.organization;
        f.developer = k.developer;
        f.team = k.team;
        f.developer_status = k.team.empty() ? known_active(k.developer_status) : "";
        f.app = k.app;
        f.key = k.fingerprint;
        f.expires_at = k.expires_at;
        f.lead_time = *lead;
        f.occurred_at = now;
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<notify::event_fields> stranded_events(const exec::pass_summary& s, sys_ms now) {
    std::map<std::string, std::vector<const exec::key_record*>> by_app;
    std::vector<std::string> order;
    for (const auto& k : s.keys) {
        auto& v = by_app[app_key(s.organization, owner_of(k.developer, k.team), k.app)];
        if (v.empty())
            order.push_back(app_key(s.organization, owner_of(k.developer, k.team), k.app));
        v.push_back(&k);
    }
    std::vector<notify::event_fields> out;
    for (const auto& id : order) {
        const auto& keys = by_app[id];
        const exec::key_record* latest = nullptr;
        bool usable = false;
        for (const exec::key_record* k : keys) {
            const auto st = k->key.state;
            if (st == plan::key_state::valid || st == plan::key_state::due ||
                st == plan::key_state::overlap || st == plan::key_state::skipped)
                usable = true;  // a valid key, or an app keyrotd leaves alone
            if (latest == nullptr || k->key.issued_at > latest->key.issued_at ||
                (k->key.issued_at == latest->key.issued_at &&
                 k->key.fingerprint < latest->key.fingerprint))
                latest = k;
        }
        // Exactly one owner: a developer, or a team (AppGroup) app's team.
        if (usable || latest == nullptr || latest->developer.empty() == latest->team.empty())
            continue;
        int expired = 0, revoked = 0;
        for (const exec::key_record* k : keys)
            (k->key.state == plan::key_state::revoked ? revoked : expired) += 1;
        notify::event_fields f;
        f.type = notify::event_type::app_stranded;
        f.organization = s.organization;
        f.developer = latest->developer;
        f.team = latest->team;
        // A team has no developer: no developerStatus, so no mail to a developer.
        f.developer_status = latest->team.empty() ? known_active(*latest) : "";
        f.app = latest->app;
        f.policy = latest->policy;
        f.key = latest->key.fingerprint;
        f.reason = "no valid key: " + std::to_string(expired) + " expired, " +
                   std::to_string(revoked) + " revoked; calls with this app's keys fail";
        f.occurred_at = now;
        out.push_back(std::move(f));
    }
    // Apps that list no key at all. An app listed keyless in the approved phase
    // whose revoked keys the revoked phase brought is handled above.
    for (const auto& a : s.keyless_apps) {
        if (a.developer.empty() == a.team.empty() ||
            by_app.count(app_key(s.organization, owner_of(a.developer, a.team), a.app)))
            continue;
        notify::event_fields f;
        f.type = notify::event_type::app_stranded;
        f.organization = s.organization;
        f.developer = a.developer;
        f.team = a.team;
        f.developer_status = a.team.empty() ? known_active(a.developer_status) : "";
        f.app = a.app;
        f.policy = a.policy;
        f.reason = k_keyless_reason;
        f.occurred_at = now;
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<notify::event_fields> rederived_events(
    const exec::pass_summary& s, const std::map<std::string, notify_policy>& policies,
    milliseconds max_age, sys_ms now) {
    std::map<std::string, std::vector<exec::key_record>> by_app;
    for (const auto& k : s.keys)
        by_app[app_key(s.organization, owner_of(k.developer, k.team), k.app)].push_back(k);
    std::vector<notify::event_fields> out;
    for (const auto& k : s.keys) {
        if (k.developer.empty() == k.team.empty() || k.key.replaces.empty() || k.key.pending)
            continue;
        const auto& app_keys =
            by_app[app_key(s.organization, owner_of(k.developer, k.team), k.app)];
        const plan::key_view* old = find_key(app_keys, k.key.replaces);
        const auto pit = policies.find(k.policy);
        const notify_policy* p = pit == policies.end() ? nullptr : &pit->second;
        std::optional<sys_ms> revokes_at;
        if (p != nullptr && p->revoke) {
            time_or_never at = k.key.issued_at + p->overlap;
            if (old != nullptr) at = earliest(at, old->expires_at);
            revokes_at = at.at();
        }
        notify::event_fields f;
        f.organization = s.organization;
        f.developer = k.developer;
        f.team = k.team;
        f.developer_status = k.team.empty() ? known_active(k) : "";
        f.app = k.app;
        f.policy = k.policy;
        if (k.key.issued_at >= now - max_age) {
            f.type = notify::event_type::key_rotated;
            f.key = k.key.fingerprint;
            f.replaces = k.key.replaces;
            f.expires_at = k.key.expires_at;
            f.revokes_at = revokes_at;
            f.occurred_at = k.key.issued_at;  // the completion's moment is not listed
            out.push_back(f);
        }
        // The old key was revoked when its time has come and it is revoked, or
        // no longer among the approved keys listed (an expired one still is).
        if (!revokes_at || *revokes_at > now || k.key.issued_at < now - max_age - p->overlap)
            continue;
        if (old != nullptr && old->state != plan::key_state::revoked) continue;
        f.type = notify::event_type::key_revoked;
        f.key = k.key.replaces;
        f.replaces.clear();
        f.expires_at.reset();
        f.revokes_at.reset();
        f.occurred_at = *revokes_at;
        out.push_back(std::move(f));
    }
    return out;
}

notifier::notifier(publish_fn publish, std::map<std::string, notify_policy> policies,
                   std::filesystem::path sent_file, metrics* m, std::function<sys_ms()> clock,
                   std::size_t sent_max)
    : publish_(std::move(publish)),
      policies_(std::move(policies)),
      sent_file_(std::move(sent_file)),
      metrics_(m),
      clock_(std::move(clock)),
      sent_max_(sent_max) {
    load();
}

void notifier::load() {
    std::ifstream in(sent_file_);
    if (!in) return;
    try {
        const json j = json::parse(in);
        for (const auto& e : j.at("sent")) {
            sent_entry s{e.at("organization").get<std::string>(), e.at("key").get<std::string>(),
                         as_sys_ms(e.at("at").get<std::int64_t>())};
            sent_.emplace(e.at("id").get<std::string>(), std::move(s));
        }
    } catch (const std::exception& ex) {
        sent_.clear();
        log_event(spdlog::level::warn,
                  "cannot read the record of sent notifications; starting afresh (an event may be "
                  "sent again)",
                  {{"path", sent_file_.string()}, {"error", ex.what()}});
    }
}

void notifier::save() {
    std::map<std::string, std::tuple<std::string, std::string, sys_ms>> m;
    for (const auto& [id, e] : sent_) m.emplace(id, std::make_tuple(e.organization, e.key, e.at));
    const std::string text = sent_to_json(m).dump() + "\n";
    std::string why;
    const bool ok = write_durable(sent_file_, text, &why);
    if (!ok)
        log_event(spdlog::level::err,
                  "cannot write the record of sent notifications (an event may be sent again)",
                  {{"path", sent_file_.string()}, {"error", why}});
}

void notifier::prune_to_max() {
    if (sent_.size() <= sent_max_) return;
    std::vector<std::pair<sys_ms, std::string>> by_age;
    by_age.reserve(sent_.size());
    for (const auto& [id, e] : sent_) by_age.emplace_back(e.at, id);
    std::sort(by_age.begin(), by_age.end());
    for (std::size_t i = 0; i < by_age.size() && sent_.size() > sent_max_; ++i)
        sent_.erase(by_age[i].second);
}

bool notifier::publish(notify::event_fields f) {
    const std::string type(notify::to_string(f.type));
    auto ev = notify::make_event(std::move(f));
    if (!ev) {
        log_event(spdlog::level::err, "notification not made",
                  {{"type", type}, {"error", ev.err().describe()}});
        if (metrics_) metrics_->on_notify_event(type, "refused");
        return false;
    }
    const notify::event& e = ev.value();
    if (sent_.count(e.id)) return true;  // published before: once per occurrence
    const auto r = publish_(e);
    if (!r.stored()) {
        log_event(spdlog::level::err, "notification NOT queued",
                  {{"type", type},
                   {"id", e.id},
                   {"organization", e.f.organization},
                   {"app", e.f.app},
                   {"key", e.f.key},
                   {"error", r.reason}});
        if (metrics_) metrics_->on_notify_event(type, "refused");
        return false;
    }
    if (metrics_)
        metrics_->on_notify_event(
            type, r.status == notify::add_status::duplicate ? "duplicate" : "queued");
    log_event(spdlog::level::debug, "notification queued",
              {{"type", type}, {"id", e.id}, {"app", e.f.app}, {"key", e.f.key}});
    sent_[e.id] = sent_entry{e.f.organization, e.f.key, clock_()};
    ++published_;
    prune_to_max();
    save();
    return true;
}

void notifier::on_action(const exec::action_record& r) {
    try {
        if (r.dry_run) return;
        // keyrotd writes only to apps of developers it knows to be active; a
        // report may be about an app whose developer's status it does not know.
        // (A team app has no developer: its AppGroup's status is not a developer's.)
        const std::string developer_status =
            r.team.empty() ? known_active(r.developer_status) : std::string();
        if (r.kind == plan::action_kind::report &&
            (r.action == exec::audit_action::skipped || r.action == exec::audit_action::failed)) {
            const auto code = plan::classify_report(r.detail);
            if (code != plan::report_code::other) {
                notify::event_fields st;
                st.type = notify::event_type::app_stranded;
                st.organization = r.organization;
                st.developer = r.developer;
                st.team = r.team;
                st.developer_status = developer_status;
                st.app = r.app;
                st.policy = r.policy;
                st.key = r.key;
                st.reason = (code == plan::report_code::drift
                                 ? "drift held a revocation: "
                                 : "no room for the keyrotd_replaces marker: ") +
                            r.detail;
                st.occurred_at = r.ts;
                publish(std::move(st));
            }
        }
        notify::event_fields f;
        f.organization = r.organization;
        f.developer = r.developer;
        f.team = r.team;
        f.developer_status = developer_status;
        f.app = r.app;
        f.policy = r.policy;
        f.occurred_at = r.ts;
        if (r.action == exec::audit_action::completed) {
            f.type = notify::event_type::key_rotated;
            f.key = r.key;
            f.replaces = r.replaces;
            // From the record (the executor knows both keys when it completes
            // one); else from an earlier pass of this process.
            const auto pit = policies_.find(r.policy);
            const bool revokes = pit != policies_.end() && pit->second.revoke;
            if (r.key_issued_at) {
                f.expires_at = r.key_expires_at;
                if (revokes) {
                    f.revokes_at =
                        earliest(*r.key_issued_at + pit->second.overlap, r.replaces_expires_at)
                            .at();
                }
            } else if (const auto it = last_keys_.find(
                           app_key(r.organization, owner_of(r.developer, r.team), r.app));
                       it != last_keys_.end()) {
                const plan::key_view* nk = find_key(it->second, r.key);
                const plan::key_view* ok = find_key(it->second, r.replaces);
                if (nk) f.expires_at = nk->expires_at;
                if (nk && ok && revokes) {
                    f.revokes_at =
                        earliest(nk->issued_at + pit->second.overlap, ok->expires_at).at();
                }
            }
        } else if (r.action == exec::audit_action::revoked) {
            f.type = notify::event_type::key_revoked;
            f.key = r.key;
        } else if (r.action == exec::audit_action::deleted) {
            f.type = notify::event_type::key_deleted;
            f.key = r.key;
        } else if (r.action == exec::audit_action::failed) {
            f.type = notify::event_type::rotation_failed;
            // The key that was being rotated (a failed create or completion names
            // the old key in `replaces`), or the key a revoke/delete was about.
            f.key = r.replaces.empty() ? r.key : r.replaces;
            f.reason = r.detail;
        } else {
            return;
        }
        publish(std::move(f));
    } catch (const std::exception& ex) {
        log_event(spdlog::level::err, "notification not made", {{"error", ex.what()}});
    }
}

void notifier::on_pass(const exec::pass_summary& s) {
    try {
        // Only a whole picture may prune or warn: a pass that read the whole
        // inventory, even if some action failed (a key that cannot rotate
        // every pass must not silence the organisation's warnings).
        if (s.partial || !s.error.empty()) return;
        const sys_ms now = clock_();
        for (auto& f : expiring_events(s, policies_, now)) publish(std::move(f));
        for (auto& f : stranded_events(s, now)) publish(std::move(f));
        if (rederived_.insert(s.organization).second) {
            // Start-up or new leadership: what a lost outbox may have held.
            auto again = rederived_events(s, policies_, max_age_, now);
            std::size_t sent = 0;
            for (auto& f : again) {
                const bool known =
                    sent_.count(notify::event_id(f.organization, owner_of(f.developer, f.team),
                                                 f.app, f.key, f.type, f.lead_time)) > 0;
                if (!known && publish(std::move(f))) ++sent;
            }
            log_event(spdlog::level::info, "notifications re-derived from Apigee",
                      {{"organization", s.organization},
                       {"candidates", static_cast<long long>(again.size())},
                       {"published_again", static_cast<long long>(sent)}});
        }
        // Keys seen this pass, for key.rotated's times and for forgetting.
        std::set<std::string> seen;
        for (auto it = last_keys_.begin(); it != last_keys_.end();) {
            if (it->first.starts_with(s.organization + "\n"))
                it = last_keys_.erase(it);
            else
                ++it;
        }
        for (const auto& k : s.keys) {
            seen.insert(k.key.fingerprint);
            last_keys_[app_key(s.organization, owner_of(k.developer, k.team), k.app)].push_back(k);
        }
        for (const auto& k : s.unmatched_keys) seen.insert(k.fingerprint);
        // A key no longer listed is forgotten, once re-derivation could no
        // longer bring its events back (maxAge + the longest overlap).
        milliseconds overlap{0};
        for (const auto& [name, p] : policies_) overlap = std::max(overlap, p.overlap);
        const std::size_t before = sent_.size();
        std::erase_if(sent_, [&](const auto& kv) {
            const auto& e = kv.second;
            return e.organization == s.organization && !e.key.empty() && !seen.count(e.key) &&
                   e.at < now - max_age_ - overlap;
        });
        // An app that lists a key again is no longer keyless: a later keyless
        // stranding is a new occurrence (with the same id: no key names it).
        if (std::any_of(sent_.begin(), sent_.end(), [&](const auto& kv) {
                return kv.second.key.empty() && kv.second.organization == s.organization;
            })) {
            std::set<std::pair<std::string, std::string>> listed;
            for (const auto& k : s.keys)
                if (k.developer.empty() != k.team.empty())
                    listed.emplace(owner_of(k.developer, k.team), k.app);
            for (const auto& [owner, app] : listed)
                sent_.erase(notify::event_id(s.organization, owner, app, "",
                                             notify::event_type::app_stranded, std::nullopt));
        }
        if (sent_.size() != before) save();
    } catch (const std::exception& ex) {
        log_event(spdlog::level::err, "notifications for the pass not made",
                  {{"organization", s.organization}, {"error", ex.what()}});
    }
}

std::size_t notifier::replay_audit(const std::filesystem::path& audit_file) {
    try {
        // The records a crash can have left without their events are the last
        // few; a tail of 8 MiB (tens of thousands of records) holds them.
        const sys_ms since = clock_() - max_age_;  // older ones the outbox would abandon
        const std::size_t before = published_;
        long long records = 0;
        const bool opened = for_each_tail_line(audit_file, 8 << 20, [&](const std::string& line) {
            const auto r = from_audit_line(line);
            if (!r || r->dry_run || r->ts < since) return;
            ++records;
            on_action(*r);  // an id remembered as published is skipped there
        });
        if (!opened) return 0;
        const std::size_t again = published_ - before;
        log_event(again > 0 ? spdlog::level::warn : spdlog::level::info,
                  "notifications replayed from the audit log",
                  {{"path", audit_file.string()},
                   {"records", records},
                   {"published_again", static_cast<long long>(again)}});
        return again;
    } catch (const std::exception& ex) {
        log_event(spdlog::level::err, "cannot replay the audit log into notifications",
                  {{"path", audit_file.string()}, {"error", ex.what()}});
        return 0;
    }
}

void notifier::on_report(const notify::report& r) {
    try {
        const char* outcome = report_outcome(r.what);
        if (metrics_ && r.what != notify::report::kind::not_stored) {
            metrics_->on_notify_delivery(r.sink, outcome, r.dropped);
            if (r.what == notify::report::kind::disabled)
                metrics_->set_notify_sink_disabled(r.sink, true);
        }
        std::vector<field> fields = {{"sink", r.sink}, {"id", r.id}, {"type", r.type}};
        if (r.attempts) fields.emplace_back("attempts", r.attempts);
        if (r.status) fields.emplace_back("status", r.status);
        if (!r.error.empty()) fields.emplace_back("error", r.error);
        if (r.next_at) fields.emplace_back("next_attempt", format_time(*r.next_at));
        if (r.dropped) fields.emplace_back("dropped", static_cast<long long>(r.dropped));
        if (!r.durable) fields.emplace_back("durable", "false");
        switch (r.what) {
            case notify::report::kind::delivered:
                log_event(spdlog::level::info, "notification delivered", fields);
                break;
            case notify::report::kind::retrying:
                log_event(spdlog::level::warn, "notification not delivered; will retry", fields);
                break;
            case notify::report::kind::abandoned:
                log_event(spdlog::level::err, "notification abandoned (maxAge reached)", fields);
                break;
            case notify::report::kind::disabled:
                log_event(spdlog::level::err,
                          "webhook answered 410 Gone: disabled until restart; its pending "
                          "notifications are dropped",
                          fields);
                break;
            case notify::report::kind::refused:
                log_event(spdlog::level::err,
                          "notification refused by the mail server (5xx): not retried", fields);
                break;
            case notify::report::kind::dropped:
                log_event(spdlog::level::warn,
                          "notifications dropped: their webhook is no longer configured", fields);
                break;
            case notify::report::kind::not_stored:
                break;  // publish() logged it already
        }
    } catch (...) {
    }
}

}  // namespace keyrot::obs
