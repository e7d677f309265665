// Internal: the /v1 route table (method + path pattern -> handler) and its
// matcher. A pattern is the route's name in GET /__emulator/requests, e.g.
// "/v1/organizations/{org}/developers/{developer}/apps/{app}"; a {placeholder}
// matches any one segment.
#pragma once

#include <string>
#include <vector>

#include "api.hpp"

namespace keyrot::emulator {

struct route_match {
    handler fn = nullptr;  // null: no route (404) or wrong method (405)
    std::string templ;     // "GET /v1/organizations/{org}/apps", "GET (unmatched)"
    bool wrong_method = false;
    std::string allow;  // the methods of the path, for 405's Allow header
};

// `seg`: decoded path segments after "v1"; `has_action`: ?action= is present
// (its routes are counted apart: "POST …/keys/{key}?action"); `edge`: the
// Edge flavor's table (its own paths: companies, keys/create only, …).
route_match match_route(const std::string& method, const std::vector<std::string>& seg,
                        bool has_action, bool edge = false);

}  // namespace keyrot::emulator
