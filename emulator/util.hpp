// Internal: what every handler shares and that knows no resource: the error
// reply (fail() throws, emulator::handle() answers), JSON replies, percent and
// hex decoding, request-field parsing with Apigee's limits, and random ids.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.hpp"
#include "state.hpp"

namespace keyrot::emulator {

using json = nlohmann::json;

constexpr std::size_t k_max_attributes = 18;
constexpr std::size_t k_max_attr_name = 1024;
constexpr std::size_t k_max_attr_value = 2048;
constexpr std::size_t k_max_key_size = 2048;
constexpr std::size_t k_max_products_per_key = 50;

// An error reply. Thrown inside the request handler and turned into Google's
// error JSON by emulator::handle(); messages never carry key material.
struct api_error {
    int code;
    std::string status;
    std::string message;
    std::string edge_code;  // the Edge flavor's error "code" ("" = by HTTP status)
};

// `edge_code`: the error code the Edge flavor answers with (e.g.
// "developer.service.DeveloperDoesNotExist"); null = one chosen by status.
[[noreturn]] void fail(int code, std::string message, const char* edge_code = nullptr);

// Whether the call being answered is the Edge flavor's: Edge JSON (numbers for
// times, empty lists shown) and Edge error bodies {code, message, contexts}.
// Set by emulator::handle() for the call it runs (one thread per emulator).
bool& edge_json();

response error_response(int code, const std::string& status, const std::string& message,
                        const std::string& edge_code = {});
response json_response(const json& j, int status = 200);
response no_content();

std::string to_hex(std::string_view s);
std::optional<std::string> from_hex(std::string_view s);
std::optional<std::int64_t> parse_int(std::string_view s);
// int64 fields arrive as JSON strings (Google) or numbers (Edge, people).
std::optional<std::int64_t> json_int64(const json& j);

// A member of an object body, or nullptr when absent or null.
const json* field(const json& body, const char* name);
std::string string_field(const json& body, const char* name, const std::string& dflt = {});
std::vector<attribute> parse_attributes(const json& j, const char* what);
std::vector<std::string> parse_string_list(const json& j, const char* what);
bool valid_key_chars(const std::string& k);
bool valid_email(const std::string& e);

std::string random_string(std::mt19937_64& rng, std::size_t n);
std::string uuid(std::mt19937_64& rng);
std::int64_t wall_ms();  // the real clock (tokens, rate, write spans), not the emulator's

}  // namespace keyrot::emulator
