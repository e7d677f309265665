// The emulator's public face: an in-memory Apigee management API
// (organizations, developers, API products, developer apps, credentials) plus
// the /__emulator/ test hooks, behind one call: handle(request) -> response.
// No I/O here: the server (server.cpp) hands over a parsed request and writes
// back the reply. All timestamps come from the emulator clock (real time + an
// offset that tests can advance), never from the system clock directly. Not
// thread-safe: one io_context thread. The state and the handlers are internal
// (state.hpp, api.hpp, hooks.hpp, faults.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
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
    // Edge flavor only (listed by GET /__emulator/readings in that flavor):
    bool create_expiry = false;       // keys/create naming an expiry: 400 (lenient: ignored)
    bool refresh_single_use = false;  // a refresh token works once (lenient: until it expires)
    bool company_post_action_only = false;    // POST on a company app needs ?action= (no generate)
    bool company_startkey_exclusive = false;  // the company list's startKey is not included
    // Sets one reading by its name; false for an unknown name.
    bool set(const std::string& name, bool on = true);
    bool get(const std::string& name) const;
    static const std::vector<std::string>& names();
    // The readings of the Edge flavor only (a subset of names()).
    static const std::vector<std::string>& edge_names();
    void all(bool on);

  private:
    bool* flag(const std::string& name);
};

class oauth;
struct state;

// Which management API the emulator serves: Apigee X / hybrid (apigee.googleapis.com)
// or Apigee Edge (api.enterprise.apigee.com and its login server).
enum class flavor { x, edge };

class emulator {
  public:
    explicit emulator(std::string token = {});
    ~emulator();

    // Credentials for /v1 calls and the /token and /computeMetadata/ endpoints.
    oauth& auth();

    // Throws std::runtime_error on a bad seed (fatal at start-up).
    void load_seed(const nlohmann::json& seed);
    void set_latency(millis ms);
    readings& profile();
    // Extra latency of an org app list page, per app it returns (real pages of
    // apps with credentials cost far more than one app's GET).
    void set_list_latency_per_app_us(std::int64_t us);
    // Edge flavor: the /v1 API as Edge serves it, and POST /oauth/token.
    void set_flavor(flavor f);
    // Edge flavor: org app list pages of up to 10,000 rows (Private Cloud) instead of 1,000.
    void set_private_cloud(bool on);

    response handle(const request& req);

    millis now() const;
    // In-process tests: the clock stands at `at` (ms since the epoch) and moves
    // only when told to (the clock hook), and identifiers come from `seed`, so
    // that a run does not depend on how fast the machine is.
    void freeze(millis at, std::uint64_t seed);

  private:
    std::unique_ptr<state> state_;
};

}  // namespace keyrot::emulator
