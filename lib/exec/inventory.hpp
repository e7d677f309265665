// Reads an organisation through the paged org app list without holding all of
// it: first the developers (for their status, when the list gives it), then
// the apps with approved keys page by page, and, only when asked for, the
// revoked keys after that (never ahead of the first write): each app with
// revoked keys comes again in that second phase, its revoked keys joined to
// the lineage of its approved keys (kept slim, only for apps that have a
// successor). Memory is one page plus those slim keys.
//
// Whatever page size the server uses, the stream follows nextPageToken; a
// listing that cannot show it is whole (a token seen twice, fewer apps than
// `totalSize` announced) is an error: planning from part of an organisation
// makes keys look as if they had no successor (docs/apigee-fidelity.md).
#pragma once

#include <cstdint>
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
    // `with_teams`: some policy matches team (AppGroup) apps: open() lists the
    // AppGroups for their status too.
    inventory_stream(apigee::api& api, int page_size, bool with_revoked, bool with_teams = false)
        : api_(api), page_size_(page_size), with_revoked_(with_revoked), with_teams_(with_teams) {}

    // Developers (and AppGroups). Must succeed before next() is called.
    net::awaitable<result<void>> open();
    // The next page of apps, or an empty optional at the end.
    net::awaitable<result<std::optional<std::vector<app>>>> next();
    // True once next() hands out the second phase: apps with revoked keys,
    // whose approved keys are slim (lineage and times only). Plan them for
    // deletions and counts only, never for writes that copy a key.
    bool revoked_phase() const { return approved_done_; }

    int list_requests() const { return requests_; }
    // Owner statuses the lists gave: lower-case email → status, and for an
    // AppGroup its owner_id() ("\x01" + name) → status.
    const std::map<std::string, owner_status>& developer_statuses() const {
        return developer_status_;
    }

  private:
    void complete(app& a);
    net::awaitable<result<std::optional<std::vector<app>>>> next_page(approval key_status,
                                                                      std::string& token,
                                                                      std::int64_t& seen,
                                                                      std::int64_t& total);

    apigee::api& api_;
    int page_size_;
    bool with_revoked_;
    bool with_teams_;
    int requests_ = 0;
    std::map<std::string, owner_status> developer_status_;
    std::map<std::string, std::vector<credential>> lineage_;  // owner_id\napp -> slim keys
    std::string token_;
    std::set<std::string> seen_tokens_;
    std::int64_t seen_ = 0, total_ = -1;
    bool approved_done_ = false;
    bool revoked_done_ = false;
};

}  // namespace keyrot::exec
