#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "policy/config.hpp"

namespace policy_test {

using namespace keyrot;
using namespace keyrot::policy;
namespace fs = std::filesystem;

namespace {

const fs::path k_fixtures = KEYROT_FIXTURES;
const fs::path k_policies = KEYROT_POLICIES_DIR;

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string dump(const std::vector<diagnostic>& ds) {
    std::string out;
    for (const auto& d : ds) out += to_string(d) + "\n";
    return out;
}

// A fresh directory per test for inline YAML.
class Loader : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("keyrot-policy-" + std::to_string(::getpid()) + "-" + info->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(dir_, ec);
    }
    fs::path write(const std::string& name, const std::string& text) {
        const fs::path p = dir_ / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p;
    }
    // Loads one policy file and returns the diagnostics.
    std::vector<diagnostic> policy_diags(const std::string& yaml) {
        return load_policies(write("p.yaml", yaml)).diagnostics;
    }
    // Loads a config (with a valid policy beside it) and returns the diagnostics.
    std::vector<diagnostic> config_diags(const std::string& yaml) {
        write("pol.yaml", "name: p\norganization: o\n");
        return load_config(write("c.yaml", yaml + "\npolicies: pol.yaml\n")).diagnostics;
    }
    fs::path dir_;
};

// The one diagnostic about `field`; fails the test when there is not exactly one.
diagnostic only(const std::vector<diagnostic>& ds, const std::string& field) {
    std::vector<diagnostic> hits;
    for (const auto& d : ds)
        if (d.field == field) hits.push_back(d);
    EXPECT_EQ(hits.size(), 1u) << "field " << field << " in:\n" << dump(ds);
    return hits.empty() ? diagnostic{} : hits.front();
}

#define EXPECT_DIAG(ds, field_, line_, col_, substr)                            \
    do {                                                                        \
        const diagnostic d_ = only(ds, field_);                                 \
        EXPECT_EQ(d_.line, line_) << to_string(d_);                             \
        EXPECT_EQ(d_.column, col_) << to_string(d_);                            \
        EXPECT_NE(d_.message.find(substr), std::string::npos) << to_string(d_); \
        EXPECT_EQ(d_.level, diagnostic::severity::error) << to_string(d_);      \
    } while (0)

// ---------------------------------------------------------------------------
// Globs

TEST(Glob, Matches) {
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("*", "anything"));
    EXPECT_TRUE(glob_match("*@partner.example.com", "ann@partner.example.com"));
    EXPECT_FALSE(glob_match("*@partner.example.com", "ann@partner.example.com.evil"));
    EXPECT_TRUE(glob_match("app-?", "app-1"));
    EXPECT_FALSE(glob_match("app-?", "app-12"));
    EXPECT_TRUE(glob_match("[abc]x", "bx"));
    EXPECT_FALSE(glob_match("[abc]x", "dx"));
    EXPECT_TRUE(glob_match("v[0-9]", "v7"));
    EXPECT_FALSE(glob_match("v[0-9]", "vx"));
    EXPECT_TRUE(glob_match("[!a]*", "bob"));
    EXPECT_FALSE(glob_match("[!a]*", "alice"));
    EXPECT_TRUE(glob_match("[^a]*", "bob"));
    EXPECT_TRUE(glob_match("[]]", "]"));
    EXPECT_TRUE(glob_match("a\\*", "a*"));
    EXPECT_FALSE(glob_match("a\\*", "ab"));
    EXPECT_TRUE(glob_match("*a*b*c*", "xxaxxbxxcxx"));
    EXPECT_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
    EXPECT_TRUE(glob_match("legacy-*", "legacy-"));
    EXPECT_FALSE(glob_match("", "x"));
}

TEST(Glob, CaseSensitiveByDefault) {
    EXPECT_FALSE(glob_match("*@Example.com", "a@example.com"));
    EXPECT_TRUE(glob_match_icase("*@Example.com", "A@EXAMPLE.COM"));
    EXPECT_TRUE(glob_match_icase("[a-c]*", "Bob"));
    EXPECT_TRUE(glob_match_icase("[A-C]*", "bob"));
    EXPECT_FALSE(glob_match_icase("[!a-c]*", "Bob"));
}

TEST(Glob, NoBlowUpOnHostilePatterns) {
    const std::string text(200, 'a');
    EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*b", text));
}

TEST(Glob, Validity) {
    EXPECT_TRUE(glob_valid("*"));
    EXPECT_TRUE(glob_valid("[a-z]*"));
    EXPECT_TRUE(glob_valid("[]]"));
    EXPECT_TRUE(glob_valid("a\\["));
    EXPECT_FALSE(glob_valid(""));
    EXPECT_FALSE(glob_valid("[abc"));
    EXPECT_FALSE(glob_valid("[!"));
    EXPECT_FALSE(glob_valid("[z-a]"));
    EXPECT_FALSE(glob_valid("abc\\"));
    EXPECT_EQ(glob_error("x[ab").value_or(""), "unclosed '[' at position 2");
    EXPECT_EQ(glob_error("[z-a]").value_or(""), "reversed range in '[...]' at position 1");
    EXPECT_EQ(glob_error("").value_or(""), "empty pattern");
}

// ---------------------------------------------------------------------------
// Diagnostics format

TEST(Diagnostic, ToString) {
    EXPECT_EQ(to_string({diagnostic::severity::error, "a.yaml", 3, 7, "rotation.overlap", "bad"}),
              "a.yaml:3:7: error: rotation.overlap: bad");
    EXPECT_EQ(to_string({diagnostic::severity::warning, "a.yaml", 3, 7, "x", "hm"}),
              "a.yaml:3:7: warning: x: hm");
    EXPECT_EQ(to_string({diagnostic::severity::error, "dir", 0, 0, "", "cannot read"}),
              "dir: error: cannot read");
}

// ---------------------------------------------------------------------------
// Examples and good fixtures

TEST(Examples, PoliciesLoadClean) {
    int files = 0;
    for (const auto& e : fs::directory_iterator(k_policies)) {
        const auto& p = e.path();
        if (p.extension() != ".yaml" || p.filename() == "keyrotd.example.yaml") continue;
        ++files;
        const auto r = load_policies(p);
        EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
        EXPECT_FALSE(r.policies.empty()) << p;
    }
    EXPECT_GE(files, 4);
}

