// libFuzzer target for the Apigee JSON mapping (apigee/json.hpp). Every parser
// must return a value or a protocol error, never crash or throw; an app that
// parses must survive a round trip through the generate-key body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "apigee/json.hpp"

using namespace keyrot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto a = apigee::parse_app(in, "org");
    (void)apigee::parse_credential(in);
    (void)apigee::parse_developers(in);
    auto page = apigee::parse_app_page(in, "org");
    apigee::google_error g;
    (void)apigee::parse_google_error(in, g);
    if (a) {
        for (const auto& c : a->credentials)
            if (!c.consumer_key.empty() && c.fingerprint.size() != 16) std::abort();
        auto again = apigee::parse_app(apigee::generate_key_body(*a), "org");
        if (!again) std::abort();
        // Attribute names and values survive unless they held invalid UTF-8 (replaced).
        if (again->attributes.size() != a->attributes.size()) std::abort();
        if (again->name != a->name && again->name.find("\xEF\xBF\xBD") == std::string::npos)
            std::abort();
        (void)apigee::update_app_body(*a);
    }
    if (page) {
        for (const auto& app : page->apps) (void)apigee::generate_key_body(app);
    }
    return 0;
}
