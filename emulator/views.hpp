// Internal: the JSON the API answers with for each resource, in Google's
// mapping (int64 as strings; empty lists and empty strings left out).
#pragma once

#include <string>
#include <vector>

#include "state.hpp"
#include "util.hpp"

namespace keyrot::emulator {

json attrs_json(const std::vector<attribute>& attrs);
// A time (ms): a JSON string (Google's int64 mapping) or, in the Edge flavor, a number.
json time_json(millis v);
// Google's JSON mapping leaves out empty repeated fields and empty strings.
void put_list(json& j, const char* name, const std::vector<std::string>& v);
void put_str(json& j, const char* name, const std::string& v);
void put_attrs(json& j, const std::vector<attribute>& attrs);

json credential_json(const credential& c);
json developer_json(const organization& org, const developer& d);
// `creds`: with the credentials, those of `key_status` only when given
// ("all": every one); `with_email`: with developerEmail (org-wide calls).
json app_json(const organization& org, const app_key& k, const developer_app& a, bool creds,
              const std::string* key_status, bool with_email);
json product_json(const api_product& p);
// An AppGroup as GET /appgroups/G answers it.
json app_group_json(const organization& org, const app_group& g);
// An Edge company (the same record as an AppGroup) as GET /companies/C answers it.
json company_json(const organization& org, const app_group& g);

}  // namespace keyrot::emulator