TEST_F(Loader, ExampleConfigLoadsWithTheExamplePolicies) {
    // Installed layout: /etc/keyrotd/keyrotd.yaml + /etc/keyrotd/policies.d/.
    fs::copy_file(k_policies / "keyrotd.example.yaml", dir_ / "keyrotd.yaml");
    fs::create_directories(dir_ / "policies.d");
    for (const auto& e : fs::directory_iterator(k_policies))
        if (e.path().extension() == ".yaml" && e.path().filename() != "keyrotd.example.yaml")
            fs::copy_file(e.path(), dir_ / "policies.d" / e.path().filename());
    const auto r = load_config(dir_ / "keyrotd.yaml");
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    const config& c = *r.cfg;
    EXPECT_EQ(c.policies_path, (dir_ / "policies.d").string());
    EXPECT_EQ(c.state_dir, "/var/lib/keyrotd");
    EXPECT_EQ(c.policies.size(), 5u);
    // Name order of files: business-hours, generate-method (2), internal..., partners...
    ASSERT_EQ(c.policies.size(), 5u);
    EXPECT_EQ(c.policies[0].name, "payments-business-hours");
    EXPECT_EQ(c.policies[1].name, "mobile-generate");
    EXPECT_EQ(c.policies[2].name, "sandbox-generate");
    EXPECT_EQ(c.policies[3].name, "internal-never-expire");
    EXPECT_EQ(c.policies[4].name, "partners-90d");

    const keyrot::policy::policy& bh = c.policies[0];
    ASSERT_TRUE(bh.rotation.window);
    EXPECT_EQ(bh.rotation.window->days, (std::vector<int>{1, 2, 3, 4, 5}));
    EXPECT_EQ(bh.rotation.window->start, std::chrono::hours(9));
    EXPECT_EQ(bh.rotation.window->end, std::chrono::hours(17));
    EXPECT_EQ(bh.rotation.window->utc_offset, std::chrono::hours(1));
    EXPECT_EQ(c.policies[1].rotation.method, rotation_method::generate);
    EXPECT_EQ(c.policies[1].rotation.key_lifetime, 60 * k_day);
    EXPECT_TRUE(c.policies[2].dry_run);
    EXPECT_FALSE(c.policies[3].rotation.key_lifetime.has_value());
    EXPECT_EQ(c.policies[3].rotation.max_age, 365 * k_day);
    const keyrot::policy::policy& p = c.policies[4];
    EXPECT_EQ(p.priority, 10);
    EXPECT_EQ(p.match.attributes,
              (std::vector<std::pair<std::string, std::string>>{{"tier", "gold"}}));
    EXPECT_EQ(p.match.exclude.apps, std::vector<std::string>{"legacy-*"});
    EXPECT_EQ(p.rotation.delete_revoked_after, 30 * k_day);
    EXPECT_EQ(p.source, (dir_ / "policies.d" / "partners-90d.yaml").string());
}

TEST(Fixtures, FullYamlConfig) {
    const fs::path file = k_fixtures / "config" / "keyrotd.yaml";
    const auto r = load_config(file);
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    const config& c = *r.cfg;
    const fs::path dir = file.parent_path();
    EXPECT_EQ(c.source, file.string());
    EXPECT_EQ(c.apigee.url, "http://127.0.0.1:8080");
    EXPECT_EQ(c.apigee.auth.method, auth_method::token_env);
    EXPECT_EQ(c.apigee.auth.env, "APIGEE_TOKEN");
    EXPECT_EQ(c.apigee.ca_file, (dir / "ca.pem").string());
    EXPECT_EQ(c.apigee.timeout, 5 * k_second);
    EXPECT_EQ(c.apigee.max_concurrency, 4);
    EXPECT_DOUBLE_EQ(c.apigee.requests_per_second, 2.5);
    EXPECT_EQ(c.listen, "[::1]:0");
    EXPECT_EQ(c.interval, 5 * k_minute);
    EXPECT_EQ(c.state_dir, (dir / "state").string());
    EXPECT_EQ(c.policies_path, (dir / "policies.d").string());
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(c.log_format, "json");
    EXPECT_FALSE(c.metrics_per_key);

    // 10-list.yml (2), 20-docs.yaml (2, empty document skipped), 30-one.json;
    // README.txt and .hidden.yaml are skipped.
    ASSERT_EQ(c.policies.size(), 5u) << dump(r.diagnostics);
    EXPECT_EQ(c.policies[0].name, "list-one");
    EXPECT_EQ(c.policies[0].match.developers, std::vector<std::string>{"*@Example.COM"});
    EXPECT_EQ(c.policies[0].match.attributes, (std::vector<std::pair<std::string, std::string>>{
                                                  {"tier", "gold"}, {"region", "eu"}}));
    EXPECT_EQ(c.policies[1].name, "list-two");
    EXPECT_FALSE(c.policies[1].rotation.key_lifetime);
    EXPECT_EQ(c.policies[1].rotation.max_age, 14 * k_day);
    EXPECT_EQ(c.policies[2].name, "docs-one");
    ASSERT_TRUE(c.policies[2].rotation.window);
    const auto& w = *c.policies[2].rotation.window;
    EXPECT_EQ(w.days, (std::vector<int>{1, 5}));
    EXPECT_EQ(w.start, std::chrono::minutes(8 * 60 + 30));
    EXPECT_EQ(w.end, std::chrono::minutes(24 * 60));
    EXPECT_EQ(w.timezone, "-05:30");
    EXPECT_EQ(w.utc_offset, std::chrono::minutes(-(5 * 60 + 30)));
    EXPECT_EQ(c.policies[3].name, "docs-two");
    EXPECT_EQ(c.policies[3].rotation.method, rotation_method::generate);
    EXPECT_EQ(c.policies[4].name, "json-one");
    EXPECT_EQ(c.policies[4].match.exclude.apps, std::vector<std::string>{"[!a-c]*"});

    // docs-two's 2m overlap is a warning: the config still loads.
    ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
    EXPECT_EQ(r.diagnostics[0].level, diagnostic::severity::warning);
    EXPECT_EQ(r.diagnostics[0].field, "rotation.overlap");
}

TEST(Fixtures, JsonConfigAndJsonPolicyArray) {
    const auto r = load_config(k_fixtures / "config" / "keyrotd.json");
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    EXPECT_EQ(r.cfg->apigee.url, "https://apigee.example.com:8443/");
    EXPECT_EQ(r.cfg->apigee.auth.method, auth_method::basic);
    EXPECT_EQ(r.cfg->apigee.auth.user_env, "U");
    EXPECT_EQ(r.cfg->apigee.auth.password_env, "P");
    ASSERT_EQ(r.cfg->policies.size(), 2u);
    EXPECT_EQ(r.cfg->policies[0].rotation.key_lifetime, 30 * k_day);
    EXPECT_EQ(r.cfg->policies[0].rotation.rotate_before, 5 * k_day);
    EXPECT_EQ(r.cfg->policies[1].priority, -3);
    EXPECT_TRUE(r.cfg->policies[1].dry_run);
}

TEST(Fixtures, MinimalConfigGetsDefaults) {
    const auto r = load_config(k_fixtures / "config" / "minimal.yaml");
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    const config& c = *r.cfg;
    const config d;  // the defaults in config.hpp
    EXPECT_EQ(c.apigee.url, d.apigee.url);
    EXPECT_EQ(c.apigee.auth.method, auth_method::google);
    EXPECT_EQ(c.apigee.ca_file, "");
    EXPECT_EQ(c.apigee.timeout, 30 * k_second);
    EXPECT_EQ(c.apigee.max_concurrency, 8);
    EXPECT_DOUBLE_EQ(c.apigee.requests_per_second, 20);
    EXPECT_EQ(c.listen, "127.0.0.1:9464");
    EXPECT_EQ(c.interval, 10 * k_minute);
    EXPECT_EQ(c.state_dir, "/var/lib/keyrotd");
    EXPECT_EQ(c.log_level, "info");
    EXPECT_EQ(c.log_format, "text");
    EXPECT_TRUE(c.metrics_per_key);
    ASSERT_EQ(c.policies.size(), 1u);
    const keyrot::policy::policy& p = c.policies[0];
    EXPECT_EQ(p.priority, 0);
    EXPECT_FALSE(p.dry_run);
    EXPECT_EQ(p.rotation.key_lifetime, 90 * k_day);
    EXPECT_EQ(p.rotation.rotate_before, 14 * k_day);
    EXPECT_FALSE(p.rotation.max_age);  // off
    EXPECT_EQ(p.rotation.overlap, 7 * k_day);
    EXPECT_TRUE(p.rotation.revoke);
    EXPECT_FALSE(p.rotation.delete_revoked_after);  // never
    EXPECT_EQ(p.rotation.method, rotation_method::import_key);
    EXPECT_FALSE(p.rotation.window);
    EXPECT_TRUE(p.match.developers.empty());
}

