#include "plan/planner.hpp"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string_view>

#include "common/text.hpp"

namespace keyrot::plan {
namespace {

// Phrases the reasons of two reports end with; classify_report() looks for them.
constexpr std::string_view k_drift_tag = "not revoked (drift)";
constexpr std::string_view k_no_room_tag =
    "marker (limit 18): remove one attribute to let it rotate";

struct marker {
    std::string parent;  // fingerprint of the key this one replaces
    bool pending = false;
};

marker read_marker(const credential& c) {
    const std::string* v = find_attribute(c.attributes, k_marker_attribute);
    if (v == nullptr) return {};
    std::string_view s = *v;
    const std::string_view prefix = k_pending_prefix;
    if (s.substr(0, prefix.size()) == prefix) return {std::string(s.substr(prefix.size())), true};
    return {std::string(s), false};
}

bool expired(const credential& c, sys_ms now) { return c.expires_at <= now; }

// The old key's attributes without its own lineage marker.
std::vector<attribute> own_attributes(const credential& c) {
    std::vector<attribute> out;
    for (const auto& a : c.attributes)
        if (a.name != k_marker_attribute) out.push_back(a);
    return out;
}

successor_spec spec_from(const credential& old) {
    successor_spec s;
    s.attributes = own_attributes(old);
    s.attributes.push_back({k_marker_attribute, old.fingerprint});
    s.scopes = old.scopes;
    s.products = old.products;
    return s;
}

struct key_info {
    const credential* cred = nullptr;
    marker mark;
    std::vector<const credential*> successors;  // every key marked as replacing this one
    const credential* live = nullptr;  // the successor kept: approved, unexpired, smallest fp
};

class planner {
  public:
    planner(const app& a, const policy::policy& p, sys_ms now, const options& opt)
        : app_(a), rot_(p.rotation), now_(now), opt_(opt) {}

    app_plan run() {
        index();
        for (auto& [fp, info] : keys_) plan_.keys.push_back(view(info));
        plan_.has_valid_key = std::any_of(app_.credentials.begin(), app_.credentials.end(),
                                          [&](const credential& c) { return key_valid(c, now_); });
        if (const std::string why = implausible(); !why.empty()) {
            // Data no Apigee would send (a hostile or broken answer): touch nothing.
            action a;
            a.kind = action_kind::report;
            a.failed = true;
            a.reason = "app data from Apigee is implausible (" + why + "): not touched";
            add(std::move(a));
            return std::move(plan_);
        }
        if (app_.status != approval::approved) return skip("app-revoked", "app is revoked");
        // A team app's owner is its AppGroup: developer_status holds the team's.
        const bool team = !app_.app_group.empty();
        if (app_.developer_status == owner_status::inactive)
            return team ? skip("team-inactive", "team (AppGroup) is inactive")
                        : skip("developer-inactive", "developer is inactive");
        if (app_.developer_status == owner_status::other)
            return skip(team ? "team-unknown" : "developer-unknown",
                        std::string(team ? "team" : "developer") +
                            " status is neither active nor inactive");

        resolve_duplicates();
        for (auto& [fp, info] : keys_) {
            if (info.mark.pending) complete(info);
        }
        for (auto& [fp, info] : keys_) {
            const credential& k = *info.cred;
            if (k.status != approval::approved || info.mark.pending) continue;
            if (finish_approvals(info)) continue;
            if (expired(k, now_)) {
                late_rotation(info);
            } else if (info.successors.empty()) {
                maybe_rotate(info);
            } else {
                overlap(info);
            }
        }
        deletions();
        // A developer whose status is not known is never written to.
        if (app_.developer_status == owner_status::not_known &&
            std::any_of(plan_.actions.begin(), plan_.actions.end(),
                        [](const action& a) { return a.kind != action_kind::report; })) {
            plan_.actions.clear();
            plan_.next_wake = time_or_never::never();
            return app_.app_group.empty()
                       ? skip("developer-unknown", "developer status is not known: not written to")
                       : skip("team-unknown",
                              "team (AppGroup) status is not known: not written to");
        }
        return std::move(plan_);
    }

