#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "obs/audit.hpp"
#include "obs/log.hpp"
#include "temp_dir.hpp"

namespace obs_audit_test {

namespace fs = std::filesystem;
using keyrot::exec::action_record;
using keyrot::obs::audit_log;

namespace {

using keyrot::testing::temp_dir;

action_record sample() {
    action_record r;
    r.ts = keyrot::as_sys_ms(1795608000123);  // 2026-11-25T12:00:00.123Z
    r.organization = "acme-prod";
    r.developer = "dev@partner.example.com";
    r.app = "billing \"v2\"\nnext";
    r.policy = "partners-90d";
    r.action = keyrot::exec::audit_action::created;
    r.key = "0123456789abcdef";
    r.replaces = "fedcba9876543210";
    r.detail = "expires 2026-12-01T00:00:00Z, within rotateBefore 14d";
    return r;
}

std::vector<std::string> lines_of(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

}  // namespace

TEST(obs_audit, rfc3339_with_milliseconds) {
    EXPECT_EQ(keyrot::format_time_ms(keyrot::as_sys_ms(1795608000123)), "2026-11-25T12:00:00.123Z");
    EXPECT_EQ(keyrot::format_time_ms(keyrot::as_sys_ms(0)), "1970-01-01T00:00:00.000Z");
}

TEST(obs_audit, writes_one_object_a_line_with_exactly_the_fields) {
    temp_dir dir;
    const fs::path state = dir.path / "state" / "nested";
    audit_log log(state);
    EXPECT_EQ((fs::status(state).permissions() & fs::perms::all), fs::perms::owner_all);

    action_record a = sample();
    action_record b = sample();
    b.action = keyrot::exec::audit_action::revoked;
    b.key = "fedcba9876543210";
    b.replaces.clear();
    b.dry_run = true;
    b.late = false;
    action_record c = sample();
    c.late = true;
    ASSERT_TRUE(log.write(a));
    ASSERT_TRUE(log.write(b));
    ASSERT_TRUE(log.write(c));

    struct stat st {};
    ASSERT_EQ(::stat(log.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto lines = lines_of(log.path());
    ASSERT_EQ(lines.size(), 3u);
    auto j = nlohmann::json::parse(lines[0]);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<std::string>{"action", "app", "detail", "developer", "dryRun",
                                              "key", "organization", "policy", "replaces", "ts"}));
    EXPECT_EQ(j["ts"], "2026-11-25T12:00:00.123Z");
    EXPECT_EQ(j["organization"], "acme-prod");
    EXPECT_EQ(j["developer"], "dev@partner.example.com");
    EXPECT_EQ(j["app"], "billing \"v2\"\nnext");
    EXPECT_EQ(j["policy"], "partners-90d");
    EXPECT_EQ(j["action"], "created");
    EXPECT_EQ(j["key"], "0123456789abcdef");
    EXPECT_EQ(j["replaces"], "fedcba9876543210");
    EXPECT_EQ(j["dryRun"], false);
    EXPECT_FALSE(j.contains("late"));

    auto jb = nlohmann::json::parse(lines[1]);
    EXPECT_EQ(jb["action"], "revoked");
    EXPECT_EQ(jb["replaces"], "");
    EXPECT_EQ(jb["dryRun"], true);
    EXPECT_FALSE(jb.contains("late"));
    auto jc = nlohmann::json::parse(lines[2]);
    EXPECT_EQ(jc["late"], true);
    EXPECT_EQ(jc.size(), 11u);
}

TEST(obs_audit, appends_across_reopen_and_restart) {
    temp_dir dir;
    {
        audit_log log(dir.path);
        ASSERT_TRUE(log.write(sample()));
        ASSERT_TRUE(log.reopen());
        ASSERT_TRUE(log.write(sample()));
    }
    audit_log again(dir.path);
    ASSERT_TRUE(again.write(sample()));
    EXPECT_EQ(lines_of(again.path()).size(), 3u);
}

TEST(obs_audit, refuses_anything_but_a_fingerprint) {
    temp_dir dir;
    audit_log log(dir.path);
    auto r = sample();
    r.key = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";  // what a raw consumer key looks like
    EXPECT_FALSE(log.write(r));
    r = sample();
    r.key = "0123456789ABCDEF";  // upper case: not ours
    EXPECT_FALSE(log.write(r));
    r = sample();
    r.replaces = "0123456789abcde";  // 15 digits
    EXPECT_FALSE(log.write(r));
    // An action not in the contract cannot be written (an enum) nor read back.
    EXPECT_FALSE(keyrot::exec::parse_audit_action("rotated"));
    EXPECT_EQ(keyrot::exec::parse_audit_action("revoked"), keyrot::exec::audit_action::revoked);
    r = sample();
    r.key.clear();
    r.replaces.clear();
    r.action = keyrot::exec::audit_action::failed;
    EXPECT_TRUE(log.write(r));
    auto lines = lines_of(log.path());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].find("AbCdEf"), std::string::npos);
}

TEST(obs_audit, returns_false_when_the_disk_is_full) {
    if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
    temp_dir dir;
    fs::create_symlink("/dev/full", dir.path / "audit.jsonl");
    audit_log log(dir.path);
    EXPECT_FALSE(log.write(sample()));
}

TEST(obs_audit, cannot_open_throws_at_start_up) {
    // /proc refuses new directories, even for root.
    EXPECT_THROW(audit_log("/proc/keyrotd-obs-test/state"), std::runtime_error);
    temp_dir dir;
    fs::create_directory(dir.path / "audit.jsonl");  // a directory where the file should be
    EXPECT_THROW(audit_log{dir.path}, std::runtime_error);
}

TEST(obs_audit, fingerprint_check) {
    EXPECT_TRUE(keyrot::obs::is_fingerprint_or_empty(""));
    EXPECT_TRUE(keyrot::obs::is_fingerprint_or_empty("0123456789abcdef"));
    EXPECT_FALSE(keyrot::obs::is_fingerprint_or_empty("0123456789abcdeg"));
    EXPECT_FALSE(keyrot::obs::is_fingerprint_or_empty("pending:0123456789abcdef"));
}

}  // namespace obs_audit_test
