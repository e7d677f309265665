// JSON <-> model.hpp for the Apigee management API (docs/apigee-api.md).
//
// Parsing is tolerant of absent fields and nulls, strict on types: a field of
// the wrong type is an error of kind protocol naming the field, never an
// exception or a crash. int64 fields are accepted as JSON numbers or decimal
// strings; -1 (or "-1") means never (an empty optional, a never time_or_never);
// other negatives are errors.
// Credentials get their fingerprint filled. Credential apiProducts are
// [{apiproduct, status}]; plain names are tolerated with status "" (unknown:
// never treated as approved).
// Serialisers build request bodies; they write int64 fields as strings.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apigee/types.hpp"
#include "common/model.hpp"
#include "common/result.hpp"

namespace keyrot::apigee {

// Documents larger than this are refused before parsing (list pages are far smaller).
inline constexpr std::size_t k_max_json_bytes = 256u << 20;

result<app> parse_app(std::string_view body, const std::string& organization);
result<credential> parse_credential(std::string_view body);
// {"app": [...], "nextPageToken": "..."}
result<app_page> parse_app_page(std::string_view body, const std::string& organization);
// {"developer": [{email, status, ...}]} → (email, status); status "" when absent
result<std::vector<std::pair<std::string, std::string>>> parse_developers(std::string_view body);

struct google_error {
    int code = 0;
    std::string status;   // "NOT_FOUND"
    std::string message;  // raw; sanitise before use
};
// {"error": {"code", "message", "status"}}; false when the body is not one.
bool parse_google_error(std::string_view body, google_error& out);

// "generate key pair" body: name, attributes, callbackUrl, apiProducts (names),
// scopes, appFamily, keyExpiresIn (string; left out when never).
std::string generate_key_body(const app& a);
// PUT app body: name, attributes, callbackUrl, appFamily (no apiProducts: on Apigee
// a PUT with products may mint a key).
std::string update_app_body(const app& a);
// create key body: consumerKey, consumerSecret, expiresInSeconds (string; left out
// when never), attributes; never scopes. Holds secrets: the caller wipes it.
std::string create_key_body(const new_key& k);
// update key body: apiProducts (names) and always the key's complete attribute
// list: an update may replace the attributes with those sent, and one that
// leaves them out may wipe them (docs/apigee-fidelity.md).
std::string update_key_body(const std::vector<std::string>& add_products,
                            const std::vector<attribute>& attributes);
// replace key body: scopes, and the attributes as they are, for the same reason.
std::string scopes_body(const std::vector<std::string>& scopes,
                        const std::vector<attribute>& attributes);
// A team key's update (updateAppGroupAppKey): {"apiProducts": [names],
// "appGroupAppKey": {"attributes": [...], "scopes": [...]}}, the complete
// attribute list always and the scopes when given; nothing else (Google's
// front end refuses fields the message does not define).
std::string team_update_key_body(const std::vector<std::string>& add_products,
                                 const std::vector<attribute>& attributes,
                                 const std::vector<std::string>* scopes);
// A team key's approve/revoke: {"action": "approve"|"revoke"}, alone.
std::string team_key_action_body(bool approve);
// {"appGroups": [{name, status, ...}], "nextPageToken"} → (name, status) pairs
// and the token ("" at the end); status "" when absent.
result<std::pair<std::vector<std::pair<std::string, std::string>>, std::string>> parse_app_groups(
    std::string_view body);
// A developer's `status`; "" when the answer has none.
result<owner_status> parse_developer_status(std::string_view body);

// ---------------------------------------------------------------------------
// Apigee Edge (apigee.flavor: edge; docs/apigee-api.md, "Apigee Edge"). Times
// and keyExpiresIn are JSON numbers (strings are still accepted), in ms
// everywhere (a company app's too); `expiresAt: -1` is never. A company app
// carries `companyName` (→ app.app_group: companies are the team apps) and a
// developer app `developerId` only (the caller maps it to the e-mail).

result<app> parse_edge_app(std::string_view body, const std::string& organization);
// {"app": [...]} (no nextPageToken: the caller pages by startKey).
result<app_page> parse_edge_app_page(std::string_view body, const std::string& organization);

struct edge_developer {
    std::string email;
    std::string id;      // developerId
    std::string status;  // "" when absent
};
// {"developer": [{email, developerId, status}]}, or a JSON array of e-mails
// (what Edge may answer with count/startKey: expand "is not valid" with them).
result<std::vector<edge_developer>> parse_edge_developers(std::string_view body);
// GET /developers/{email or developerId}: the developer; no email is an error.
result<edge_developer> parse_edge_developer(std::string_view body);
// {"company": [{name, status}]} → (name, status); a company without a name is
// an error. A JSON array of names gives statuses "" (not known).
result<std::vector<std::pair<std::string, std::string>>> parse_edge_companies(
    std::string_view body);

struct edge_error {
    std::string code;     // "keymanagement.service.app_does_not_exist"
    std::string message;  // raw; sanitise before use
};
// {"code", "message", "contexts"}; false when the body is not one.
bool parse_edge_error(std::string_view body, edge_error& out);
// The Google status name for an HTTP status ("NOT_FOUND" for 404), so that
// errors read the same on both flavors; "" for statuses without one.
std::string status_name(int http_status);

// Generate key (POST on the app): as generate_key_body, keyExpiresIn a number (ms).
std::string edge_generate_key_body(const app& a);
// keys/create: {consumerKey, consumerSecret}, nothing else (Edge takes no expiry,
// attributes or products there). Holds secrets: the caller wipes it.
std::string edge_create_key_body(const new_key& k);
// POST …/keys/K: {apiProducts, attributes[, scopes]}: products appended,
// attributes (and scopes, when given) replaced; developer and company keys alike.
std::string edge_update_key_body(const std::vector<std::string>& add_products,
                                 const std::vector<attribute>& attributes,
                                 const std::vector<std::string>* scopes);

// The org app list's paging by inclusive startKey (an appId; apps come ordered
// by appId, and the page starts with the startKey app when it still exists).
// `ids` are the appIds of the page just read, `start_key` the one it was asked
// from ("" for the first page). Tells how many leading apps repeat the previous
// page (0 or 1) and the next startKey: the last appId of the page, or "" when
// the page brought no new app (the end). Pages shorter than `rows` do not end
// the listing on their own: a server may cap rows below what was asked.
struct edge_page_step {
    std::size_t skip = 0;
    std::string next_start_key;
};
edge_page_step edge_next_page(const std::string& start_key, const std::vector<std::string>& ids);

}  // namespace keyrot::apigee
