#include "notify/event.hpp"

#include <openssl/sha.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace keyrot::notify {
namespace {

struct type_name {
    event_type type;
    std::string_view name;
};
constexpr std::array<type_name, 6> k_types = {{
    {event_type::key_expiring, "key.expiring"},
    {event_type::key_rotated, "key.rotated"},
    {event_type::key_revoked, "key.revoked"},
    {event_type::key_deleted, "key.deleted"},
    {event_type::rotation_failed, "rotation.failed"},
    {event_type::app_stranded, "app.stranded"},
}};

error refuse(std::string message) {
    error e;
    e.what = error::kind::config;
    e.message = "event refused: " + std::move(message);
    return e;
}

std::string time_text(time_or_never ts) {
    return ts.is_never() ? "never" : format_time_ms(ts.at());
}

}  // namespace

std::string_view to_string(event_type t) {
    for (const auto& tn : k_types)
        if (tn.type == t) return tn.name;
    return "unknown";
}

std::optional<event_type> parse_event_type(std::string_view name) {
    for (const auto& tn : k_types)
        if (tn.name == name) return tn.type;
    return std::nullopt;
}

const std::vector<std::string_view>& event_type_names() {
    static const std::vector<std::string_view> names = [] {
        std::vector<std::string_view> v;
        v.reserve(std::size(k_types));
        for (const auto& tn : k_types) v.push_back(tn.name);
        return v;
    }();
    return names;
}

bool is_fingerprint_or_empty(std::string_view s) {
    if (s.empty()) return true;
    if (s.size() != 16) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string event_id(std::string_view organization, std::string_view owner, std::string_view app,
                     std::string_view key, event_type type, std::optional<milliseconds> lead_time) {
    // Length-prefixed fields: no choice of names can make two tuples collide.
    const std::string lead = lead_time ? std::to_string(lead_time->count()) : std::string();
    std::string material;
    for (std::string_view part :
         {organization, owner, app, key, to_string(type), std::string_view(lead)}) {
        material += std::to_string(part.size());
        material += ':';
        material += part;
        material += ';';
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), md);
    static constexpr char hex[] = "0123456789abcdef";
    std::string id = "evt_";
    for (int i = 0; i < 16; ++i) {
        id += hex[md[i] >> 4];
        id += hex[md[i] & 0xf];
    }
    return id;
}

result<event> make_event(event_fields f) {
    if (!is_fingerprint_or_empty(f.key)) return refuse("key is not a fingerprint");
    if (!is_fingerprint_or_empty(f.replaces)) return refuse("replaces is not a fingerprint");
    if (f.organization.empty()) return refuse("no organization");
    if (f.app.empty()) return refuse("no app");
    if (f.developer.empty() == f.team.empty())
        return refuse("exactly one of developer and team must be set");
    if (f.type == event_type::key_expiring && (!f.lead_time || *f.lead_time < milliseconds(0)))
        return refuse("key.expiring needs a lead time");
    if (f.type != event_type::key_expiring) f.lead_time.reset();

    event e;
    // A team's name is marked so that it cannot meet a developer of the same name.
    e.id = event_id(f.organization, f.developer.empty() ? "team:" + f.team : f.developer, f.app,
                    f.key, f.type, f.lead_time);

    nlohmann::ordered_json data;
    data["id"] = e.id;
    data["organization"] = f.organization;
    if (!f.developer.empty()) data["developer"] = f.developer;
    if (!f.developer.empty() && !f.developer_status.empty())
        data["developerStatus"] = f.developer_status;
    if (!f.team.empty()) data["team"] = f.team;
    data["app"] = f.app;
    if (!f.policy.empty()) data["policy"] = f.policy;
    if (!f.key.empty()) data["key"] = f.key;
    if (!f.replaces.empty()) data["replaces"] = f.replaces;
    if (f.expires_at) data["expiresAt"] = time_text(*f.expires_at);
    if (f.revokes_at) data["replacesRevokedAt"] = format_time_ms(*f.revokes_at);
    if (f.lead_time) data["leadTime"] = format_duration(*f.lead_time);
    if (!f.reason.empty()) data["reason"] = f.reason;

    nlohmann::ordered_json j;
    j["type"] = to_string(f.type);
    j["timestamp"] = format_time_ms(f.occurred_at);
    j["data"] = std::move(data);
    // Invalid UTF-8 in a name becomes U+FFFD instead of throwing.
    e.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    e.f = std::move(f);
    return e;
}

}  // namespace keyrot::notify
