// Logging setup for spdlog, and structured events.
//
// Two formats, both one line per event on stderr:
//   text: 2026-11-25T12:00:00.123Z info  rotated key organization=acme app="my app"
//   json: {"time":"2026-11-25T12:00:00.123Z","severity":"INFO","message":"rotated key",
//          "organization":"acme","app":"my app"}
// The json format is what Google Cloud Logging reads from a container's output
// (severity DEBUG/INFO/WARNING/ERROR/CRITICAL). Every line is built with
// nlohmann_json, so quotes, newlines and control characters are escaped.
//
// Fields travel beside the message (log_event) rather than inside it: text mode
// renders them as key=value (quoted when they hold spaces, quotes or control
// characters), json mode as separate members. Plain spdlog::info("...") calls
// work too; they just have no fields. The logger must stay synchronous: fields
// are handed to the formatter through a thread-local for the duration of the call.
#pragma once

#include <spdlog/spdlog.h>

#include <concepts>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/duration.hpp"

namespace keyrot::obs {

enum class log_format { text, json };

// "text" | "json"; nullopt-like: throws std::invalid_argument on anything else.
log_format parse_log_format(std::string_view format);
// "trace" | "debug" | "info" | "warn" | "warning" | "error" | "critical" | "off";
// throws std::invalid_argument otherwise.
spdlog::level::level_enum parse_log_level(std::string_view level);

// Installs the default logger "keyrotd" writing to stderr (or to `sink`, for tests).
// Throws std::invalid_argument for an unknown level or format (start-up).
void setup_logging(const std::string& level, const std::string& format,
                   spdlog::sink_ptr sink = nullptr);

// The formatter setup_logging installs; exposed for tests and for extra sinks.
std::unique_ptr<spdlog::formatter> make_formatter(log_format format);

// One field of an event. Built from a string, it is a string; built from an
// integer or a double, a number: json mode writes it as a JSON number, text
// mode the same digits.
struct field {
    std::string_view key;
    std::string value;
    bool number = false;

    field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const char* v) : key(k), value(v) {}
    template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char>) field(std::string_view k, I n)
        : key(k), value(std::to_string(n)), number(true) {}
    field(std::string_view k, double seconds);  // 3 decimals; non-finite: a string
};

// Logs `message` with structured fields on the default logger. Never throws.
void log_event(spdlog::level::level_enum level, std::string_view message,
               std::initializer_list<field> fields);
void log_event(spdlog::level::level_enum level, std::string_view message,
               std::span<const field> fields);

// The same on a given logger (tests).
void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
               std::span<const field> fields);

// Google Cloud Logging's name for a level: DEBUG, INFO, WARNING, ERROR, CRITICAL.
const char* severity_name(spdlog::level::level_enum level);

}  // namespace keyrot::obs