// ---------------------------------------------------------------------------
// Policy rules, one by one: message, line and column.

TEST_F(Loader, UnknownFieldSuggestsClosest) {
    const auto ds = policy_diags("name: p\norganization: o\nrotation:\n  overlapp: 1d\n");
    EXPECT_DIAG(ds, "rotation.overlapp", 4, 3,
                "unknown field \"overlapp\"; did you mean \"overlap\"?");
}

TEST_F(Loader, UnknownFieldInWindowAndMatch) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nmatch:\n  developer: [a]\nrotation:\n  window:\n"
        "    day: [mon]\n");
    EXPECT_DIAG(ds, "match.developer", 4, 3, "did you mean \"developers\"?");
    EXPECT_DIAG(ds, "rotation.window.day", 7, 5, "did you mean \"days\"?");
}

TEST_F(Loader, WrongTypes) {
    const auto ds = policy_diags(
        "name: [a]\norganization: o\npriority: 1.5\ndryRun: 'true'\nmatch: [x]\n"
        "rotation:\n  revoke: 1\n  overlap: {a: 1}\n");
    EXPECT_DIAG(ds, "name", 1, 7, "expected a string, got a list");
    EXPECT_DIAG(ds, "priority", 3, 11, "expected an integer, got a scalar \"1.5\"");
    EXPECT_DIAG(ds, "dryRun", 4, 9, "expected true or false, got a string \"true\"");
    EXPECT_DIAG(ds, "match", 5, 8, "expected a map, got a list");
    EXPECT_DIAG(ds, "rotation.revoke", 7, 11, "expected true or false, got a scalar \"1\"");
    EXPECT_DIAG(ds, "rotation.overlap", 8, 12, "expected a duration, got a map");
}

TEST_F(Loader, BadAndGarbledDurations) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  keyLifetime: 90x\n  rotateBefore: P\n"
        "  maxAge: 12\n  deleteRevokedAfter: 1d 2h\n");
    EXPECT_DIAG(ds, "rotation.keyLifetime", 4, 16, "bad duration \"90x\"");
    EXPECT_DIAG(ds, "rotation.rotateBefore", 5, 17, "bad duration \"P\"");
    EXPECT_DIAG(ds, "rotation.maxAge", 6, 11, "a bare number needs a unit");
    EXPECT_DIAG(ds, "rotation.deleteRevokedAfter", 7, 23, "bad duration \"1d 2h\"");
}

TEST_F(Loader, NegativeDuration) {
    const auto ds = policy_diags("name: p\norganization: o\nrotation:\n  overlap: -1h\n");
    EXPECT_DIAG(ds, "rotation.overlap", 4, 12, "must not be negative, got \"-1h\"");
}

TEST_F(Loader, IsoAndNeverDurations) {
    const auto r = load_policies(
        write("p.yaml",
              "name: p\norganization: o\nrotation:\n  keyLifetime: NEVER\n  maxAge: P1DT12H\n"
              "  overlap: 1d\n  rotateBefore: 2w\n"));
    ASSERT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    EXPECT_FALSE(r.policies[0].rotation.key_lifetime);
    EXPECT_EQ(r.policies[0].rotation.max_age, 36 * k_hour);
    EXPECT_EQ(r.policies[0].rotation.rotate_before, 14 * k_day);
}

TEST_F(Loader, NeverOnlyForKeyLifetime) {
    const auto ds = policy_diags("name: p\norganization: o\nrotation:\n  overlap: never\n");
    EXPECT_DIAG(ds, "rotation.overlap", 4, 12, "bad duration \"never\"");
}

TEST_F(Loader, RotateBeforeMustBeShorterThanLifetime) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  keyLifetime: 7d\n  rotateBefore: 7d\n"
        "  overlap: 1d\n");
    EXPECT_DIAG(ds, "rotation.rotateBefore", 5, 17,
                "rotateBefore (7d) must be shorter than keyLifetime (7d)");
}

TEST_F(Loader, DefaultsTakePartInCrossChecks) {
    // rotateBefore (14d) and overlap (7d) default: a 5d lifetime conflicts with
    // both; the messages say which value was a default and point at keyLifetime.
    const auto ds = policy_diags("name: p\norganization: o\nrotation:\n  keyLifetime: 5d\n");
    EXPECT_DIAG(ds, "rotation.rotateBefore", 4, 16,
                "rotateBefore (14d, the default) must be shorter than keyLifetime (5d)");
    EXPECT_DIAG(ds, "rotation.overlap", 4, 16,
                "overlap (7d, the default) must be shorter than keyLifetime (5d)");
}

TEST_F(Loader, OverlapMustBeShorterThanLifetime) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  keyLifetime: 30d\n  rotateBefore: 1d\n"
        "  overlap: 31d\n");
    EXPECT_DIAG(ds, "rotation.overlap", 6, 12,
                "overlap (31d) must be shorter than keyLifetime (30d)");
}

TEST_F(Loader, NeverLifetimeSkipsLifetimeChecks) {
    const auto r = load_policies(
        write("p.yaml",
              "name: p\norganization: o\nrotation: {keyLifetime: never, rotateBefore: 900d}\n"));
    EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
}

TEST_F(Loader, ShortOverlapIsAWarning) {
    const auto r =
        load_policies(write("p.yaml", "name: p\norganization: o\nrotation:\n  overlap: 4m\n"));
    ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
    const diagnostic& d = r.diagnostics[0];
    EXPECT_EQ(d.level, diagnostic::severity::warning);
    EXPECT_EQ(d.field, "rotation.overlap");
    EXPECT_EQ(d.line, 4);
    EXPECT_EQ(d.column, 12);
    EXPECT_NE(d.message.find("under 5 minutes"), std::string::npos);
    EXPECT_NE(to_string(d).find(":4:12: warning: rotation.overlap: overlap 4m"), std::string::npos);
    EXPECT_FALSE(has_errors(r.diagnostics));
    ASSERT_EQ(r.policies.size(), 1u);
    EXPECT_EQ(r.policies[0].rotation.overlap, 4 * k_minute);

    // 0 (revoke as soon as the successor is complete) and 5m are not warned about.
    for (const char* ov : {"0", "5m"}) {
        const auto r2 = load_policies(write(
            "q.yaml", std::string("name: p\norganization: o\nrotation: {overlap: ") + ov + "}\n"));
        EXPECT_TRUE(r2.diagnostics.empty()) << ov << "\n" << dump(r2.diagnostics);
    }
}

TEST_F(Loader, BadGlobs) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nmatch:\n  developers: ['[a-']\n  apiProducts: ['']\n"
        "  exclude: {apps: ['x[']}\n");
    EXPECT_DIAG(ds, "match.developers[0]", 4, 16, "bad glob \"[a-\": unclosed '['");
    EXPECT_DIAG(ds, "match.apiProducts[0]", 5, 17, "bad glob \"\": empty pattern");
    EXPECT_DIAG(ds, "match.exclude.apps[0]", 6, 20, "bad glob \"x[\": unclosed '[' at position 2");
}