  private:
    void index() {
        for (const auto& c : app_.credentials) {
            key_info& ki = keys_[c.fingerprint];
            ki.cred = &c;
            ki.mark = read_marker(c);
        }
        for (auto& [fp, info] : keys_) {
            if (info.mark.parent.empty()) continue;
            auto parent = keys_.find(info.mark.parent);
            if (parent == keys_.end() || parent->first == fp) continue;
            parent->second.successors.push_back(info.cred);
        }
        for (auto& [fp, info] : keys_) {
            for (const credential* s : info.successors) {
                if (!key_valid(*s, now_)) continue;
                if (info.live == nullptr || s->fingerprint < info.live->fingerprint) info.live = s;
            }
        }
    }

    key_view view(const key_info& info) const {
        const credential& c = *info.cred;
        key_view v;
        v.fingerprint = c.fingerprint;
        v.issued_at = c.issued_at;
        v.expires_at = c.expires_at;
        v.replaces = info.mark.parent;
        v.pending = info.mark.pending;
        if (!info.successors.empty()) {
            v.successor = info.live ? info.live->fingerprint : info.successors.front()->fingerprint;
        }
        if (c.status != approval::approved) {
            v.state = key_state::revoked;
        } else if (expired(c, now_)) {
            v.state = key_state::expired;
        } else if (info.live != nullptr && !read_marker(*info.live).pending) {
            v.state = key_state::overlap;
        } else if (due(c) && !info.mark.pending) {
            v.state = key_state::due;
        } else {
            v.state = key_state::valid;
        }
        return v;
    }

    // Apigee's limits are 18 attributes, 50 products a key and (announced) 10
    // keys an app; far past them, or one consumer key twice, the answer
    // cannot be trusted. "" when the app looks sane.
    std::string implausible() const {
        if (app_.credentials.size() > 1000)
            return std::to_string(app_.credentials.size()) + " keys";
        if (app_.attributes.size() > 100)
            return std::to_string(app_.attributes.size()) + " app attributes";
        std::set<std::string> seen;
        for (const auto& c : app_.credentials) {
            if (c.consumer_key.empty()) continue;  // not a usable key; never acted on
            if (!seen.insert(c.fingerprint).second)
                return "consumer key " + c.fingerprint + " listed twice";
            if (c.attributes.size() > 100 || c.products.size() > 1000)
                return "key " + c.fingerprint + " with " + std::to_string(c.attributes.size()) +
                       " attributes and " + std::to_string(c.products.size()) + " products";
        }
        return "";
    }

    app_plan skip(std::string code, std::string why) {
        plan_.skipped = true;
        plan_.skip_code = std::move(code);
        plan_.skip_reason = std::move(why);
        for (auto& k : plan_.keys)
            if (k.state != key_state::revoked && k.state != key_state::expired)
                k.state = key_state::skipped;
        return std::move(plan_);
    }

    bool due(const credential& k) const {
        if (opt_.force_rotate) return true;
        if (k.expires_at <= now_ + rot_.rotate_before) return true;
        return rot_.max_age && now_ - k.issued_at >= *rot_.max_age;
    }

    time_or_never due_at(const credential& k) const {
        time_or_never at = k.expires_at.plus(-rot_.rotate_before);
        if (rot_.max_age) at = earliest(at, k.issued_at + *rot_.max_age);
        return at;
    }

    void wake(time_or_never at) {
        if (at > now_) plan_.next_wake = earliest(plan_.next_wake, at);
    }

    int valid_keys_left() const {
        int n = 0;
        for (const auto& c : app_.credentials)
            if (key_valid(c, now_) && !revoking_.count(c.fingerprint)) ++n;
        return n;
    }

