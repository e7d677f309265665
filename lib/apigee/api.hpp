// The Apigee management API calls keyrotd makes (docs/apigee-api.md), typed.
//
// Every call returns result<T>; none retries a create (the HTTP client retries
// only requests that are safe to repeat). Paths are URL-encoded here; consumer
// keys travel only inside paths and bodies, never into error messages.
//
// Retries (http/client.hpp): GET, PUT, DELETE, the ?action= POSTs and a team
// key's approve/revoke POST (its action in the body) are repeated on
// 429/5xx/resets/timeouts. generate_key, create_key and update_key
// (POSTs without action) are sent once: on a network error (timed_out or not)
// the write may have happened, so re-read before deciding. A repeated DELETE
// may answer 404 when an earlier attempt already deleted the key.
// A 401 makes the token source renew once and the call go out once more.
// Errors: kind http (status, code = Google status such as "ALREADY_EXISTS",
// sanitised server message), network, protocol (unexpected JSON), auth, config.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>  // before Asio: see common/asio.hpp
#include <vector>

#include "apigee/types.hpp"
#include "common/asio.hpp"
#include "common/model.hpp"
#include "common/result.hpp"

namespace keyrot::http {
class transport;
}
namespace keyrot::auth {
class token_source;
}

namespace keyrot::apigee {

// Which management API: Apigee X / hybrid, or Apigee Edge (Public or Private
// Cloud). The calls are the same operations; Edge's differ in paths (companies
// for teams, keys/create), bodies (numbers, no expiry on keys/create), error
// bodies ({code, message, contexts}) and the org app list's paging (startKey
// and rows). The executor does not see the difference (docs/apigee-api.md).
enum class flavor { x, edge };

struct api_options {
    enum flavor flavor = flavor::x;
    // Edge: `rows` of the org app list (1000 Public Cloud, 10000 Private Cloud);
    // list_apps_page's page_size is X's pageSize and not used on Edge.
    int edge_rows = 1000;
};

class api {
  public:
    // `base_url` e.g. "https://apigee.googleapis.com" (the client is already bound to it);
    // paths are /v1/organizations/{org}/...
    api(http::transport& http, auth::token_source& auth, std::string organization,
        api_options options = {});

    const std::string& organization() const { return org_; }
    bool edge() const { return opts_.flavor == flavor::edge; }

    // GET /apps?expand=true&includeCred=true&pageSize=N[&pageToken=T]&keyStatus=S
    // `key_status` approved (Apigee's default) or revoked, nullopt for all: a pass lists both so
    // that revoked successors and deletion candidates are seen without per-app reads.
    // Developer status is not in this list: apps carry developerEmail; callers
    // resolve inactive developers with list_developers().
    net::awaitable<result<app_page>> list_apps_page(std::string page_token, int page_size,
                                                    std::optional<approval> key_status);

    // Edge: GET /apps?expand=true&rows=R[&startKey=APPID]: `page_token` is the
    // startKey (the last appId of the page before), next_page_token the next one
    // ("" at the end); the repeated startKey app is dropped; keys filtered to
    // `key_status` here (Edge has no keyStatus). Developer apps get their
    // developerEmail from the developer list (list_developers), or, for a
    // developerId it does not hold, from GET /developers/{developerId} (once each).
    //
    // GET /developers?expand=true (paged with count/startKey) → (email, status) pairs,
    // status "active" | "inactive" | "" (expand "is not valid" with count/startKey:
    // entries may carry the email only).
    net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> list_developers();
    // GET /appgroups?pageSize=1000[&pageToken=T] → (name, status) pairs, status
    // "active" | "inactive" | "". Edge: the companies, GET
    // /companies?expand=true&count=1000[&startKey=NAME].
    net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> list_app_groups();
    // GET /appgroups/G (Edge: /companies/C) → its status ("" when the answer has none).
    net::awaitable<result<owner_status>> get_app_group_status(std::string team);
    // The status of an app's owner: the developer's or the AppGroup's.
    net::awaitable<result<owner_status>> get_owner_status(app_owner owner);
    // GET /developers/D → its status ("" when the answer has none).
    net::awaitable<result<owner_status>> get_developer_status(std::string developer);

    net::awaitable<result<app>> get_app(app_owner owner, std::string app_name);

    // The calls below take the app's owner: /developers/D/apps/A/… or
    // /appgroups/G/apps/A/… (a team app: its key update and approve/revoke
    // have their own bodies, and it has no generate-key call or app update:
    // generate_key and update_app answer a config error for it; on Edge a
    // company app has no generate-key call either, but an app update).
    // POST /developers/D/apps/A (no action): "generate key pair". `body` carries
    // every field the app must keep (attributes, callbackUrl, apiProducts, scopes,
    // appFamily, keyExpiresIn).
    net::awaitable<result<app>> generate_key(app_owner owner, const app& body);

    // PUT /developers/D/apps/A: restore attributes and callback URL.
    net::awaitable<result<app>> update_app(app_owner owner, const app& body);

    net::awaitable<result<credential>> create_key(app_owner owner, std::string app_name,
                                                  const new_key& key);
    net::awaitable<result<credential>> get_key(app_owner owner, std::string app_name, secret key);
    // POST …/keys/K {apiProducts, attributes}: adds products. `attributes` is the
    // key's complete list (marker included): the call replaces them.
    net::awaitable<result<credential>> update_key(app_owner owner, std::string app_name, secret key,
                                                  std::vector<std::string> add_products,
                                                  std::vector<attribute> attributes);
    // PUT …/keys/K {scopes, attributes}: replaces the scopes; the complete
    // attribute list rides along in case the replace takes the whole key.
    net::awaitable<result<credential>> replace_key_scopes(app_owner owner, std::string app_name,
                                                          secret key,
                                                          std::vector<std::string> scopes,
                                                          std::vector<attribute> attributes);
    // POST …/keys/K?action=approve|revoke (204)
    net::awaitable<result<void>> set_key_status(app_owner owner, std::string app_name, secret key,
                                                bool approve);
    // POST …/keys/K/apiproducts/P?action=approve|revoke (204)
    net::awaitable<result<void>> set_key_product_status(app_owner owner, std::string app_name,
                                                        secret key, std::string product,
                                                        bool approve);
    // DELETE …/keys/K
    net::awaitable<result<void>> delete_key(app_owner owner, std::string app_name, secret key);

  private:
    net::awaitable<result<app_page>> edge_list_apps_page(std::string start_key,
                                                         std::optional<approval> key_status);
    net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> edge_list_companies();
    net::awaitable<result<std::vector<std::pair<std::string, std::string>>>> edge_list_developers();

    http::transport& http_;
    auth::token_source& auth_;
    std::string org_;
    api_options opts_;
    std::map<std::string, std::string> email_by_developer_id_;  // Edge
};

}  // namespace keyrot::apigee