TEST_F(Loader, OrganizationRequiredAndNonEmpty) {
    auto ds = policy_diags("name: p\npriority: 1\n");
    EXPECT_DIAG(ds, "organization", 1, 1, "missing: every policy needs the Apigee organization");
    ds = policy_diags("name: p\norganization:\n");
    EXPECT_DIAG(ds, "organization", 2, 1, "expected a string, got nothing (null)");
    ds = policy_diags("name: p\norganization: ''\n");
    EXPECT_DIAG(ds, "organization", 2, 15, "must not be empty");
}

TEST_F(Loader, NameRequired) {
    auto ds = policy_diags("organization: o\n");
    EXPECT_DIAG(ds, "name", 1, 1, "missing: every policy needs a name");
    ds = policy_diags("name: \"\"\norganization: o\n");
    EXPECT_DIAG(ds, "name", 1, 7, "must not be empty");
}

TEST_F(Loader, DuplicateNamesAcrossFilesNameBothPlaces) {
    const fs::path a = write("d/a.yaml", "name: dup\norganization: o\n");
    const fs::path b = write("d/b.yaml",
                             "# b\n- name: other\n  organization: o\n- name: dup\n"
                             "  organization: o\n");
    const auto r = load_policies(dir_ / "d");
    const diagnostic d = only(r.diagnostics, "name");
    EXPECT_EQ(d.file, b.string());
    EXPECT_EQ(d.line, 4);
    EXPECT_EQ(d.column, 9);
    EXPECT_EQ(d.message, "duplicate policy name \"dup\" (first defined at " + a.string() + ":1:7)");
}

TEST_F(Loader, DuplicateKeys) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  overlap: 1d\n"
        "  overlap: 2d\n");
    EXPECT_DIAG(ds, "rotation.overlap", 5, 3, "duplicate key (first at line 4)");
}

TEST_F(Loader, UnknownRotationMethod) {
    const auto ds = policy_diags("name: p\norganization: o\nrotation: {method: Import}\n");
    EXPECT_DIAG(ds, "rotation.method", 3, 20, "unknown method \"Import\": use import or generate");
}

TEST_F(Loader, TeamAppGroups) {
    const auto r =
        load_policies(write("t.yaml",
                            "name: p\norganization: o\nmatch:\n  appGroups: [partners-*]\n"
                            "  exclude: {appGroups: [partners-test]}\n"));
    ASSERT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    EXPECT_EQ(r.policies[0].match.app_groups, std::vector<std::string>{"partners-*"});
    EXPECT_EQ(r.policies[0].match.exclude.app_groups, std::vector<std::string>{"partners-test"});
    // No generate-key call for team apps: such a policy is refused, with the reason.
    const auto ds = policy_diags(
        "name: p\norganization: o\nmatch: {appGroups: ['*']}\nrotation: {method: generate}\n");
    EXPECT_DIAG(ds, "rotation.method", 4, 20, "generate cannot rotate team (AppGroup) apps");
}

TEST_F(Loader, BadWindow) {
    const auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  window:\n    days: [mon, funday]\n"
        "    start: '9am'\n    end: '24:30'\n    timezone: America/New_York\n");
    EXPECT_DIAG(ds, "rotation.window.days[1]", 5, 17, "bad day \"funday\"");
    EXPECT_DIAG(ds, "rotation.window.start", 6, 12, "bad time \"9am\": expected \"HH:MM\"");
    EXPECT_DIAG(ds, "rotation.window.end", 7, 10, "bad time \"24:30\"");
    EXPECT_TRUE(std::none_of(ds.begin(), ds.end(), [](const auto& d) {
        return d.field == "rotation.window.timezone";
    })) << "America/New_York is a zone of the system's database";
}

TEST_F(Loader, WindowStartMustBeBeforeEnd) {
    auto ds = policy_diags(
        "name: p\norganization: o\nrotation:\n  window: {start: '10:00', end: '10:00'}\n");
    EXPECT_DIAG(ds, "rotation.window.end", 4, 33, "window must end after it starts (start 10:00)");
    ds = policy_diags("name: p\norganization: o\nrotation:\n  window: {start: '24:00'}\n");
    EXPECT_DIAG(ds, "rotation.window.start", 4, 19, "from 00:00 to 23:59");
}

TEST_F(Loader, WindowTimezones) {
    auto ds = policy_diags("name: p\norganization: o\nrotation:\n  window: {timezone: '+15:00'}\n");
    EXPECT_DIAG(ds, "rotation.window.timezone", 4, 22,
                "bad time zone \"+15:00\": use \"UTC\" or a fixed offset");
    ds = policy_diags("name: p\norganization: o\nrotation:\n  window: {timezone: Mars/Olympus}\n");
    EXPECT_DIAG(ds, "rotation.window.timezone", 4, 22,
                "unknown time zone \"Mars/Olympus\" (Mars/Olympus not found in timezone database)");
    ds = policy_diags("name: p\norganization: o\nrotation:\n  window: {timezone: CET}\n");
    EXPECT_TRUE(ds.empty()) << dump(ds);

    const auto r = load_policies(
        write("w.yaml",
              "name: p\norganization: o\nrotation: {window: {timezone: '+05:45', days: []}}\n"));
    ASSERT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    const auto& w = *r.policies[0].rotation.window;
    EXPECT_EQ(w.utc_offset, std::chrono::minutes(5 * 60 + 45));
    EXPECT_TRUE(w.days.empty());
    EXPECT_EQ(w.start, std::chrono::minutes(0));
    EXPECT_EQ(w.end, std::chrono::minutes(24 * 60));
    EXPECT_EQ(w.zone, nullptr);

    const auto named = load_policies(write(
        "n.yaml", "name: p\norganization: o\nrotation: {window: {timezone: Europe/Berlin}}\n"));
    ASSERT_TRUE(named.diagnostics.empty()) << dump(named.diagnostics);
    const auto& nw = *named.policies[0].rotation.window;
    ASSERT_NE(nw.zone, nullptr);
    EXPECT_EQ(nw.timezone, "Europe/Berlin");
}

TEST_F(Loader, YamlSyntaxErrorHasParserPosition) {
    const auto ds = policy_diags("name: p\norganization: o\nmatch: {apps: [a, b}\n");
    ASSERT_EQ(ds.size(), 1u) << dump(ds);
    EXPECT_EQ(ds[0].line, 3);
    EXPECT_EQ(ds[0].column, 20);  // the stray '}'
    EXPECT_EQ(ds[0].message, "YAML syntax error: illegal flow end");
}

TEST_F(Loader, CollectsEveryErrorNotJustTheFirst) {
    const auto r =
        load_policies(write("p.yaml",
                            "- name: a\n  organization: ''\n  rotation: {overlap: 1y, method: x}\n"
                            "- organization: o\n  match: {apps: ['[']}\n  bogus: 1\n"));
    EXPECT_EQ(r.diagnostics.size(), 6u) << dump(r.diagnostics);
    EXPECT_TRUE(r.policies.size() == 2u);
}