    void add(action a) { plan_.actions.push_back(std::move(a)); }

    void report(const credential& k, std::string why, bool failed) {
        action a;
        a.kind = action_kind::report;
        a.key = k.fingerprint;
        a.failed = failed;
        a.reason = std::move(why);
        add(std::move(a));
    }

    bool revoke(const credential& k, std::string replaces, std::string why) {
        if (!key_valid(k, now_) && k.status != approval::approved) return false;
        // Never revoke an app's last valid key, whatever else the rules say.
        if (key_valid(k, now_) && valid_keys_left() <= 1) {
            report(k, "not revoked: it is the app's last valid key (" + why + ")", false);
            return false;
        }
        revoking_.insert(k.fingerprint);
        action a;
        a.kind = action_kind::revoke_key;
        a.key = k.fingerprint;
        a.replaces = std::move(replaces);
        a.reason = std::move(why);
        add(std::move(a));
        return true;
    }

    // A complete successor with a product still pending that this key has
    // approved: a completion that wrote the products and the final marker in
    // one update (docs/rotation.md) stopped before approving a manual-approval
    // product. Finish it (statuses mirrored again, never wider); revocation
    // waits until it has every product this key has approved.
    bool finish_approvals(const key_info& info) {
        const credential& k = *info.cred;
        if (info.live == nullptr || read_marker(*info.live).pending ||
            revoking_.count(info.live->fingerprint))
            return false;
        const credential& s = *info.live;
        std::string list;
        for (const auto& p : k.products) {
            if (p.status != approval::approved) continue;
            for (const auto& q : s.products)
                if (q.name == p.name && q.status == approval::pending)
                    list += (list.empty() ? "" : ",") + p.name;
        }
        if (list.empty()) return false;
        action a;
        a.kind = action_kind::complete_successor;
        a.key = s.fingerprint;
        a.replaces = k.fingerprint;
        a.spec = spec_from(k);
        a.reason = "successor " + s.fingerprint + " is complete but " + list +
                   " still pending there: approving as on " + k.fingerprint;
        add(std::move(a));
        return true;
    }

    // Two live successors of one key (a race between two daemons, or a crash
    // between create and read-back): the smaller fingerprint stays.
    void resolve_duplicates() {
        for (auto& [fp, info] : keys_) {
            for (const credential* s : info.successors) {
                if (!key_valid(*s, now_) || s == info.live) continue;
                revoke(*s, fp,
                       "duplicate successor of " + fp + "; keeping " + info.live->fingerprint +
                           " (smaller fingerprint)");
            }
        }
    }

    void complete(const key_info& succ) {
        const credential& s = *succ.cred;
        if (!key_valid(s, now_) || revoking_.count(s.fingerprint)) return;
        auto parent = keys_.find(succ.mark.parent);
        if (parent == keys_.end()) {
            report(s,
                   "pending successor of " + succ.mark.parent +
                       ", which no longer exists: cannot complete it; a person must decide",
                   true);
            return;
        }
        const credential& old = *parent->second.cred;
        if (old.status != approval::approved) {
            report(s,
                   "pending successor of " + old.fingerprint +
                       ", which a person revoked: not completed, access is not re-granted",
                   true);
            return;
        }
        action a;
        a.kind = action_kind::complete_successor;
        a.key = s.fingerprint;
        a.replaces = old.fingerprint;
        a.spec = spec_from(old);
        a.reason = "successor is pending: copy products, statuses, attributes and scopes of " +
                   old.fingerprint;
        add(std::move(a));
    }

    time_or_never successor_expiry(const credential& old) const {
        if (!rot_.key_lifetime) return time_or_never::never();
        const time_or_never e = now_ + *rot_.key_lifetime;
        // A successor must outlive the key it replaces.
        if (!old.expires_at.is_never() && e <= old.expires_at)
            return old.expires_at.plus(std::max(rot_.overlap, k_minute));
        return e;
    }

