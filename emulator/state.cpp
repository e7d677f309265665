#include "state.hpp"

#include <algorithm>
#include <chrono>

namespace keyrot::emulator {

const std::vector<std::string>& readings::names() {
    static const std::vector<std::string> n = {"create-scopes",
                                               "update-wipes-attributes",
                                               "developer-list-emails",
                                               "page-100",
                                               "put-generates",
                                               "keystatus-whole-apps",
                                               "create-expiry",
                                               "refresh-single-use",
                                               "company-post-action-only",
                                               "company-startkey-exclusive"};
    return n;
}

const std::vector<std::string>& readings::edge_names() {
    static const std::vector<std::string> n = {"create-expiry", "refresh-single-use",
                                               "company-post-action-only",
                                               "company-startkey-exclusive"};
    return n;
}

bool* readings::flag(const std::string& name) {
    return name == "create-scopes"                ? &create_scopes
           : name == "update-wipes-attributes"    ? &update_wipes_attributes
           : name == "developer-list-emails"      ? &developer_list_emails
           : name == "page-100"                   ? &page_100
           : name == "put-generates"              ? &put_generates
           : name == "keystatus-whole-apps"       ? &keystatus_whole_apps
           : name == "create-expiry"              ? &create_expiry
           : name == "refresh-single-use"         ? &refresh_single_use
           : name == "company-post-action-only"   ? &company_post_action_only
           : name == "company-startkey-exclusive" ? &company_startkey_exclusive
                                                  : nullptr;
}

bool readings::set(const std::string& name, bool on) {
    bool* f = flag(name);
    if (f == nullptr) return false;
    *f = on;
    return true;
}

bool readings::get(const std::string& name) const {
    const bool* f = const_cast<readings*>(this)->flag(name);
    return f != nullptr && *f;
}

void readings::all(bool on) {
    for (const auto& n : names()) set(n, on);
}

state::state() : fault_rng(0), id_rng(std::random_device{}()) {}

millis state::now() const {
    using namespace std::chrono;
    if (frozen_at) return *frozen_at + clock_offset_ms;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() +
           clock_offset_ms;
}

int state::usable_keys(const organization& org, const app_key& k) const {
    auto ai = org.apps.find(k);
    if (ai == org.apps.end() || ai->second.status != "approved") return 0;
    if (!ai->second.app_group.empty()) {
        auto gi = org.app_groups.find(ai->second.app_group);
        if (gi == org.app_groups.end() || gi->second.status != "active") return 0;
    } else {
        auto di = org.developers.find(k.first);
        if (di == org.developers.end() || di->second.status != "active") return 0;
    }
    const millis t = now();
    int n = 0;
    for (const auto& c : ai->second.credentials) {
        if (c.status != "approved") continue;
        if (c.expires_at && *c.expires_at <= t) continue;
        if (std::any_of(c.products.begin(), c.products.end(),
                        [](const key_product& p) { return p.status == "approved"; }))
            ++n;
    }
    return n;
}

void state::record_availability(const std::string& org, const app_key& k, int before,
                                const std::string& route, const std::string& key) {
    auto oi = orgs.find(org);
    if (oi == orgs.end() || !oi->second->apps.count(k)) return;
    int after = usable_keys(*oi->second, k);
    const developer_app& a = oi->second->apps.at(k);
    const std::string developer =
        a.app_group.empty() ? oi->second->developers.at(k.first).email : "";
    availability_record r{now(), org, developer, k.second, before, after, route, key, a.app_group};
    if (before >= 1 && after == 0) ever_lost_last.push_back(r);
    availability.push_back(std::move(r));
    if (availability.size() > k_max_availability) {
        availability.pop_front();
        ++availability_dropped;
    }
}

}  // namespace keyrot::emulator