TEST_F(Loader, PolicyFileFormats) {
    // One policy; a YAML list; several documents; a JSON array; a JSON object.
    write("d/1.yaml", "name: a\norganization: o\n");
    write("d/2.yml", "- {name: b, organization: o}\n- {name: c, organization: o}\n");
    write("d/3.yaml", "---\nname: d\norganization: o\n---\nname: e\norganization: o\n...\n");
    write("d/4.json", "[{\"name\": \"f\", \"organization\": \"o\"}]");
    write("d/5.JSON", "{\"name\": \"g\",\n\t\"organization\": \"o\"}");
    write("d/6.txt", "name: ignored\n");
    write("d/.7.yaml", "name: ignored\n");
    fs::create_directories(dir_ / "d" / "sub.yaml");  // a directory is not a policy file
    const auto r = load_policies(dir_ / "d");
    EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    std::vector<std::string> names;
    for (const auto& p : r.policies) names.push_back(p.name);
    EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
}

TEST_F(Loader, NotAPolicy) {
    const auto ds = policy_diags("- name: a\n  organization: o\n- 42\n");
    ASSERT_EQ(ds.size(), 1u) << dump(ds);
    EXPECT_EQ(ds[0].line, 3);
    EXPECT_EQ(ds[0].column, 3);
    EXPECT_EQ(ds[0].message, "expected a policy (a map), got a scalar");
}

TEST_F(Loader, EmptyPolicySet) {
    fs::create_directories(dir_ / "empty");
    auto r = load_policies(dir_ / "empty");
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].message, "no policies found in \"" + (dir_ / "empty").string() +
                                            "\" (looked for *.yaml, *.yml, *.json)");
    r = load_policies(write("blank.yaml", "# nothing\n---\n"));
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_NE(r.diagnostics[0].message.find("no policies found in"), std::string::npos);
}

TEST_F(Loader, UnreadablePaths) {
    auto r = load_policies(dir_ / "nope.yaml");
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(to_string(r.diagnostics[0]),
              (dir_ / "nope.yaml").string() + ": error: cannot read \"" +
                  (dir_ / "nope.yaml").string() + "\": No such file or directory");

    auto c = load_config(dir_ / "missing.yaml");
    EXPECT_FALSE(c.ok());
    ASSERT_EQ(c.diagnostics.size(), 1u);
    EXPECT_EQ(c.diagnostics[0].message, "cannot read: No such file or directory");

    c = load_config(dir_);
    ASSERT_EQ(c.diagnostics.size(), 1u);
    EXPECT_EQ(c.diagnostics[0].message, "cannot read: is a directory");

    if (::geteuid() != 0) {  // root reads anything
        write("locked/p.yaml", "name: p\norganization: o\n");
        fs::permissions(dir_ / "locked", fs::perms::none);
        r = load_policies(dir_ / "locked");
        EXPECT_TRUE(has_errors(r.diagnostics)) << dump(r.diagnostics);
        fs::permissions(dir_ / "locked", fs::perms::owner_all);
    }
}

// ---------------------------------------------------------------------------
// Config rules

TEST_F(Loader, ConfigUnknownFields) {
    const auto ds = config_diags("apigee:\n  urll: https://x\n  auth: {methd: none}\nlogg: {}\n");
    EXPECT_DIAG(ds, "apigee.urll", 2, 3, "unknown field \"urll\"; did you mean \"url\"?");
    EXPECT_DIAG(ds, "apigee.auth.methd", 3, 10, "did you mean \"method\"?");
    EXPECT_DIAG(ds, "logg", 4, 1, "did you mean \"log\"?");
}

