#include "util.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>

#include "common/codec.hpp"
#include "common/text.hpp"

namespace keyrot::emulator {

bool& edge_json() {
    thread_local bool edge = false;
    return edge;
}

[[noreturn]] void fail(int code, std::string message, const char* edge_code) {
    static const std::map<int, std::string> names = {
        {400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"},    {403, "PERMISSION_DENIED"},
        {404, "NOT_FOUND"},        {405, "METHOD_NOT_ALLOWED"}, {409, "ALREADY_EXISTS"},
        {413, "INVALID_ARGUMENT"}, {429, "RESOURCE_EXHAUSTED"}, {500, "INTERNAL"},
        {503, "UNAVAILABLE"}};
    auto it = names.find(code);
    throw api_error{code, it == names.end() ? "UNKNOWN" : it->second, std::move(message),
                    edge_code ? edge_code : ""};
}

namespace {

// The Edge error code of a status when the call names none (indicative:
// clients decide by the HTTP status).
std::string edge_code_of(int code) {
    switch (code) {
        case 400:
            return "keymanagement.service.invalid_request";
        case 401:
            return "security.Unauthorized";
        case 403:
            return "security.Forbidden";
        case 404:
            return "messaging.adaptors.http.flow.ResourceNotFound";
        case 405:
            return "messaging.adaptors.http.flow.MethodNotAllowed";
        case 409:
            return "keymanagement.service.already_exists";
        case 413:
            return "messaging.adaptors.http.flow.RequestTooLarge";
        case 429:
            return "messaging.adaptors.http.flow.TooManyRequests";
        case 503:
            return "messaging.adaptors.http.flow.ServiceUnavailable";
        default:
            return "messaging.runtime.InternalError";
    }
}

}  // namespace

response error_response(int code, const std::string& status, const std::string& message,
                        const std::string& edge_code) {
    response r;
    r.status = code;
    if (edge_json()) {
        // Edge: {"code": "…", "message": "…", "contexts": []}.
        json j = json::object();
        j["code"] = edge_code.empty() ? edge_code_of(code) : edge_code;
        j["message"] = message;
        j["contexts"] = json::array();
        r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
        return r;
    }
    // Paths may decode to invalid UTF-8: replace it rather than throw.
    r.body = json{{"error", {{"code", code}, {"message", message}, {"status", status}}}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
    return r;
}

response json_response(const json& j, int status) {
    response r;
    r.status = status;
    r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
    return r;
}

response no_content() {
    response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

std::string to_hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out.push_back(d[c >> 4]);
        out.push_back(d[c & 15]);
    }
    return out;
}

std::optional<std::string> from_hex(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        auto v = keyrot::percent_decode(std::string("%") + s[i] + s[i + 1], false);
        if (!v) return std::nullopt;
        out += *v;
    }
    return out;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    std::size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (s.size() == 1) return std::nullopt;
    }
    std::int64_t v = 0;
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
        v = v * 10 + (s[i] - '0');
    }
    return neg ? -v : v;
}

std::optional<std::int64_t> json_int64(const json& j) {
    if (j.is_number_integer()) return j.get<std::int64_t>();
    if (j.is_number_float()) return static_cast<std::int64_t>(j.get<double>());
    if (j.is_string()) return parse_int(j.get_ref<const std::string&>());
    return std::nullopt;
}

const json* field(const json& body, const char* name) {
    if (!body.is_object()) return nullptr;
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string string_field(const json& body, const char* name, const std::string& dflt) {
    const json* f = field(body, name);
    if (!f) return dflt;
    if (!f->is_string()) fail(400, std::string("field ") + name + " must be a string");
    return f->get<std::string>();
}

std::vector<attribute> parse_attributes(const json& j, const char* what) {
    if (!j.is_array()) fail(400, std::string(what) + " attributes must be a list");
    if (j.size() > k_max_attributes)
        fail(400, std::string(what) + " attributes: at most 18 custom attributes are allowed");
    std::vector<attribute> out;
    for (const auto& a : j) {
        if (!a.is_object()) fail(400, "an attribute must be an object {name, value}");
        attribute at;
        const json* n = field(a, "name");
        if (!n || !n->is_string() || n->get_ref<const std::string&>().empty())
            fail(400, "an attribute needs a non-empty string name");
        at.name = n->get<std::string>();
        const json* v = field(a, "value");
        if (v) at.value = v->is_string() ? v->get<std::string>() : v->dump();
        if (at.name.size() > k_max_attr_name) fail(400, "attribute name longer than 1 KB");
        if (at.value.size() > k_max_attr_value) fail(400, "attribute value longer than 2 KB");
        out.push_back(std::move(at));
    }
    return out;
}

std::vector<std::string> parse_string_list(const json& j, const char* what) {
    if (!j.is_array()) fail(400, std::string(what) + " must be a list of strings");
    std::vector<std::string> out;
    for (const auto& s : j) {
        if (!s.is_string()) fail(400, std::string(what) + " must be a list of strings");
        out.push_back(s.get<std::string>());
    }
    return out;
}

bool valid_key_chars(const std::string& k) {
    if (k.empty() || k.size() > k_max_key_size) return false;
    return std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

bool valid_email(const std::string& e) {
    auto at = e.find('@');
    if (at == std::string::npos || at == 0 || e.find('@', at + 1) != std::string::npos)
        return false;
    auto dot = e.find('.', at);
    if (dot == std::string::npos || dot == at + 1 || e.back() == '.') return false;
    return std::none_of(e.begin(), e.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\\' ||
               static_cast<unsigned char>(c) < 0x20;
    });
}

std::string random_string(std::mt19937_64& rng, std::size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<int> d(0, 61);
    std::string s(n, 'x');
    for (auto& c : s) c = alphabet[d(rng)];
    return s;
}

std::string uuid(std::mt19937_64& rng) {
    static const char* hexd = "0123456789abcdef";
    std::uniform_int_distribution<int> d(0, 15);
    std::string s = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
    for (auto& c : s) {
        if (c == 'x') c = hexd[d(rng)];
        if (c == 'y') c = hexd[8 + d(rng) % 4];
    }
    return s;
}

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace keyrot::emulator
