#include "exec/inventory.hpp"

#include "apigee/api.hpp"

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

}  // namespace

net::awaitable<result<void>> inventory_stream::open() {
    auto devs = co_await api_.list_developers();
    ++requests_;
    if (!devs) co_return devs.err();
    for (auto& [email, status] : devs.value()) developer_status_[email] = status;

    std::string token;
    std::set<std::string> seen;
    do {
        auto page = co_await api_.list_apps_page(token, page_size_, "revoked");
        ++requests_;
        if (!page) co_return page.err();
        for (auto& a : page->apps) {
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
    co_return ok_t{};
}

void inventory_stream::complete(app& a) {
    a.organization = api_.organization();
    auto st = developer_status_.find(a.developer_email);
    // A developer missing from the developer list is not active for us: never
    // write to an app whose owner we cannot see.
    a.developer_status = st == developer_status_.end() ? "unknown" : st->second;
}

net::awaitable<result<std::optional<std::vector<app>>>> inventory_stream::next() {
    if (!approved_done_) {
        auto page = co_await api_.list_apps_page(token_, page_size_, "approved");
        ++requests_;
        if (!page) co_return page.err();
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
        if (token_.empty()) approved_done_ = true;
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
