// Builders for planner tests: apps and keys as plain values, a fixed `now`.
#pragma once

#include <string>
#include <vector>

#include "common/model.hpp"
#include "policy/config.hpp"
#include "unit/print_time.hpp"

namespace keyrot::testing {

inline constexpr sys_ms T0{milliseconds{1'800'000'000'000}};  // 2027-01-15, a Friday

inline credential key(std::string fp, sys_ms issued, time_or_never expires,
                      approval status = approval::approved,
                      std::vector<product_grant> products = {{"payments", approval::approved}}) {
    credential c;
    c.fingerprint = std::move(fp);
    c.consumer_key = secret("ck-" + c.fingerprint);
    c.issued_at = issued;
    c.expires_at = expires;
    c.status = status;
    c.products = std::move(products);
    c.attributes = {{"env", "prod"}};
    c.scopes = {"read"};
    return c;
}

inline credential successor(std::string fp, const std::string& parent, bool pending, sys_ms issued,
                            time_or_never expires, approval status = approval::approved) {
    credential c = key(std::move(fp), issued, expires, status);
    c.attributes.push_back({k_marker_attribute, (pending ? "pending:" : "") + parent});
    if (pending) c.products.clear();
    return c;
}

inline app make_app(std::vector<credential> creds) {
    app a;
    a.organization = "acme";
    a.developer_email = "dev@partner.example.com";
    a.name = "shop";
    a.attributes = {{"DisplayName", "Shop"}, {"Notes", "keep me"}};
    a.callback_url = "https://shop.example.com/cb";
    a.credentials = std::move(creds);
    return a;
}

inline policy::policy make_policy() {
    policy::policy p;
    p.name = "partners";
    p.organization = "acme";
    p.rotation.key_lifetime = 90 * k_day;
    p.rotation.rotate_before = 14 * k_day;
    p.rotation.overlap = 7 * k_day;
    return p;
}

}  // namespace keyrot::testing