    bool room_for_marker(const credential& k) {
        if (own_attributes(k).size() + 1 <= k_max_attributes) return true;
        report(k,
               "due, but it has " + std::to_string(own_attributes(k).size()) +
                   " attributes and a successor needs one more for the keyrotd_replaces " +
                   std::string(k_no_room_tag),
               true);
        return false;
    }

    void create(const credential& k, bool late, std::string why) {
        action a;
        a.kind = action_kind::create_successor;
        a.key = k.fingerprint;
        a.expires_at = successor_expiry(k);
        a.late = late;
        a.spec = spec_from(k);
        a.reason = std::move(why);
        add(std::move(a));
    }

    // `gone`: the fingerprint of a successor someone revoked (it does not
    // count: the old key, still valid, gets a new one when due), or "".
    void maybe_rotate(const key_info& info, const std::string& gone = "") {
        const credential& k = *info.cred;
        if (!due(k)) {
            wake(due_at(k));
            return;
        }
        if (!room_for_marker(k)) return;
        if (rot_.window && !opt_.force_rotate && !in_window(*rot_.window, now_)) {
            wake(next_window_open(*rot_.window, now_));
            return;
        }
        std::string why;
        if (opt_.force_rotate) {
            why = "rotation requested";
        } else if (k.expires_at <= now_ + rot_.rotate_before) {
            why = "expires " + format_time(k.expires_at) + ", within rotateBefore " +
                  format_duration(rot_.rotate_before);
        } else {
            why = "issued " + format_time(k.issued_at) + ", older than maxAge " +
                  format_duration(rot_.max_age.value_or(milliseconds(0)));
        }
        if (!gone.empty())
            why += "; its successor " + gone +
                   " was revoked by someone else (it does not count): a new successor replaces it";
        create(k, false, std::move(why));
    }

    // An expired key without a successor (keyrotd was down): rotate it late
    // if it expired recently and the app lost products with it.
    void late_rotation(const key_info& info) {
        const credential& k = *info.cred;
        if (!info.successors.empty() || k.expires_at.is_never() ||
            k.expires_at < now_ - rot_.rotate_before)
            return;
        std::vector<std::string> uncovered;
        for (const auto& p : k.products) {
            if (p.status != approval::approved) continue;
            bool covered = false;
            for (const auto& c : app_.credentials) {
                if (!key_valid(c, now_)) continue;
                for (const auto& q : c.products)
                    if (q.name == p.name && q.status == approval::approved) covered = true;
            }
            if (!covered) uncovered.push_back(p.name);
        }
        if (uncovered.empty() || !room_for_marker(k)) return;
        std::string list;
        for (const auto& n : uncovered) list += (list.empty() ? "" : ",") + n;
        create(k, true,
               "late rotation: expired " + format_time(k.expires_at) +
                   " without a successor; no valid key covers " + list);
    }

    sys_ms revoke_at(const credential& old, const credential& successor) const {
        if (opt_.revoke_now) return now_;
        const time_or_never at = successor.issued_at + rot_.overlap;
        return earliest(at, old.expires_at).at();
    }

    void overlap(const key_info& info) {
        const credential& k = *info.cred;
        if (info.live == nullptr) {
            // Every successor is revoked or expired: someone revoked it. It does
            // not count: the old key, still valid, gets a new successor when due
            // (it grants nothing the old key does not). A person who wants the app
            // left alone excludes it in a policy or revokes the old key.
            maybe_rotate(info, info.successors.front()->fingerprint);
            return;
        }
        const credential& s = *info.live;
        if (read_marker(s).pending) return;  // completed first, revoked on a later pass
        if (!rot_.revoke && !opt_.revoke_now) return;
        const sys_ms at = revoke_at(k, s);
        if (now_ < at) {
            wake(at);
            return;
        }
        if (!covers_approved(s, k)) {
            report(k,
                   "overlap over, but successor " + s.fingerprint +
                       " no longer has every product this key has approved: " +
                       std::string(k_drift_tag),
                   false);
            return;
        }
        revoke(k, "",
               opt_.revoke_now
                   ? "revoked now (--revoke-now): successor " + s.fingerprint +
                         " is complete and valid"
                   : "overlap over: successor " + s.fingerprint + " is complete and valid");
    }

