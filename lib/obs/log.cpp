#include "obs/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace keyrot::obs {

namespace {

// Fields of the event being logged on this thread; see the header's contract.
thread_local std::span<const field> t_fields;

struct fields_scope {
    explicit fields_scope(std::span<const field> f) { t_fields = f; }
    ~fields_scope() { t_fields = {}; }
    fields_scope(const fields_scope&) = delete;
    fields_scope& operator=(const fields_scope&) = delete;
};

const char* text_level(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
            return "trace";
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warn";
        case spdlog::level::err:
            return "error";
        case spdlog::level::critical:
            return "crit";
        default:
            return "off";
    }
}

std::string json_string(std::string_view s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
    return false;
}

// Text mode keeps one event on one line: control characters are escaped.
void append_escaped(std::string_view s, spdlog::memory_buf_t& dest) {
    for (unsigned char c : s) {
        if (c == '\n') {
            dest.append(std::string_view("\\n"));
        } else if (c == '\r') {
            dest.append(std::string_view("\\r"));
        } else if (c == '\t') {
            dest.append(std::string_view("\\t"));
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            dest.append(std::string_view(buf));
        } else {
            dest.push_back(static_cast<char>(c));
        }
    }
}

void append(spdlog::memory_buf_t& dest, std::string_view s) {
    dest.append(s.data(), s.data() + s.size());
}

sys_ms to_sys_ms(spdlog::log_clock::time_point t) {
    return std::chrono::time_point_cast<milliseconds>(t);
}

class line_formatter final : public spdlog::formatter {
  public:
    explicit line_formatter(log_format f) : format_(f) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const std::string_view message(msg.payload.data(), msg.payload.size());
        if (format_ == log_format::json) {
            nlohmann::ordered_json j;
            j["time"] = format_time_ms(to_sys_ms(msg.time));
            j["severity"] = severity_name(msg.level);
            j["message"] = message;
            for (const auto& f : t_fields) {
                std::string key(f.key);
                // The three members Cloud Logging interprets are never overwritten.
                if (key == "time" || key == "severity" || key == "message") key = "field_" + key;
                if (f.number)
                    j[key] = nlohmann::ordered_json::parse(f.value, nullptr, false);
                else
                    j[key] = f.value;
            }
            append(dest, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else {
            append(dest, format_time_ms(to_sys_ms(msg.time)));
            dest.push_back(' ');
            std::string_view lvl = text_level(msg.level);
            append(dest, lvl);
            for (std::size_t i = lvl.size(); i < 6; ++i) dest.push_back(' ');
            append_escaped(message, dest);
            for (const auto& f : t_fields) {
                dest.push_back(' ');
                append_escaped(f.key, dest);
                dest.push_back('=');
                if (needs_quotes(f.value))
                    append(dest, json_string(f.value));
                else
                    append(dest, f.value);
            }
        }
        dest.push_back('\n');
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<line_formatter>(format_);
    }

  private:
    log_format format_;
};

}  // namespace

field::field(std::string_view k, double seconds) : key(k) {
    if (std::isfinite(seconds)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3f", seconds);
        value = buf;
        number = true;
    } else {
        value = std::isnan(seconds) ? "nan" : (seconds > 0 ? "inf" : "-inf");
    }
}

const char* severity_name(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return "DEBUG";
        case spdlog::level::info:
            return "INFO";
        case spdlog::level::warn:
            return "WARNING";
        case spdlog::level::err:
            return "ERROR";
        case spdlog::level::critical:
            return "CRITICAL";
        default:
            return "DEFAULT";
    }
}

log_format parse_log_format(std::string_view format) {
    if (format == "text") return log_format::text;
    if (format == "json") return log_format::json;
    throw std::invalid_argument("log format must be text or json, not \"" + std::string(format) +
                                "\"");
}

spdlog::level::level_enum parse_log_level(std::string_view level) {
    if (level == "trace") return spdlog::level::trace;
    if (level == "debug") return spdlog::level::debug;
    if (level == "info") return spdlog::level::info;
    if (level == "warn" || level == "warning") return spdlog::level::warn;
    if (level == "error") return spdlog::level::err;
    if (level == "critical") return spdlog::level::critical;
    if (level == "off") return spdlog::level::off;
    throw std::invalid_argument(
        "log level must be trace, debug, info, warn, error, critical or off, not \"" +
        std::string(level) + "\"");
}

std::unique_ptr<spdlog::formatter> make_formatter(log_format format) {
    return std::make_unique<line_formatter>(format);
}

void setup_logging(const std::string& level, const std::string& format, spdlog::sink_ptr sink) {
    const auto lvl = parse_log_level(level);
    const auto fmt = parse_log_format(format);
    if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("keyrotd", std::move(sink));
    logger->set_formatter(make_formatter(fmt));
    logger->set_level(lvl);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
               std::span<const field> fields) {
    if (!logger.should_log(level)) return;
    try {
        fields_scope scope(fields);
        logger.log(level, spdlog::string_view_t(message.data(), message.size()));
    } catch (...) {
        // Logging must never take an action down with it.
    }
}

void log_event(spdlog::level::level_enum level, std::string_view message,
               std::span<const field> fields) {
    if (auto* logger = spdlog::default_logger_raw()) log_event(*logger, level, message, fields);
}

void log_event(spdlog::level::level_enum level, std::string_view message,
               std::initializer_list<field> fields) {
    log_event(level, message, std::span<const field>(fields.begin(), fields.size()));
}

}  // namespace keyrot::obs
