// The daemon's configuration and its rotation policies, as loaded from YAML or
// JSON (docs/configuration.md). Loading never throws on bad input: it returns
// every problem found, each naming file, line, column and field, so
// `keyrotd validate` can list them all at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.hpp"

namespace date {
class time_zone;
}

namespace keyrot::policy {

enum class rotation_method { import_key, generate };

// A rotation window: rotations (creating successors) start only inside it.
// Revocations and completions are not held back by the window.
struct time_window {
    std::vector<int> days;          // 0 = Sunday … 6 = Saturday; empty = every day
    std::chrono::minutes start{0};  // after local midnight
    std::chrono::minutes end = std::chrono::hours(24);
    // "UTC", a fixed offset "+02:00" / "-05:30", or a name from the system's
    // time zone database ("Europe/Berlin"), which follows daylight saving time.
    std::string timezone = "UTC";
    std::chrono::minutes utc_offset{0};     // a fixed offset (east of UTC), parsed from timezone
    const date::time_zone* zone = nullptr;  // a named zone; the fixed offset when null
};

// Developer apps match when `developers` does (empty: all), except that a
// policy with `appGroups` and no `developers` matches team apps only. Team
// (AppGroup) apps match only a policy whose `appGroups` matches their team.
struct match_rules {
    std::vector<std::string> developers;    // globs on developer email; empty = all
    std::vector<std::string> app_groups;    // globs on AppGroup name; empty = no team app
    std::vector<std::string> apps;          // globs on app name; empty = all
    std::vector<std::string> api_products;  // any key holding one of these; empty = all
    std::vector<std::pair<std::string, std::string>> attributes;  // app attributes that must equal
    struct {
        std::vector<std::string> developers;
        std::vector<std::string> app_groups;
        std::vector<std::string> apps;
        std::vector<std::string> api_products;
    } exclude;
};

struct rotation_rules {
    std::optional<milliseconds> key_lifetime = 90 * k_day;  // nullopt = "never"
    milliseconds rotate_before = 14 * k_day;
    std::optional<milliseconds> max_age;  // empty: off (maxAge: 0)
    milliseconds overlap = 7 * k_day;
    bool revoke = true;
    std::optional<milliseconds> delete_revoked_after;  // empty: never (deleteRevokedAfter: 0)
    rotation_method method = rotation_method::import_key;
    std::optional<time_window> window;

    bool deletes_revoked() const { return delete_revoked_after.has_value(); }
};

struct policy {
    std::string name;
    std::string organization;
    int priority = 0;
    match_rules match;
    rotation_rules rotation;
    bool dry_run = false;
    // notify: {expiringAt: [...]}: this policy's key.expiring lead times, longest
    // first; unset: the config's notify.expiringAt (docs/notifications.md).
    std::optional<std::vector<milliseconds>> notify_expiring_at;
    // deliver / attributeTargets (docs/delivery.md) as JSON text for
    // deliver::parse_config, already checked by the loader; empty: none.
    std::string deliver_json;
    std::string source;  // file it came from, for messages
    // Where some fields were written (line, column; 1-based), for checks made
    // after reading (the flavor's refusals): "rotation.method", "rotation.keyLifetime".
    std::map<std::string, std::pair<int, int>> positions;
};

// The Edge login server of Public Cloud (auth method edge-oauth's default).
inline constexpr std::string_view k_edge_login_url = "https://login.apigee.com/oauth/token";
// Apigee Edge Public Cloud's management server (flavor edge's default url).
inline constexpr std::string_view k_edge_public_url = "https://api.enterprise.apigee.com";

// apigee.auth.method, parsed once when the config is read.
enum class auth_method { google, token_file, token_env, basic, none, edge_oauth };

// As written in the config: "google", "token-file", "token-env", "basic",
// "none", "edge-oauth". (Inline: lib/auth uses these structs without linking
// keyrot::policy.)
inline constexpr std::string_view to_string(auth_method m) {
    switch (m) {
        case auth_method::google:
            return "google";
        case auth_method::token_file:
            return "token-file";
        case auth_method::token_env:
            return "token-env";
        case auth_method::basic:
            return "basic";
        case auth_method::none:
            return "none";
        case auth_method::edge_oauth:
            return "edge-oauth";
    }
    return "?";
}

// nullopt for a name that is not one of to_string's.
inline std::optional<auth_method> parse_auth_method(std::string_view name) {
    for (auto m : {auth_method::google, auth_method::token_file, auth_method::token_env,
                   auth_method::basic, auth_method::none, auth_method::edge_oauth})
        if (to_string(m) == name) return m;
    return std::nullopt;
}

struct auth_config {
    auth_method method = auth_method::google;  // edge-oauth: flavor edge only
    std::string path;                          // token-file; google (optional key file)
    std::string env;                           // token-env
    std::string user_env;                      // basic; edge-oauth (or `user`)
    std::string password_env;                  // basic
    // edge-oauth: the Edge login server's token URL (default k_edge_login_url on
    // Public Cloud, required on Private Cloud), the user name (`user`, or the
    // variable `userEnv`) and the password file, optionally an MFA seed file
    // (base32, for TOTP codes); or a SAML zone's one-time passcode file in
    // place of user and password. Secrets only ever from files.
    std::string token_url;
    std::string user;
    std::string password_file;
    std::string mfa_seed_file;
    std::string passcode_file;
};

struct apigee_config {
    // x (Apigee X and hybrid: apigee.googleapis.com or a hybrid management
    // plane) | edge (Apigee Edge, Public Cloud or Private Cloud; docs/flavors.md).
    std::string flavor = "x";
    std::string url = "https://apigee.googleapis.com";  // flavor edge: k_edge_public_url
    auth_config auth;
    std::string ca_file;
    milliseconds timeout = 30 * k_second;
    int max_concurrency = 8;
    double requests_per_second = 20;
    // flavor edge (`apigee.edge`): Private Cloud (a management server of one's
    // own) or Public Cloud; the default is Public Cloud when `url` is Public
    // Cloud's, else Private Cloud. `app_list_rows`: `rows` of the org app list
    // (1000 on Public Cloud, 10000 on Private Cloud by default and at most).
    bool edge_private_cloud = false;
    int app_list_rows = 1000;