    // Keys keyrotd replaced, stopped working long enough ago.
    void deletions() {
        if (!rot_.deletes_revoked()) return;
        for (auto& [fp, info] : keys_) {
            const credential& k = *info.cred;
            if (key_valid(k, now_) && !revoking_.count(fp)) continue;
            // The successor that replaced it: a complete one, approved if any is
            // (one that someone revoked did not replace anything), earliest first.
            const credential* s = nullptr;
            auto better = [](const credential* c, const credential* than) {
                if (than == nullptr) return true;
                const bool ca = c->status == approval::approved,
                           ta = than->status == approval::approved;
                if (ca != ta) return ca;
                return c->issued_at < than->issued_at;
            };
            for (const credential* c : info.successors)
                if (!read_marker(*c).pending && better(c, s)) s = c;
            if (s == nullptr) continue;  // not replaced by keyrotd
            time_or_never stopped = k.expires_at;
            if (k.status != approval::approved || revoking_.count(fp))
                stopped = earliest(stopped, s->issued_at + rot_.overlap);
            const time_or_never at = stopped.plus(*rot_.delete_revoked_after);
            if (now_ < at) {
                wake(at);
                continue;
            }
            action a;
            a.kind = action_kind::delete_key;
            a.key = fp;
            a.replaces = "";
            a.reason = "replaced by " + s->fingerprint + "; stopped working " +
                       format_time(stopped) + ", deleteRevokedAfter " +
                       format_duration(*rot_.delete_revoked_after);
            add(std::move(a));
        }
    }

