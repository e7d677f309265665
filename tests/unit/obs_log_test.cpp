#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "obs/log.hpp"

namespace obs_log_test {

using keyrot::obs::field;
using keyrot::obs::log_event;
using keyrot::obs::log_format;

namespace {

struct capture {
    std::ostringstream out;
    std::shared_ptr<spdlog::logger> logger;
    explicit capture(log_format f) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
        logger = std::make_shared<spdlog::logger>("test", sink);
        logger->set_formatter(keyrot::obs::make_formatter(f));
        logger->set_level(spdlog::level::trace);
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> v;
        std::istringstream in(out.str());
        for (std::string l; std::getline(in, l);) v.push_back(l);
        return v;
    }
};

}  // namespace

TEST(obs_log, json_lines_are_escaped_and_have_severity) {
    capture c(log_format::json);
    std::vector<field> fields = {
        {"organization", "acme"}, {"app", "say \"hi\"\nnow"}, {"message", "not the real message"}};
    log_event(*c.logger, spdlog::level::warn, "quote \" backslash \\ newline \n tab \t {}", fields);
    c.logger->error("plain {}", 42);
    c.logger->critical("bad utf-8 \xff\xfe");
    c.logger->debug("dbg");
    c.logger->info("inf");
    auto lines = c.lines();
    ASSERT_EQ(lines.size(), 5u);
    auto j = nlohmann::json::parse(lines[0]);
    EXPECT_EQ(j["severity"], "WARNING");
    EXPECT_EQ(j["message"], "quote \" backslash \\ newline \n tab \t {}");
    EXPECT_EQ(j["organization"], "acme");
    EXPECT_EQ(j["app"], "say \"hi\"\nnow");
    EXPECT_EQ(j["field_message"], "not the real message");
    ASSERT_TRUE(j["time"].is_string());
    const std::string t = j["time"];
    EXPECT_EQ(t.size(), 24u);
    EXPECT_EQ(t.back(), 'Z');
    EXPECT_EQ(t[10], 'T');
    EXPECT_EQ(nlohmann::json::parse(lines[1])["severity"], "ERROR");
    EXPECT_EQ(nlohmann::json::parse(lines[1])["message"], "plain 42");
    EXPECT_EQ(nlohmann::json::parse(lines[2])["severity"], "CRITICAL");
    EXPECT_EQ(nlohmann::json::parse(lines[3])["severity"], "DEBUG");
    EXPECT_EQ(nlohmann::json::parse(lines[4])["severity"], "INFO");
    // Fields belong to one event only.
    EXPECT_FALSE(nlohmann::json::parse(lines[1]).contains("organization"));
}

TEST(obs_log, text_lines_are_key_value_on_one_line) {
    capture c(log_format::text);
    std::vector<field> fields = {
        {"organization", "acme"}, {"app", "my app"}, {"key", "0123456789abcdef"}, {"detail", ""}};
    log_event(*c.logger, spdlog::level::info, "created\nsecond line", fields);
    auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u);
    const std::string& l = lines[0];
    ASSERT_GT(l.size(), 25u);
    EXPECT_EQ(l[10], 'T');
    EXPECT_EQ(l.substr(23, 1), "Z");
    EXPECT_EQ(l.substr(24),
              " info  created\\nsecond line organization=acme app=\"my app\" "
              "key=0123456789abcdef detail=\"\"");
}

TEST(obs_log, default_logger_and_levels) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    keyrot::obs::setup_logging("warn", "json", sink);
    log_event(spdlog::level::info, "hidden", {{"a", "b"}});
    log_event(spdlog::level::err, "shown", {{"a", "b"}});
    spdlog::warn("also shown");
    auto text = out.str();
    EXPECT_EQ(text.find("hidden"), std::string::npos);
    std::istringstream in(text);
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["message"], "shown");
    EXPECT_EQ(j["a"], "b");
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(nlohmann::json::parse(line)["severity"], "WARNING");

    EXPECT_THROW(keyrot::obs::setup_logging("loud", "text"), std::invalid_argument);
    EXPECT_THROW(keyrot::obs::setup_logging("info", "xml"), std::invalid_argument);
    keyrot::obs::setup_logging("info", "text");  // back to stderr for the other tests
}

TEST(obs_log, numbers_are_json_numbers) {
    capture c(log_format::json);
    std::vector<field> fields = {
        {"apps_seen", 12},    {"seconds", 0.25},
        {"count_text", "12"}, {"big", std::size_t{1} << 40},
        {"negative", -3},     {"nan", std::numeric_limits<double>::quiet_NaN()}};
    log_event(*c.logger, spdlog::level::info, "pass done", fields);
    auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u);
    auto j = nlohmann::json::parse(lines[0]);
    EXPECT_TRUE(j["apps_seen"].is_number_integer()) << lines[0];
    EXPECT_EQ(j["apps_seen"], 12);
    EXPECT_TRUE(j["seconds"].is_number_float()) << lines[0];
    EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 0.25);
    EXPECT_TRUE(j["count_text"].is_string()) << lines[0];
    EXPECT_EQ(j["big"], std::int64_t{1} << 40);
    EXPECT_EQ(j["negative"], -3);
    EXPECT_EQ(j["nan"], "nan");  // not a JSON number: a string
}

TEST(obs_log, numbers_in_text_mode_are_plain) {
    capture c(log_format::text);
    std::vector<field> fields = {{"apps_seen", 12}, {"seconds", 1.5}};
    log_event(*c.logger, spdlog::level::info, "pass done", fields);
    auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("pass done apps_seen=12 seconds=1.500"), std::string::npos) << lines[0];
}

}  // namespace obs_log_test