    bool edge() const { return flavor == "edge"; }
};

struct config {
    apigee_config apigee;
    std::string listen = "127.0.0.1:9464";
    milliseconds interval = 10 * k_minute;
    std::string state_dir = "/var/lib/keyrotd";
    std::string policies_path = "/etc/keyrotd/policies.d";
    std::string log_level = "info";
    std::string log_format = "text";
    bool metrics_per_key = true;  // metrics: {perKey: false} turns per-key series off
    // The `notify` section as JSON text for notify::parse_config (empty: none).
    // Relative file names in it are already resolved against the config's
    // directory, and the files it names were checked to be readable.
    std::string notify_json;
    std::vector<policy> policies;
    std::string source;  // the config file
    // Where some fields were written (line, column; 1-based), for messages about
    // them after loading: "apigee.caFile", "apigee.auth.env", ...
    std::map<std::string, std::pair<int, int>> positions;
};

struct diagnostic {
    enum class severity { error, warning };
    severity level = severity::error;
    std::string file;
    int line = 0;       // 1-based; 0 when unknown
    int column = 0;     // 1-based; 0 when unknown
    std::string field;  // dotted path: "rotation.overlap"
    std::string message;
};

// "file:line:column: error: field: message". ":line:column" is left out when
// the line is unknown (0), "field: " when the field is empty.
std::string to_string(const diagnostic& d);

// True when any diagnostic is an error (not just a warning).
bool has_errors(const std::vector<diagnostic>& ds);

struct load_result {
    std::optional<config> cfg;  // set only when there is no error (warnings allowed)
    std::vector<diagnostic> diagnostics;
    bool ok() const { return cfg.has_value(); }
};

// Loads the config file and the policies it points to (a file or a directory
// of *.yaml / *.yml / *.json, read in name order). A relative `policies`,
// `stateDir`, `apigee.caFile` or `apigee.auth.path` is resolved against the
// config file's directory. Every file the config names (caFile, the token file,
// a service-account key file) must exist and be readable: an error otherwise.
load_result load_config(const std::filesystem::path& file);

// The environment variables the auth method reads (token-env: env; basic:
// userEnv, passwordEnv) that are unset or empty in this process: one
// diagnostic each, naming the field. An error for every command that calls
// Apigee; `validate` shows them as warnings (the variable may be set only where
// keyrotd runs). Files the config names are checked by load_config itself.
std::vector<diagnostic> missing_credentials(const config& c);

// Loads only policies (a file or directory); for tests and tools.
struct policies_result {
    std::vector<policy> policies;
    std::vector<diagnostic> diagnostics;
};
policies_result load_policies(const std::filesystem::path& path);

// Shell-style glob: '*' any run, '?' one char, '[abc]' / '[a-z]' / '[!a]' sets
// ('[^a]' too), '\\' escapes the next char. Case-sensitive, whole-string match.
bool glob_match(std::string_view pattern, std::string_view text);
// The same, ignoring ASCII case: use it for developer emails (match.developers
// and match.exclude.developers), since Apigee stores emails as typed.
bool glob_match_icase(std::string_view pattern, std::string_view text);
// true when the glob is well-formed (balanced brackets, non-empty).
bool glob_valid(std::string_view pattern);
// Why a glob is malformed ("unclosed '[' at position 3"); nullopt when valid.
std::optional<std::string> glob_error(std::string_view pattern);

// Every field the loader accepts, as dotted paths ("apigee.auth.method",
// "rotation.window.days"); maps with free-form keys (match.attributes) are
// listed as the map itself. Used to keep policies/*.schema.json in step.
const std::vector<std::string>& config_fields();
const std::vector<std::string>& policy_fields();

// What the Apigee flavor cannot do with these policies, one error each, naming
// the policy's file and the field (load_config calls it with the config's
// flavor, load_policies with "x"): team apps with method generate (neither X's
// AppGroups nor Edge's companies have a generate-key call); on Edge, method
// import only with keyLifetime: never (keys/create takes no expiry).
std::vector<diagnostic> flavor_refusals(const std::string& flavor,
                                        const std::vector<policy>& policies);

}  // namespace keyrot::policy
