// The emulator's state and its request handler: an in-memory Apigee management
// API (organizations, developers, API products, developer apps, credentials)
// plus the /__emulator/ test hooks. No I/O here: the server (server.cpp) hands
// over a parsed request and writes back the reply. All timestamps come from
// the emulator clock (real time + an offset that tests can advance), never
// from the system clock directly. Not thread-safe: one io_context thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace keyrot::emulator {

using millis = std::int64_t;

struct request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // path and query, still URL-encoded
    std::string authorization;
    std::string content_type;
    std::string metadata_flavor;  // the Metadata-Flavor header (GCE metadata server)
    std::string user_agent;       // tells the writers apart in the write history
    std::string body;
};

struct response {
    int status = 200;
    std::string body;  // JSON, or empty
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    millis delay_ms = 0;  // answer after this long (latency injection)
    bool drop = false;    // close the connection without answering
};

struct attribute {
    std::string name;
    std::string value;
};

struct key_product {
    std::string name;
    std::string status;  // approved | revoked | pending
};

struct credential {
    std::string consumer_key;
    std::string consumer_secret;
    std::string status = "approved";
    millis issued_at = 0;
    millis expires_at = -1;
    std::vector<attribute> attributes;
    std::vector<std::string> scopes;
    std::vector<key_product> products;
};

struct developer_app {
    std::string app_group;  // a team (AppGroup) app: no developer
    std::string name;
    std::string app_id;
    std::string status = "approved";
    std::vector<attribute> attributes;
    std::string callback_url;
    std::vector<std::string> scopes;
    std::string app_family;
    millis key_expires_in = -1;
    millis created_at = 0;
    millis last_modified_at = 0;
    std::vector<credential> credentials;
};

struct developer {
    std::string email;
    std::string developer_id;
    std::string first_name;
    std::string last_name;
    std::string user_name;
    std::string status = "active";
    std::vector<attribute> attributes;
    millis created_at = 0;
    millis last_modified_at = 0;
};

struct api_product {
    std::string name;
    std::string display_name;
    std::string approval_type = "auto";
    std::vector<attribute> attributes;
    millis created_at = 0;
    millis last_modified_at = 0;
};

// Apps are kept in one ordered map keyed by (lower-case developer email, app
// name): the org-wide list pages through it and a developer's apps are a range.
using app_key = std::pair<std::string, std::string>;

struct organization {
    std::string name;
    std::map<std::string, developer> developers;  // by lower-case email
    std::map<std::string, api_product> products;
    std::map<app_key, developer_app> apps;
    std::unordered_map<std::string, app_key> key_index;  // consumer key -> app
    std::unordered_map<std::string, app_key> app_id_index;
};

struct faults {
    millis latency_ms = 0;
    millis write_latency_ms = 0;  // more, for writes only (slow writes, fast reads)
    double p503 = 0;
    double p429 = 0;
    int retry_after_seconds = 1;
    double p_drop_after_write = 0;
    std::uint64_t seed = 0;
    // Hostile mode (docs/emulator.md): corrupts the answers about one app.
    std::string hostile_mode;  // "" (off) | wrong-types | missing-fields | huge-array |
                               // duplicate-keys | page-loop | page-cap
    std::string hostile_app;   // the app name it corrupts (page-loop, page-cap: every list page)
    // "generate key pair" keeps none of the body's attributes and callback URL,
    // as if the client had left them out: keyrotd must restore the app.
    bool generate_wipes_app = false;
};

struct availability_record {
    millis ts;
    std::string org, developer, app;
    int usable_before;
    int usable_keys;
    std::string request;
    std::string key;  // fingerprint of the key the request names (path, or a created key's body)
};

// The pessimistic readings of the places where Apigee's reference is
// ambiguous (docs/apigee-fidelity.md). All off: the lenient profile; --strict
// turns every one on; --reading NAME one at a time.
struct readings {
    bool create_scopes = false;            // keys.create with scopes, key has no product: 400
    bool update_wipes_attributes = false;  // a key update (POST/PUT) without attributes wipes them
    bool developer_list_emails = false;    // developers.list with count/startKey: emails only
    bool page_100 = false;                 // apps.list pageSize coerced to at most 100
    bool put_generates = false;            // PUT on an app naming apiProducts generates a key
    bool keystatus_whole_apps = false;     // keyStatus selects apps having such a key (all keys)
    // Sets one reading by its name; false for an unknown name.
    bool set(const std::string& name, bool on = true);
    bool get(const std::string& name) const;
    static const std::vector<std::string>& names();
    void all(bool on);

  private:
    bool* flag(const std::string& name);
};

// One write to /v1, from its arrival to its answer (the latency included), and
// who sent it (User-Agent): the HA tests check that no two processes had
// writes in flight at once.
struct write_span {
    millis start, end;
    std::string user_agent, request;
};

// A write that removed keyrotd's lineage marker from a key (the invariant the
// chaos suite checks under both profiles).
struct marker_loss {
    millis ts;
    std::string org, app, key, request;
};

class oauth;

class emulator {
  public:
    explicit emulator(std::string token = {});
    ~emulator();

    // Credentials for /v1 calls and the /token and /computeMetadata/ endpoints.
    oauth& auth() { return *oauth_; }

    // Throws std::runtime_error on a bad seed (fatal at start-up).
    void load_seed(const nlohmann::json& seed);
    void set_latency(millis ms) { faults_.latency_ms = ms; }
    readings& profile() { return readings_; }
    // Extra latency of an org app list page, per app it returns (real pages of
    // apps with credentials cost far more than one app's GET).
    void set_list_latency_per_app_us(std::int64_t us) { list_latency_per_app_us_ = us; }

    response handle(const request& req);

    millis now() const;

  private:
    response handle_hook(const request& req, const std::string& path, const std::string& query);
    response handle_api(const request& req, const std::vector<std::string>& seg,
                        const std::multimap<std::string, std::string>& query, std::string& route);

    organization& load_org(const nlohmann::json& o, millis base);
    nlohmann::json dump_state() const;
    // The body for an app list page (`list`) or one app, corrupted by the
    // hostile fault when it is on and the answer names its app.
    response hostile_response(nlohmann::json j, bool list) const;
    int usable_keys(const organization& org, const app_key& k) const;
    void record_availability(const std::string& org, const app_key& k, int before,
                             const std::string& route, const std::string& key = "");

    std::unique_ptr<oauth> oauth_;
    readings readings_;
    std::int64_t list_latency_per_app_us_ = 0;
    std::vector<marker_loss> markers_lost_;
    std::deque<write_span> writes_;
    millis clock_offset_ms_ = 0;
    std::map<std::string, std::unique_ptr<organization>> orgs_;
    faults faults_;
    std::mt19937_64 fault_rng_;
    std::mt19937_64 id_rng_;
    std::map<std::string, std::uint64_t> counters_;
    std::map<std::int64_t, std::uint64_t> rate_;  // unix second -> requests
    std::deque<availability_record> availability_;
    std::vector<availability_record> ever_lost_last_;
    std::uint64_t availability_dropped_ = 0;
};

}  // namespace keyrot::emulator
