#include "exec/inventory.hpp"

#include "apigee/api.hpp"
#include "common/text.hpp"

namespace keyrot::exec {
namespace {

std::string app_key(const app& a) { return a.developer_email + "\n" + a.name; }

// What the planner needs of a revoked key: lineage and times, and the key
// itself for a later delete. Attributes other than the marker, scopes,
// products and the secret are dropped.
credential slim(credential c) {
    credential s;
    s.fingerprint = std::move(c.fingerprint);
    s.consumer_key = std::move(c.consumer_key);
    s.status = std::move(c.status);
    s.issued_at = c.issued_at;
    s.expires_at = c.expires_at;
    if (const std::string* m = find_attribute(c.attributes, k_marker_attribute))
        s.attributes.push_back({k_marker_attribute, *m});
    return s;
}

error incomplete(const char* which, std::int64_t total, std::int64_t listed) {
    return error{error::kind::protocol, 0, "",
                 std::string("the org app list (") + which + " keys) announced totalSize " +
                     std::to_string(total) + " but its pages held " + std::to_string(listed) +
                     " apps: not planning from part of the organisation"};
}

}  // namespace

net::awaitable<result<void>> inventory_stream::open() {
    auto devs = co_await api_.list_developers();
    ++requests_;
    if (!devs) co_return devs.err();
    // Only statuses the list states; the rest are learnt per developer when needed.
    for (auto& [email, status] : devs.value())
        if (!status.empty()) developer_status_[ascii_lower(email)] = status;
    if (!with_revoked_) co_return ok_t{};

    std::string token;
    std::set<std::string> seen;
    std::int64_t listed = 0, total = -1;
    do {
        auto page = co_await api_.list_apps_page(token, page_size_, "revoked");
        ++requests_;
        if (!page) co_return page.err();
        listed += static_cast<std::int64_t>(page->apps.size());
        if (page->total_size >= 0) total = page->total_size;
        for (auto& a : page->apps) {
            if (!a.app_group.empty()) continue;  // team apps: not supported yet
            std::vector<credential> keep;
            for (auto& c : a.credentials)
                if (c.status == "revoked") keep.push_back(slim(std::move(c)));
            if (keep.empty()) continue;
            a.credentials = std::move(keep);
            a.attributes.clear();  // the approved listing brings the app's own fields
            revoked_only_[app_key(a)] = std::move(a);
        }
        token = page->next_page_token;
        if (!token.empty() && !seen.insert(token).second)
            co_return error{error::kind::protocol, 0, "", "app list repeats a page token"};
    } while (!token.empty());
    if (total > listed) co_return incomplete("revoked", total, listed);
    co_return ok_t{};
}

void inventory_stream::complete(app& a) {
    a.organization = api_.organization();
    if (!a.app_group.empty()) {
        a.developer_status.clear();  // a team app has no developer
        return;
    }
    auto st = developer_status_.find(ascii_lower(a.developer_email));
    // Not in the list, or listed without a status: "" (not known). The planner
    // never writes to such an app; the executor learns the status first.
    a.developer_status = st == developer_status_.end() ? "" : st->second;
}

net::awaitable<result<std::optional<std::vector<app>>>> inventory_stream::next() {
    if (!approved_done_) {
        auto page = co_await api_.list_apps_page(token_, page_size_, "approved");
        ++requests_;
        if (!page) co_return page.err();
        approved_seen_ += static_cast<std::int64_t>(page->apps.size());
        if (page->total_size >= 0) approved_total_ = page->total_size;
        std::vector<app> apps = std::move(page->apps);
        for (auto& a : apps) {
            complete(a);
            auto it = revoked_only_.find(app_key(a));
            if (it != revoked_only_.end()) {
                for (auto& c : it->second.credentials) {
                    bool known = false;
                    for (const auto& k : a.credentials) known |= k.fingerprint == c.fingerprint;
                    if (!known) a.credentials.push_back(std::move(c));
                }
                revoked_only_.erase(it);
            }
        }
        token_ = page->next_page_token;
        if (!token_.empty() && !seen_tokens_.insert(token_).second)
            co_return error{error::kind::protocol, 0, "", "app list repeats a page token"};
        if (token_.empty()) {
            approved_done_ = true;
            if (approved_total_ > approved_seen_)
                co_return incomplete("approved", approved_total_, approved_seen_);
        }
        co_return std::optional<std::vector<app>>(std::move(apps));
    }
    if (!leftovers_done_) {
        // Apps that have no approved key at all (their attributes were not read:
        // the planner only deletes or reports there, it never writes the app).
        leftovers_done_ = true;
        std::vector<app> apps;
        for (auto& [k, a] : revoked_only_) {
            complete(a);
            apps.push_back(std::move(a));
        }
        revoked_only_.clear();
        if (!apps.empty()) co_return std::optional<std::vector<app>>(std::move(apps));
    }
    co_return std::optional<std::vector<app>>();
}

}  // namespace keyrot::exec
