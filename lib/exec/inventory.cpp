#include "exec/inventory.hpp"

#include <algorithm>

#include "apigee/api.hpp"
#include "common/text.hpp"

namespace keyrot::exec {
namespace {

std::string app_key(const app& a) { return owner_id(a) + "\n" + a.name; }

// What the planner needs of a key to plan deletions: lineage and times, and
// the key itself for the delete. Other attributes, scopes, products and the
// secret are dropped.
credential slim(const credential& c) {
    credential s;
    s.fingerprint = c.fingerprint;
    s.consumer_key = c.consumer_key;
    s.status = c.status;
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
        if (!status.empty()) developer_status_[ascii_lower(email)] = parse_owner_status(status);
    if (with_teams_) {
        auto groups = co_await api_.list_app_groups();
        ++requests_;
        if (!groups) co_return groups.err();
        for (auto& [name, status] : groups.value())
            if (!status.empty()) developer_status_["\x01" + name] = parse_owner_status(status);
    }
    co_return ok_t{};
}

void inventory_stream::complete(app& a) {
    a.organization = api_.organization();
    // A team app's owner is its AppGroup (its status listed when with_teams).
    auto st =
        developer_status_.find(a.app_group.empty() ? ascii_lower(a.developer_email) : owner_id(a));
    // Not in the list, or listed without a status: not known. The planner
    // never writes to such an app; the executor learns the status first.
    a.developer_status = st == developer_status_.end() ? owner_status::not_known : st->second;
}

net::awaitable<result<std::optional<std::vector<app>>>> inventory_stream::next_page(
    approval key_status, std::string& token, std::int64_t& seen, std::int64_t& total) {
    auto page = co_await api_.list_apps_page(token, page_size_, key_status);
    ++requests_;
    if (!page) co_return page.err();
    seen += static_cast<std::int64_t>(page->apps.size());
    if (page->total_size >= 0) total = page->total_size;
    token = page->next_page_token;
    if (!token.empty() && !seen_tokens_.insert(token).second)
        co_return error{error::kind::protocol, 0, "", "app list repeats a page token"};
    if (token.empty() && total > seen) co_return incomplete(to_string(key_status), total, seen);
    co_return std::optional<std::vector<app>>(std::move(page->apps));
}

net::awaitable<result<std::optional<std::vector<app>>>> inventory_stream::next() {
    if (!approved_done_) {
        auto page = co_await next_page(approval::approved, token_, seen_, total_);
        if (!page) co_return page.err();
        std::vector<app> apps = std::move(*page.value());
        for (auto& a : apps) {
            complete(a);
            if (!with_revoked_) continue;
            // The lineage of an app that has a successor: its revoked keys,
            // listed later, may be deletable.
            const bool successor =
                std::any_of(a.credentials.begin(), a.credentials.end(), [](const credential& c) {
                    return find_attribute(c.attributes, k_marker_attribute) != nullptr;
                });
            if (!successor) continue;
            auto& keep = lineage_[app_key(a)];
            for (const auto& c : a.credentials) keep.push_back(slim(c));
        }
        if (token_.empty()) {
            approved_done_ = true;
            seen_tokens_.clear();
            seen_ = 0;
            total_ = -1;
        }
        co_return std::optional<std::vector<app>>(std::move(apps));
    }
    if (!with_revoked_ || revoked_done_) co_return std::optional<std::vector<app>>();
    auto page = co_await next_page(approval::revoked, token_, seen_, total_);
    if (!page) co_return page.err();
    if (token_.empty()) revoked_done_ = true;
    std::vector<app> apps;
    for (auto& a : *page.value()) {
        std::vector<credential> keys;
        for (const auto& c : a.credentials)
            if (c.status == approval::revoked) keys.push_back(slim(c));
        if (keys.empty()) continue;
        if (auto it = lineage_.find(app_key(a)); it != lineage_.end()) {
            for (auto& c : it->second) {
                bool known = false;
                for (const auto& k : keys) known |= k.fingerprint == c.fingerprint;
                if (!known) keys.push_back(std::move(c));
            }
            lineage_.erase(it);
        }
        a.credentials = std::move(keys);
        a.attributes.clear();  // not needed: nothing but deletions is planned from this
        complete(a);
        apps.push_back(std::move(a));
    }
    co_return std::optional<std::vector<app>>(std::move(apps));
}

}  // namespace keyrot::exec
