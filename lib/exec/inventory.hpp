// Reads an organisation through the paged org app list without holding all of
// it: first the developers (for their status, when the list gives it) and, when
// asked for, the revoked keys (kept slim: fingerprint, key, status, times and
// lineage marker), then the apps with approved keys page by page, each app
// completed with its revoked keys. Apps that only have revoked keys come last.
// Memory is one page plus the slim revoked keys, whatever the size of the
// organisation.
//
// Whatever page size the server uses, the stream follows nextPageToken; a
// listing that cannot show it is whole (a token seen twice, fewer apps than
// `totalSize` announced) is an error: planning from part of an organisation
// makes keys look as if they had no successor (docs/apigee-fidelity.md).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/model.hpp"
#include "common/result.hpp"

namespace keyrot::apigee {
class api;
}

namespace keyrot::exec {

class inventory_stream {
  public:
    inventory_stream(apigee::api& api, int page_size, bool with_revoked)
        : api_(api), page_size_(page_size), with_revoked_(with_revoked) {}

    // Developers and revoked keys. Must succeed before next() is called.
    net::awaitable<result<void>> open();
    // The next page of apps, or an empty optional at the end.
    net::awaitable<result<std::optional<std::vector<app>>>> next();

    int list_requests() const { return requests_; }
    // Developer statuses the developer list gave (lower-case email → status).
    const std::map<std::string, std::string>& developer_statuses() const {
        return developer_status_;
    }

  private:
    void complete(app& a);

    apigee::api& api_;
    int page_size_;
    bool with_revoked_;
    int requests_ = 0;
    std::int64_t approved_seen_ = 0;
    std::int64_t approved_total_ = -1;
    std::map<std::string, std::string> developer_status_;
    std::map<std::string, app> revoked_only_;  // developer\napp -> app with its revoked keys
    std::string token_;
    std::set<std::string> seen_tokens_;
    bool approved_done_ = false;
    bool leftovers_done_ = false;
};

}  // namespace keyrot::exec