TEST_F(Loader, ApigeeUrl) {
    auto ds = config_diags("apigee: {url: 'http://10.0.0.1:8080'}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15,
                "plain http:// is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), "
                "got \"10.0.0.1\"; use https://");
    ds = config_diags("apigee: {url: apigee.googleapis.com}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15, "must start with https://");
    ds = config_diags("apigee: {url: 'https://user:pw@host'}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15, "must not carry credentials");
    ds = config_diags("apigee: {url: 'https://host:0/'}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15, "bad host or port");
    ds = config_diags("apigee: {url: 'http://127.0.0.1.evil.com/'}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15, "got \"127.0.0.1.evil.com\"");
    ds = config_diags("apigee: {url: 'http://localhost.evil.com/'}\n");
    EXPECT_DIAG(ds, "apigee.url", 1, 15, "loopback");

    for (const char* ok : {"http://127.0.0.1:8080", "http://127.1.2.3/", "http://[::1]:9000/v1",
                           "http://localhost:1234", "HTTP://LOCALHOST", "https://10.0.0.1",
                           "https://apigee.googleapis.com/"}) {
        ds = config_diags(std::string("apigee: {url: '") + ok + "'}\n");
        EXPECT_TRUE(ds.empty()) << ok << "\n" << dump(ds);
    }
}

TEST_F(Loader, AuthMethods) {
    auto ds = config_diags("apigee:\n  auth:\n    method: oauth2\n");
    EXPECT_DIAG(ds, "apigee.auth.method", 3, 13,
                "unknown auth method \"oauth2\": use google, token-file, token-env, basic, "
                "edge-oauth or none");
    ds = config_diags("apigee:\n  auth:\n    method: token-file\n");
    EXPECT_DIAG(ds, "apigee.auth.path", 3, 13, "auth method token-file needs path");
    ds = config_diags("apigee:\n  auth:\n    method: token-env\n    env: ''\n");
    EXPECT_DIAG(ds, "apigee.auth.env", 3, 13, "auth method token-env needs env");
    ds = config_diags("apigee:\n  auth:\n    method: basic\n");
    EXPECT_DIAG(ds, "apigee.auth.userEnv", 3, 13, "auth method basic needs userEnv");
    EXPECT_DIAG(ds, "apigee.auth.passwordEnv", 3, 13, "auth method basic needs passwordEnv");
    ds = config_diags("apigee:\n  auth:\n    method: none\n    env: X\n");
    EXPECT_DIAG(ds, "apigee.auth.env", 4, 5, "not used by auth method none");
    ds = config_diags("apigee:\n  auth: {env: X}\n");  // method defaults to google
    EXPECT_DIAG(ds, "apigee.auth.env", 2, 10, "not used by auth method google");
    // google takes an optional key file; it must be there
    write("sa.json", "{}");
    EXPECT_TRUE(config_diags("apigee:\n  auth: {method: google, path: sa.json}\n").empty());
    ds = config_diags("apigee:\n  auth: {method: google, path: /nonexistent/sa.json}\n");
    EXPECT_DIAG(ds, "apigee.auth.path", 2, 32,
                "cannot read service-account key file \"/nonexistent/sa.json\": No such file");

    write("pol.yaml", "name: p\norganization: o\n");
    write("secrets/token", "t\n");
    const auto r = load_config(
        write("tf.yaml",
              "apigee: {auth: {method: token-file, path: secrets/token}}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_EQ(r.cfg->apigee.auth.path, (dir_ / "secrets/token").string());
}

// Every file the config names is checked at load: validate says what `once`
// would otherwise refuse later (issue 10 item 8).
TEST_F(Loader, NamedFilesMustBeReadable) {
    auto ds = config_diags("apigee:\n  auth: {method: none}\n  caFile: missing-ca.pem\n");
    EXPECT_DIAG(ds, "apigee.caFile", 3, 11, "cannot read CA file");
    EXPECT_DIAG(ds, "apigee.caFile", 3, 11, "No such file or directory");
    ds = config_diags("apigee:\n  auth: {method: token-file, path: nope}\n");
    EXPECT_DIAG(ds, "apigee.auth.path", 2, 36, "cannot read token file");
    fs::create_directories(dir_ / "adir");
    ds = config_diags("apigee:\n  auth: {method: none}\n  caFile: adir\n");
    EXPECT_DIAG(ds, "apigee.caFile", 3, 11, "is a directory");
    write("ca.pem", "x");
    EXPECT_TRUE(config_diags("apigee:\n  auth: {method: none}\n  caFile: ca.pem\n").empty());
}

TEST_F(Loader, MissingCredentialsNameTheVariable) {
    write("pol.yaml", "name: p\norganization: o\n");
    ::unsetenv("KEYROT_TEST_UNSET_VAR");
    ::setenv("KEYROT_TEST_SET_VAR", "x", 1);
    auto r = load_config(write("c.yaml",
                               "apigee:\n  auth: {method: token-env, env: KEYROT_TEST_UNSET_VAR}\n"
                               "policies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    auto ds = missing_credentials(*r.cfg);
    EXPECT_DIAG(ds, "apigee.auth.env", 2, 34,
                "environment variable KEYROT_TEST_UNSET_VAR (auth method token-env) is not set");
    r = load_config(write("c.yaml",
                          "apigee:\n  auth: {method: basic, userEnv: KEYROT_TEST_SET_VAR,"
                          " passwordEnv: KEYROT_TEST_UNSET_VAR}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    ds = missing_credentials(*r.cfg);
    ASSERT_EQ(ds.size(), 1u) << dump(ds);
    EXPECT_EQ(ds[0].field, "apigee.auth.passwordEnv");
}

TEST_F(Loader, YamlTrapsGetHints) {
    auto ds = config_diags("apigee:\n  url: *star\n");
    ASSERT_FALSE(ds.empty());
    EXPECT_NE(ds[0].message.find("*star reads as a YAML alias because it starts with *; quote "
                                 "it: \"*star\""),
              std::string::npos)
        << dump(ds);
    ds = config_diags("apigee:\n\turl: http://127.0.0.1:1\n");
    ASSERT_FALSE(ds.empty());
    EXPECT_EQ(ds[0].line, 2);
    EXPECT_EQ(ds[0].column, 1);
    EXPECT_NE(ds[0].message.find("tab character in indentation"), std::string::npos) << dump(ds);
    // JSON may indent with tabs
    write("pol.yaml", "name: p\norganization: o\n");
    const auto r =
        load_config(write("j.json", "{\n\t\"interval\": \"5m\",\n\t\"policies\": \"pol.yaml\"\n}"));
    EXPECT_TRUE(r.ok()) << dump(r.diagnostics);
}

TEST_F(Loader, ConcurrencyAndRate) {
    auto ds = config_diags("apigee: {maxConcurrency: 0, requestsPerSecond: 0}\n");
    EXPECT_DIAG(ds, "apigee.maxConcurrency", 1, 26, "must be between 1 and 1024, got 0");
    EXPECT_DIAG(ds, "apigee.requestsPerSecond", 1, 48, "must be greater than 0, got 0");
    ds = config_diags("apigee: {maxConcurrency: -3, requestsPerSecond: fast}\n");
    EXPECT_DIAG(ds, "apigee.maxConcurrency", 1, 26, "got -3");
    EXPECT_DIAG(ds, "apigee.requestsPerSecond", 1, 49, "expected a number, got a scalar \"fast\"");
    ds = config_diags("apigee: {requestsPerSecond: .nan}\n");
    EXPECT_DIAG(ds, "apigee.requestsPerSecond", 1, 29, "expected a number");
}

TEST_F(Loader, ListenAddress) {
    for (const char* bad : {"9464", "127.0.0.1", "127.0.0.1:", ":9464", "::1:9464", "[::1]",
                            "host name:1", "127.0.0.1:http"}) {
        const auto ds = config_diags(std::string("listen: '") + bad + "'\n");
        EXPECT_DIAG(ds, "listen", 1, 9, "bad listen address");
    }
    for (const char* ok : {"127.0.0.1:0", "0.0.0.0:9464", "[::]:9464", "[::1]:9464",
                           "localhost:9464", "metrics.local:80"}) {
        const auto ds = config_diags(std::string("listen: '") + ok + "'\n");
        EXPECT_TRUE(ds.empty()) << ok << "\n" << dump(ds);
    }
}

TEST_F(Loader, LogSettings) {
    const auto ds = config_diags("log: {level: INFO, format: logfmt}\n");
    EXPECT_DIAG(ds, "log.level", 1, 14, "unknown level \"INFO\"");
    EXPECT_DIAG(ds, "log.format", 1, 28, "unknown format \"logfmt\": use text or json");
}

TEST_F(Loader, ConfigDurations) {
    const auto ds = config_diags("interval: 10\napigee: {timeout: 0}\n");
    EXPECT_DIAG(ds, "interval", 1, 11, "a bare number needs a unit");
    EXPECT_DIAG(ds, "apigee.timeout", 2, 19, "must be greater than 0");
}

TEST_F(Loader, ConfigWrongTypes) {
    const auto ds = config_diags("apigee: []\nmetrics: {perKey: 0}\nstateDir: {}\n");
    EXPECT_DIAG(ds, "apigee", 1, 9, "expected a map, got a list");
    EXPECT_DIAG(ds, "metrics.perKey", 2, 19, "expected true or false");
    EXPECT_DIAG(ds, "stateDir", 3, 11, "expected a string, got a map");
}

TEST_F(Loader, RelativePathsResolveAgainstTheConfigDirectory) {
    write("etc/pol/a.yaml", "name: a\norganization: o\n");
    const auto r = load_config(write("etc/k.yaml", "stateDir: ../var/state\npolicies: pol\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_EQ(r.cfg->state_dir, (dir_ / "var/state").string());
    EXPECT_EQ(r.cfg->policies_path, (dir_ / "etc/pol").string());
    EXPECT_EQ(r.cfg->policies.size(), 1u);
}

TEST_F(Loader, PolicyProblemsPointAtTheConfigLine) {
    const fs::path cfg = write("c.yaml", "listen: 127.0.0.1:0\npolicies: nowhere.d\n");
    const auto r = load_config(cfg);
    EXPECT_FALSE(r.ok());
    const diagnostic d = only(r.diagnostics, "policies");
    EXPECT_EQ(d.file, cfg.string());
    EXPECT_EQ(d.line, 2);
    EXPECT_EQ(d.column, 11);
    EXPECT_NE(d.message.find("No such file or directory"), std::string::npos);
}

TEST_F(Loader, ConfigErrorsAndPolicyErrorsTogether) {
    write("pol.yaml", "name: p\norganization: o\nrotation: {overlap: 1m}\n");
    const auto r = load_config(write("c.yaml", "policies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);  // a warning does not block loading
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].level, diagnostic::severity::warning);
    EXPECT_EQ(r.diagnostics[0].file, (dir_ / "pol.yaml").string());
}

TEST_F(Loader, ConfigAndPolicyErrorsAreListedTogether) {
    write("pol.yaml", "name: p\norganization: ''\n");
    const auto r = load_config(write("c.yaml", "log: {level: loud}\npolicies: pol.yaml\n"));
    EXPECT_FALSE(r.ok());
    EXPECT_DIAG(r.diagnostics, "log.level", 1, 14, "unknown level \"loud\"");
    EXPECT_DIAG(r.diagnostics, "organization", 2, 15, "must not be empty");
}

TEST_F(Loader, ConfigYamlSyntaxError) {
    const auto r = load_config(write("c.yaml", "apigee:\n  url: [\n"));
    EXPECT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
    EXPECT_EQ(r.diagnostics[0].line, 3);
    EXPECT_NE(r.diagnostics[0].message.find("YAML syntax error"), std::string::npos);
}

TEST_F(Loader, ConfigHoldsOneDocument) {
    const auto r = load_config(write("c.yaml", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n"));
    EXPECT_FALSE(r.ok());
    EXPECT_NE(dump(r.diagnostics).find(":3:1: error: the config file holds one document"),
              std::string::npos)
        << dump(r.diagnostics);
}

// ---------------------------------------------------------------------------
// The broken-config corpus: each file's first line is "# expect: SUBSTRING",
// a substring of one to_string(diagnostic). config-*.yaml files go through
// load_config, the rest through load_policies. Unless the expectation is a
// warning, the file must fail to load.

std::vector<std::string> corpus() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(k_fixtures / "bad-config"))
        if (e.is_regular_file()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

class BadConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(BadConfig, ReportsTheExpectedDiagnostic) {
    const fs::path file = k_fixtures / "bad-config" / GetParam();
    const std::string text = read_text(file);
    const std::string tag = "# expect: ";
    ASSERT_EQ(text.rfind(tag, 0), 0u) << file << " must start with \"" << tag << "\"";
    const std::string expect = text.substr(tag.size(), text.find('\n') - tag.size());
    ASSERT_FALSE(expect.empty());

    std::vector<diagnostic> ds;
    bool loaded = false;
    if (GetParam().rfind("config-", 0) == 0) {
        const auto r = load_config(file);
        ds = r.diagnostics;
        loaded = r.ok();
    } else {
        const auto r = load_policies(file);
        ds = r.diagnostics;
        loaded = !has_errors(ds);
    }
    const std::string all = dump(ds);
    EXPECT_NE(all.find(expect), std::string::npos) << "expected: " << expect << "\ngot:\n" << all;
    const bool warning_only = expect.find("warning:") != std::string::npos;
    EXPECT_EQ(loaded, warning_only) << all;
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadConfig, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                             std::string n = param_info.param;
                             for (auto& c : n)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return n;
                         });

TEST(BadConfigCorpus, HasAtLeastThirtyCases) { EXPECT_GE(corpus().size(), 30u); }

// ---------------------------------------------------------------------------
// The JSON Schemas list exactly the fields the loader knows.

using json = nlohmann::json;

const json& resolve(const json& root, const json& node) {
    if (node.contains("$ref")) {
        const std::string ref = node["$ref"];
        EXPECT_EQ(ref.rfind("#/$defs/", 0), 0u) << ref;
        return root["$defs"][ref.substr(8)];
    }
    return node;
}

// Every dotted property path in the schema (object properties only).
void schema_paths(const json& root, const json& node, const std::string& prefix,
                  std::vector<std::string>& out) {
    const json& n = resolve(root, node);
    if (!n.contains("properties")) return;
    for (const auto& [name, sub] : n["properties"].items()) {
        const std::string path = prefix.empty() ? name : prefix + "." + name;
        out.push_back(path);
        if (path != "match.attributes") schema_paths(root, sub, path, out);
    }
}

std::vector<std::string> schema_fields(const std::string& file, const char* top_def) {
    std::ifstream in(k_policies / file);
    const json root = json::parse(in);
    std::vector<std::string> out;
    schema_paths(root, top_def ? root["$defs"][top_def] : root, "", out);
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Schema, PolicySchemaMatchesTheLoader) {
    EXPECT_EQ(schema_fields("policy.schema.json", "policy"), policy_fields());
}

TEST(Schema, ConfigSchemaMatchesTheLoader) {
    EXPECT_EQ(schema_fields("config.schema.json", nullptr), config_fields());
}

TEST(Schema, FieldTablesAreComplete) {
    // A spot check that the tables are the real ones.
    const auto& pf = policy_fields();
    for (const char* f : {"rotation.window.timezone", "match.exclude.apiProducts", "dryRun"})
        EXPECT_NE(std::find(pf.begin(), pf.end(), f), pf.end()) << f;
    const auto& cf = config_fields();
    for (const char* f : {"apigee.auth.passwordEnv", "metrics.perKey", "log.format"})
        EXPECT_NE(std::find(cf.begin(), cf.end(), f), cf.end()) << f;
}

}  // namespace

TEST(Examples, RepoPolicyDirectoryLoadsWithoutItsSchemasAndConfig) {
    // `policies:` pointed at the repo's policies/: the JSON Schemas and the
    // example config kept there are not policies, and must not trip the loader.
    const auto r = load_policies(k_policies);
    EXPECT_TRUE(r.diagnostics.empty()) << dump(r.diagnostics);
    EXPECT_EQ(r.policies.size(), 5u);
    for (const auto& p : r.policies) {
        EXPECT_EQ(p.source.find("schema"), std::string::npos) << p.source;
        EXPECT_EQ(p.source.find("keyrotd.example"), std::string::npos) << p.source;
    }
}

// ---------------------------------------------------------------------------
// Apigee Edge (apigee.flavor: edge): defaults, settings and the refusals.

TEST_F(Loader, EdgeFlavorDefaults) {
    write("pol.yaml", "name: p\norganization: o\nrotation: {method: generate}\n");
    auto r = load_config(write("c.yaml",
                               "apigee:\n  flavor: edge\n  auth: {method: basic, userEnv: U, "
                               "passwordEnv: P}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_TRUE(r.cfg->apigee.edge());
    EXPECT_EQ(r.cfg->apigee.url, "https://api.enterprise.apigee.com");
    EXPECT_FALSE(r.cfg->apigee.edge_private_cloud);
    EXPECT_EQ(r.cfg->apigee.app_list_rows, 1000);

    // A management server of one's own: Private Cloud, 10000 rows.
    r = load_config(write("c.yaml",
                          "apigee:\n  flavor: edge\n  url: https://ms.example:8443\n  auth: "
                          "{method: basic, userEnv: U, passwordEnv: P}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_TRUE(r.cfg->apigee.edge_private_cloud);
    EXPECT_EQ(r.cfg->apigee.app_list_rows, 10000);

    // Said explicitly, and a smaller page.
    r = load_config(write("c.yaml",
                          "apigee:\n  flavor: edge\n  url: http://127.0.0.1:8080\n  edge: {cloud: "
                          "public, appListRows: 250}\n  auth: {method: basic, userEnv: U, "
                          "passwordEnv: P}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_FALSE(r.cfg->apigee.edge_private_cloud);
    EXPECT_EQ(r.cfg->apigee.app_list_rows, 250);

    // flavor x stays as it was.
    r = load_config(write("c.yaml", "apigee: {flavor: x}\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_FALSE(r.cfg->apigee.edge());
    EXPECT_EQ(r.cfg->apigee.url, "https://apigee.googleapis.com");
}

TEST_F(Loader, EdgeSettingsRefused) {
    const std::string basic = "  auth: {method: basic, userEnv: U, passwordEnv: P}\n";
    auto ds = config_diags("apigee: {flavor: opdk}\n");
    EXPECT_DIAG(ds, "apigee.flavor", 1, 18, "unknown flavor \"opdk\"");
    ds = config_diags("apigee:\n  edge: {cloud: private}\n");
    EXPECT_DIAG(ds, "apigee.edge", 2, 9, "only with apigee.flavor: edge");
    ds = config_diags("apigee:\n  flavor: edge\n  edge: {appListRows: 5000}\n" + basic);
    EXPECT_DIAG(ds, "apigee.edge.appListRows", 3, 23, "between 2 and 1000 on Edge Public Cloud");
    ds = config_diags("apigee:\n  flavor: edge\n  edge: {cloud: private, appListRows: 10001}\n" +
                      basic);
    EXPECT_DIAG(ds, "apigee.edge.appListRows", 3, 39, "between 2 and 10000 on Edge Private Cloud");
    ds = config_diags("apigee:\n  flavor: edge\n  edge: {appListRows: 1}\n" + basic);
    EXPECT_DIAG(ds, "apigee.edge.appListRows", 3, 23, "between 2 and 1000");
    ds = config_diags("apigee:\n  flavor: edge\n  edge: {cloud: hybrid}\n" + basic);
    EXPECT_DIAG(ds, "apigee.edge.cloud", 3, 17, "use public or private");
    // Google tokens on Edge, the default auth method included.
    ds = config_diags("apigee:\n  flavor: edge\n");
    EXPECT_DIAG(ds, "apigee.flavor", 2, 11, "Apigee Edge does not take Google OAuth tokens");
    ds = config_diags("apigee:\n  flavor: edge\n  auth: {method: google}\n");
    EXPECT_DIAG(ds, "apigee.auth.method", 3, 18, "Apigee Edge does not take Google OAuth tokens");
    // Edge's login server on X.
    write("pw", "secret\n");
    ds = config_diags("apigee:\n  auth: {method: edge-oauth, user: u, passwordFile: pw}\n");
    EXPECT_DIAG(ds, "apigee.auth.method", 2, 18, "only with apigee.flavor: edge");
}

TEST_F(Loader, EdgeOAuth) {
    write("pw", "secret\n");
    write("seed", "GEZDGNBVGY3TQOJQ\n");
    write("pc", "123456\n");
    write("pol.yaml", "name: p\norganization: o\nrotation: {method: generate}\n");
    auto r = load_config(write("c.yaml",
                               "apigee:\n  flavor: edge\n  auth:\n    method: edge-oauth\n    "
                               "user: ops@example.com\n    passwordFile: pw\n    mfaSeedFile: "
                               "seed\npolicies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
    EXPECT_EQ(r.cfg->apigee.auth.password_file, (dir_ / "pw").string());
    EXPECT_EQ(r.cfg->apigee.auth.mfa_seed_file, (dir_ / "seed").string());
    // A SAML zone's passcode.
    r = load_config(write("c.yaml",
                          "apigee:\n  flavor: edge\n  auth:\n    method: edge-oauth\n    tokenUrl: "
                          "https://zone.login.apigee.com/oauth/token\n    passcodeFile: pc\n"
                          "policies: pol.yaml\n"));
    ASSERT_TRUE(r.ok()) << dump(r.diagnostics);

    const std::string head = "apigee:\n  flavor: edge\n  auth:\n    method: edge-oauth\n";
    auto ds = config_diags(head + "    passwordFile: pw\n");
    EXPECT_DIAG(ds, "apigee.auth.user", 4, 13, "needs the user name");
    ds = config_diags(head + "    user: u\n    userEnv: U\n    passwordFile: pw\n");
    EXPECT_DIAG(ds, "apigee.auth.user", 4, 13, "not both");
    ds = config_diags(head + "    user: u\n");
    EXPECT_DIAG(ds, "apigee.auth.passwordFile", 4, 13, "needs passwordFile");
    ds = config_diags(head + "    user: u\n    passwordFile: missing\n");
    EXPECT_DIAG(ds, "apigee.auth.passwordFile", 6, 19, "cannot read password file");
    ds = config_diags(head + "    user: u\n    passwordFile: pw\n    mfaSeedFile: nope\n");
    EXPECT_DIAG(ds, "apigee.auth.mfaSeedFile", 7, 18, "cannot read MFA seed file");
    ds = config_diags(head + "    passcodeFile: pc\n    mfaSeedFile: seed\n");
    EXPECT_DIAG(ds, "apigee.auth.mfaSeedFile", 6, 5, "a SAML zone's passcode replaces");
    ds = config_diags(head +
                      "    user: u\n    passwordFile: pw\n    tokenUrl: http://sso.example/\n");
    EXPECT_DIAG(ds, "apigee.auth.tokenUrl", 7, 15, "plain http:// is allowed only to a loopback");
    ds = config_diags(head + "    user: u\n    passwordFile: pw\n    passwordEnv: P\n");
    EXPECT_DIAG(ds, "apigee.auth.passwordEnv", 7, 5, "not used by auth method edge-oauth");
    // Private Cloud has no default login server.
    ds = config_diags(
        "apigee:\n  flavor: edge\n  url: https://ms.example\n  auth:\n    method: "
        "edge-oauth\n    user: u\n    passwordFile: pw\n");
    EXPECT_DIAG(ds, "apigee.auth.tokenUrl", 0, 0, "Private Cloud needs tokenUrl");
}

TEST_F(Loader, EdgeImportOnlyWithoutExpiry) {
    const std::string cfg =
        "apigee:\n  flavor: edge\n  auth: {method: basic, userEnv: U, passwordEnv: P}\n"
        "policies: pol.yaml\n";
    // import is the default method.
    write("pol.yaml", "name: p\norganization: o\nrotation: {keyLifetime: 90d}\n");
    auto r = load_config(write("c.yaml", cfg));
    EXPECT_FALSE(r.ok());
    EXPECT_DIAG(r.diagnostics, "rotation.keyLifetime", 3, 25,
                "Edge cannot set an expiry on an imported key");
    write("pol.yaml", "name: p\norganization: o\nrotation:\n  method: import\n");
    r = load_config(write("c.yaml", cfg));
    EXPECT_DIAG(r.diagnostics, "rotation.method", 4, 11,
                "Edge cannot set an expiry on an imported key");
    // Keys that never expire, rotated by age: developer and company apps.
    write("pol.yaml",
          "name: p\norganization: o\nmatch: {appGroups: ['*']}\n"
          "rotation: {method: import, keyLifetime: never, maxAge: 180d, overlap: 7d}\n");
    r = load_config(write("c.yaml", cfg));
    EXPECT_TRUE(r.ok()) << dump(r.diagnostics);
    // generate works for developer apps; company apps (match.appGroups) have no
    // generate-key call on Edge either.
    write("pol.yaml", "name: p\norganization: o\nrotation: {method: generate}\n");
    r = load_config(write("c.yaml", cfg));
    EXPECT_TRUE(r.ok()) << dump(r.diagnostics);
    write("pol.yaml",
          "name: p\norganization: o\nmatch: {appGroups: ['*']}\nrotation: {method: generate}\n");
    r = load_config(write("c.yaml", cfg));
    EXPECT_FALSE(r.ok());
    EXPECT_DIAG(r.diagnostics, "rotation.method", 4, 20,
                "Edge's reference has no generate-key call for company apps");
    // ...which X still refuses (AppGroups have no generate-key call).
    r = load_config(write("c.yaml", "policies: pol.yaml\n"));
    EXPECT_FALSE(r.ok());
    EXPECT_DIAG(r.diagnostics, "rotation.method", 4, 20,
                "generate cannot rotate team (AppGroup) apps");
}

}  // namespace policy_test
