// Plain values the Apigee API takes and returns beyond common/model.hpp. No
// Asio here, so the JSON mapping (and its fuzzer, built with clang) can use them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/duration.hpp"
#include "common/model.hpp"
#include "common/secret.hpp"

namespace keyrot::apigee {

struct app_page {
    std::vector<app> apps;
    std::string next_page_token;   // "" at the end
    std::int64_t total_size = -1;  // `totalSize` when the page says it, else -1
};

// Who owns an app: a developer (by e-mail) or a team (an Apigee X AppGroup).
// The calls on a team app's keys take other paths and, for updates and
// approve/revoke, other bodies (docs/apigee-api.md).
struct app_owner {
    std::string developer;  // e-mail, for a developer app
    std::string team;       // AppGroup name, for a team app

    app_owner() = default;
    // An e-mail address is a developer app's owner (most call sites name one).
    app_owner(std::string developer_email) : developer(std::move(developer_email)) {}
    app_owner(const char* developer_email) : developer(developer_email) {}
    static app_owner of_team(std::string name) {
        app_owner o;
        o.team = std::move(name);
        return o;
    }
    static app_owner of(const app& a) {
        return a.app_group.empty() ? app_owner(a.developer_email) : of_team(a.app_group);
    }
    static app_owner developer_app(std::string email) { return app_owner(std::move(email)); }
    bool is_team() const { return !team.empty(); }
};

struct new_key {
    secret consumer_key;
    secret consumer_secret;
    std::optional<std::chrono::seconds> expires_in;  // empty: never (Apigee's -1)
    std::vector<attribute> attributes;
    // No scopes: Apigee may refuse scopes on a key that has no product yet
    // (docs/apigee-fidelity.md); they are set after the products.
};

}  // namespace keyrot::apigee