    const app& app_;
    const policy::rotation_rules& rot_;
    sys_ms now_;
    options opt_;
    std::map<std::string, key_info> keys_;
    std::set<std::string> revoking_;
    app_plan plan_;
};

// 0 = Sunday … 6 = Saturday, as time_window::days counts.
int weekday(date::local_days d) { return static_cast<int>(date::weekday(d).c_encoding()); }

}  // namespace

const char* to_string(key_state s) {
    switch (s) {
        case key_state::valid:
            return "valid";
        case key_state::due:
            return "due";
        case key_state::overlap:
            return "overlap";
        case key_state::expired:
            return "expired";
        case key_state::revoked:
            return "revoked";
        case key_state::skipped:
            return "skipped";
    }
    return "?";
}

const char* to_string(action_kind k) {
    switch (k) {
        case action_kind::create_successor:
            return "create";
        case action_kind::complete_successor:
            return "complete";
        case action_kind::revoke_key:
            return "revoke";
        case action_kind::delete_key:
            return "delete";
        case action_kind::report:
            return "report";
    }
    return "?";
}

report_code classify_report(std::string_view reason) {
    if (reason.ends_with(k_drift_tag)) return report_code::drift;
    if (reason.ends_with(k_no_room_tag)) return report_code::no_room_for_marker;
    return report_code::other;
}

bool key_valid(const credential& c, sys_ms now) {
    return c.status == approval::approved && !expired(c, now);
}

bool covers_approved(const credential& successor, const credential& old) {
    for (const auto& p : old.products) {
        if (p.status != approval::approved) continue;
        bool found = false;
        for (const auto& q : successor.products)
            if (q.name == p.name && q.status == approval::approved) found = true;
        if (!found) return false;
    }
    return true;
}

namespace {

using local_ms = date::local_time<milliseconds>;

// The window's local time at `now` (a named zone's offset from UTC changes
// with daylight saving time).
local_ms to_local(const policy::time_window& w, sys_ms now) {
    const milliseconds offset =
        w.zone == nullptr ? milliseconds(w.utc_offset) : milliseconds(w.zone->get_info(now).offset);
    return local_ms(now.time_since_epoch() + offset);
}

// The instant of a local time: a time skipped by a change to daylight saving
// time is the instant of the change; a time that happens twice, the first.
sys_ms to_utc(const policy::time_window& w, local_ms local) {
    if (w.zone == nullptr) return sys_ms(local.time_since_epoch() - w.utc_offset);
    return w.zone->to_sys(local, date::choose::earliest);
}

}  // namespace

bool in_window(const policy::time_window& w, sys_ms now) {
    const local_ms local = to_local(w, now);
    const date::local_days day = date::floor<date::days>(local);
    if (!w.days.empty() && std::find(w.days.begin(), w.days.end(), weekday(day)) == w.days.end())
        return false;
    const auto minute = date::floor<std::chrono::minutes>(local - day);
    return minute >= w.start && minute < w.end;
}

time_or_never next_window_open(const policy::time_window& w, sys_ms now) {
    const date::local_days today = date::floor<date::days>(to_local(w, now));
    for (int d = 0; d <= 8; ++d) {
        const date::local_days day = today + date::days(d);
        if (!w.days.empty() &&
            std::find(w.days.begin(), w.days.end(), weekday(day)) == w.days.end())
            continue;
        const sys_ms open = to_utc(w, local_ms(day) + w.start);
        if (open > now) return open;
    }
    return time_or_never::never();
}

app_plan plan_app(const app& a, const policy::policy& p, sys_ms now, const options& opt) {
    return planner(a, p, now, opt).run();
}

namespace {

// Developer emails match case-insensitively (Apigee treats them so).
bool any_glob(const std::vector<std::string>& globs, const std::string& text, bool icase) {
    for (const auto& g : globs) {
        if (icase ? policy::glob_match(ascii_lower(g), ascii_lower(text))
                  : policy::glob_match(g, text))
            return true;
    }
    return false;
}

bool holds_product(const app& a, const std::vector<std::string>& globs) {
    for (const auto& c : a.credentials)
        for (const auto& p : c.products)
            if (any_glob(globs, p.name, false)) return true;
    return false;
}

bool matches(const app& a, const policy::policy& p) {
    const auto& m = p.match;
    if (p.organization != a.organization) return false;
    if (!a.app_group.empty()) {
        // AppGroup names compare exactly, as Apigee's do.
        if (m.app_groups.empty() || !any_glob(m.app_groups, a.app_group, false)) return false;
        if (any_glob(m.exclude.app_groups, a.app_group, false)) return false;
    } else {
        if (m.developers.empty() && !m.app_groups.empty()) return false;  // teams only
        if (!m.developers.empty() && !any_glob(m.developers, a.developer_email, true)) return false;
    }
    if (!m.apps.empty() && !any_glob(m.apps, a.name, false)) return false;
    if (!m.api_products.empty() && !holds_product(a, m.api_products)) return false;
    for (const auto& [name, value] : m.attributes) {
        const std::string* v = find_attribute(a.attributes, name);
        if (v == nullptr || *v != value) return false;
    }
    if (any_glob(m.exclude.developers, a.developer_email, true)) return false;
    if (any_glob(m.exclude.apps, a.name, false)) return false;
    if (!m.exclude.api_products.empty() && holds_product(a, m.exclude.api_products)) return false;
    return true;
}

}  // namespace

const policy::policy* match_policy(const app& a, const std::vector<policy::policy>& policies) {
    const policy::policy* best = nullptr;
    for (const auto& p : policies) {
        if (!matches(a, p)) continue;
        if (best == nullptr || p.priority > best->priority ||
            (p.priority == best->priority && p.name < best->name))
            best = &p;
    }
    return best;
}

}  // namespace keyrot::plan
