// keyrot::notify email (lib/notify/email.hpp, email_sink.hpp): template
// rendering, the facts of an event, recipients (never an inactive developer),
// the RFC 5322 message (no header injection), the SMTP outcome rule, the
// `emails` config and the sink's start-up checks. The SMTP conversation itself
// is tested against a real server in tests/integration/notify_test.py.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/asio.hpp"
#include "notify/config.hpp"
#include "notify/email.hpp"
#include "notify/email_sink.hpp"
#include "notify/event.hpp"
#include "temp_dir.hpp"

namespace notify_email_test {

namespace fs = std::filesystem;
using namespace keyrot;
using namespace keyrot::notify;
using nlohmann::json;

namespace {

constexpr sys_ms k_t0{milliseconds{1795608000123}};  // 2026-11-25T12:00:00.123Z

event_fields rotated() {
    event_fields f;
    f.type = event_type::key_rotated;
    f.organization = "acme-prod";
    f.developer = "ana@partner.example.com";
    f.developer_status = "active";
    f.app = "fleet-telemetry";
    f.policy = "partners-90d";
    f.key = "1dc03117f8c38f8f";
    f.replaces = "5c0be4e718fb212c";
    f.expires_at = k_t0 + 90 * k_day;
    f.revokes_at = k_t0 + 7 * k_day;
    f.occurred_at = k_t0;
    return f;
}

event make(event_fields f) {
    auto e = make_event(std::move(f));
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.err().describe());
    return e.value();
}

email_config mail_config() {
    email_config c;
    c.name = "partner-mail";
    c.url = "smtp://127.0.0.1:2525";
    c.host = "127.0.0.1";
    c.host_is_loopback = true;
    c.from = "keyrotd <keyrotd@api.example.com>";
    c.portal_url = "https://developers.example.com/my-apps";
    return c;
}

using keyrot::testing::temp_dir;

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

}  // namespace

// ---- templates ----

TEST(NotifyEmailTemplate, PlaceholdersAndSections) {
    const email_values v = {{"app", "fleet"}, {"key", "1dc03117f8c38f8f"}, {"reason", ""}};
    EXPECT_EQ(render_template("App {{app}}, key {{key}}.", v), "App fleet, key 1dc03117f8c38f8f.");
    EXPECT_EQ(render_template("[{{reason}}][{{team}}]", v), "[][]") << "absent or empty: nothing";
    EXPECT_EQ(render_template("{{#app}}has {{app}}{{/app}}{{#reason}}why{{/reason}}", v),
              "has fleet");
    EXPECT_EQ(render_template("{{^reason}}no reason{{/reason}}{{^app}}no app{{/app}}", v),
              "no reason");
    // Nested sections, the same name inside itself too.
    EXPECT_EQ(render_template("{{#app}}a{{#key}}k{{#app}}A{{/app}}{{/key}}{{/app}}!", v), "akA!");
    EXPECT_EQ(render_template("{{#team}}x{{#app}}y{{/app}}z{{/team}}end", v), "end");
    // Values are inserted as they are, never rendered again.
    EXPECT_EQ(render_template("{{app}}", {{"app", "{{key}}"}, {"key", "k"}}), "{{key}}");
}

TEST(NotifyEmailTemplate, ErrorsNameTheProblem) {
    EXPECT_FALSE(template_error("Hello {{app}} {{#isRotated}}{{key}}{{/isRotated}}"));
    EXPECT_NE(template_error("{{consumerKey}}")->find("unknown name {{consumerKey}}"),
              std::string::npos);
    EXPECT_NE(template_error("{{#app}}x")->find("not closed"), std::string::npos);
    EXPECT_NE(template_error("x{{/app}}")->find("closes no open section"), std::string::npos);
    EXPECT_NE(template_error("{{#app}}{{#key}}{{/app}}{{/key}}")->find("closes no open"),
              std::string::npos);
    EXPECT_NE(template_error("{{app")->find("without }}"), std::string::npos);
    EXPECT_FALSE(template_error(default_email_template().subject));
    EXPECT_FALSE(template_error(default_email_template().body));
}

TEST(NotifyEmailTemplate, FactsOfARotation) {
    const auto e = make(rotated());
    auto v = email_facts(e.body, "https://developers.example.com/my-apps");
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->at("type"), "key.rotated");
    EXPECT_EQ(v->at("id"), e.id);
    EXPECT_EQ(v->at("app"), "fleet-telemetry");
    EXPECT_EQ(v->at("owner"), "ana@partner.example.com");
    EXPECT_EQ(v->at("developerStatus"), "active");
    EXPECT_EQ(v->at("key"), "1dc03117f8c38f8f");
    EXPECT_EQ(v->at("replaces"), "5c0be4e718fb212c");
    EXPECT_EQ(v->at("expiresAt"), "2027-02-23T12:00:00.123Z");
    EXPECT_EQ(v->at("replacesRevokedAt"), "2026-12-02T12:00:00.123Z");
    EXPECT_EQ(v->at("isRotated"), "yes");
    EXPECT_EQ(v->at("isExpiring"), "");
    EXPECT_EQ(v->at("summary"),
              "A new API key for app fleet-telemetry is ready; the old key stops working at "
              "2026-12-02T12:00:00.123Z");
    EXPECT_FALSE(email_facts("not json", "").ok());
    EXPECT_FALSE(email_facts(R"({"type": "key.rotated"})", "").ok());
}

TEST(NotifyEmailTemplate, DefaultBodyOfEachType) {
    const std::string portal = "https://developers.example.com/my-apps";
    const auto& t = default_email_template();
    {
        const auto v = email_facts(make(rotated()).body, portal).value();
        const std::string body = render_template(t.body, v);
        for (const char* want :
             {"Organization: acme-prod", "App:          fleet-telemetry",
              "Developer:    ana@partner.example.com", "Policy:       partners-90d",
              "new API key, 1dc03117f8c38f8f; it replaces the key 5c0be4e718fb212c",
              "The new key expires: 2027-02-23T12:00:00.123Z",
              "The old key 5c0be4e718fb212c will be revoked at 2026-12-02T12:00:00.123Z",
              "developer portal: https://developers.example.com/my-apps"})
            EXPECT_NE(body.find(want), std::string::npos) << want << "\n" << body;
        EXPECT_EQ(body.find("{{"), std::string::npos) << body;
        EXPECT_EQ(render_template(t.subject, v),
                  "[keyrotd acme-prod] A new API key for app fleet-telemetry is ready; the old "
                  "key stops working at 2026-12-02T12:00:00.123Z");
    }
    {
        auto f = rotated();
        f.type = event_type::rotation_failed;
        f.replaces.clear();
        f.expires_at.reset();
        f.revokes_at.reset();
        f.reason = "Apigee answered 403";
        const std::string body = render_template(t.body, email_facts(make(f).body, "").value());
        EXPECT_NE(body.find("could not be rotated: Apigee answered 403"), std::string::npos);
        EXPECT_EQ(body.find("developer portal"), std::string::npos) << "no portalUrl: no line";
        EXPECT_EQ(body.find("new API key"), std::string::npos);
    }
    {
        auto f = rotated();
        f.type = event_type::key_expiring;
        f.replaces.clear();
        f.revokes_at.reset();
        f.lead_time = 7 * k_day;
        const auto v = email_facts(make(f).body, "").value();
        EXPECT_NE(render_template(t.body, v).find("stops working at 2027-02-23T12:00:00.123Z "
                                                  "(warning 7d ahead)"),
                  std::string::npos);
    }
}

// ---- recipients and the message ----

TEST(NotifyEmailMessage, NeverToAnInactiveOrUnknownDeveloper) {
    auto c = mail_config();
    auto facts = [](event_fields f) { return email_facts(make(std::move(f)).body, "").value(); };
    EXPECT_EQ(email_recipients(c, facts(rotated())),
              std::vector<std::string>{"ana@partner.example.com"});
    auto unknown = rotated();
    unknown.developer_status.clear();
    EXPECT_TRUE(email_recipients(c, facts(unknown)).empty());
    auto inactive = rotated();
    inactive.developer_status = "inactive";
    EXPECT_TRUE(email_recipients(c, facts(inactive)).empty());
    auto team = rotated();
    team.developer.clear();
    team.team = "fleet-team";
    EXPECT_TRUE(email_recipients(c, facts(team)).empty());

    c.to = {"ops@api.example.com"};
    EXPECT_EQ(email_recipients(c, facts(inactive)),
              std::vector<std::string>{"ops@api.example.com"});
    EXPECT_EQ(email_recipients(c, facts(rotated())),
              (std::vector<std::string>{"ana@partner.example.com", "ops@api.example.com"}));
    c.to_developer = false;
    EXPECT_EQ(email_recipients(c, facts(rotated())),
              std::vector<std::string>{"ops@api.example.com"});
}

TEST(NotifyEmailMessage, FixedAddressesAreBlindBesideTheDeveloper) {
    auto c = mail_config();
    c.to = {"ops@api.example.com"};
    const auto e = make(rotated());
    auto env = build_email(c, default_email_template(), e.id, e.body);
    ASSERT_TRUE(env.ok());
    EXPECT_EQ(env->recipients.size(), 2u);
    EXPECT_EQ(env->message.to, std::vector<std::string>{"ana@partner.example.com"});
    const std::string m = compose_message(env->message, k_t0);
    EXPECT_EQ(m.find("ops@api.example.com"), std::string::npos) << m;
    EXPECT_NE(m.find("Message-ID: <" + e.id + "@keyrotd>\r\n"), std::string::npos);
    EXPECT_NE(m.find("X-Keyrotd-Event: key.rotated\r\n"), std::string::npos);
    EXPECT_NE(m.find("Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n"), std::string::npos) << m;

    auto inactive = rotated();
    inactive.developer_status = "inactive";
    const auto ie = make(inactive);
    auto only_ops = build_email(c, default_email_template(), ie.id, ie.body);
    ASSERT_TRUE(only_ops.ok());
    EXPECT_EQ(only_ops->recipients, std::vector<std::string>{"ops@api.example.com"});
    EXPECT_EQ(only_ops->message.to, std::vector<std::string>{"ops@api.example.com"});
    c.to.clear();
    EXPECT_FALSE(build_email(c, default_email_template(), ie.id, ie.body).ok());
}

TEST(NotifyEmailMessage, NoValueCanAddAHeader) {
    email_message m;
    m.from = "keyrotd@api.example.com";
    m.to = {"ana@partner.example.com"};
    m.subject = "App evil\r\nBcc: victim@example.com";
    m.body = "line one\nline two\r\n.\nlast";
    m.message_id = "evt_1@keyrotd";
    const std::string text = compose_message(m, k_t0);
    const std::string headers = text.substr(0, text.find("\r\n\r\n") + 2);
    EXPECT_EQ(headers.find("\r\nBcc:"), std::string::npos) << headers;
    EXPECT_NE(headers.find("Subject: App evil  Bcc: victim@example.com\r\n"), std::string::npos);
    const std::string body = text.substr(text.find("\r\n\r\n") + 4);
    EXPECT_EQ(body, "line one\r\nline two\r\n.\r\nlast\r\n") << "CRLF everywhere";
    EXPECT_NE(headers.find("Content-Transfer-Encoding: 7bit"), std::string::npos);
}

TEST(NotifyEmailMessage, NonAsciiIsEncoded) {
    email_message m;
    m.from = "keyrotd@api.example.com";
    m.subject = "Clé renouvelée";
    m.body = "Votre clé";
    m.message_id = "evt_1@keyrotd";
    const std::string text = compose_message(m, k_t0);
    EXPECT_NE(text.find("Subject: =?UTF-8?B?Q2zDqSByZW5vdXZlbMOpZQ==?=\r\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("Content-Transfer-Encoding: base64\r\n"), std::string::npos);
    EXPECT_NE(text.find("Vm90cmUgY2zDqQ0K"), std::string::npos) << text;
}

TEST(NotifyEmailMessage, SmtpOutcomes) {
    EXPECT_EQ(classify_smtp(true, 250, false), outcome::delivered);
    EXPECT_EQ(classify_smtp(false, 550, true), outcome::refuse);  // RCPT: no such user
    EXPECT_EQ(classify_smtp(false, 554, true), outcome::refuse);  // DATA refused
    EXPECT_EQ(classify_smtp(false, 451, true), outcome::retry);   // try again later
    EXPECT_EQ(classify_smtp(false, 0, false), outcome::retry);    // no connection
    EXPECT_EQ(classify_smtp(false, 535, false), outcome::retry);  // AUTH: the operator's fix
    EXPECT_EQ(classify_smtp(false, 530, true), outcome::retry);   // authentication required
    EXPECT_EQ(classify_smtp(false, 502, false), outcome::retry);  // STARTTLS refused
}

// ---- config and start-up ----

TEST(NotifyEmailConfig, ParsesAnEmailSink) {
    const auto j = json::parse(R"({
        "webhooks": [{"name": "hub", "url": "https://hooks.example.com/k", "secretFiles": "/s"}],
        "emails": [{"name": "partner-mail", "url": "smtp://smtp.example.com:587",
                    "username": "keyrotd", "passwordFile": "/run/credentials/keyrotd/smtp",
                    "caFile": "/etc/ssl/extra.pem",
                    "from": "keyrotd <keyrotd@api.example.com>", "to": ["ops@api.example.com"],
                    "portalUrl": "https://developers.example.com/my-apps",
                    "subjectFile": "subject.txt", "bodyFile": "body.txt",
                    "events": ["key.rotated"], "developers": ["*@partner.example.com"],
                    "timeout": "20s"},
                   {"name": "ops", "url": "smtps://smtp.example.com", "from": "k@example.com",
                    "toDeveloper": false, "to": "ops@example.com"},
                   {"name": "local", "url": "smtp://localhost:2525", "tls": "none",
                    "from": "k@example.com"}]})");
    auto c = parse_config(j);
    ASSERT_TRUE(c.ok()) << c.err().describe();
    EXPECT_TRUE(c->has_sinks());
    ASSERT_EQ(c->emails.size(), 3u);
    const auto& m = c->emails[0];
    EXPECT_EQ(m.host, "smtp.example.com");
    EXPECT_EQ(m.tls, smtp_tls::starttls);
    EXPECT_EQ(m.username, "keyrotd");
    EXPECT_EQ(m.password_file, fs::path("/run/credentials/keyrotd/smtp"));
    EXPECT_TRUE(m.to_developer);
    EXPECT_EQ(m.to, std::vector<std::string>{"ops@api.example.com"});
    EXPECT_EQ(m.subject_file, fs::path("subject.txt"));
    EXPECT_EQ(m.filter.events, std::vector<std::string>{"key.rotated"});
    EXPECT_EQ(m.timeout, 20 * k_second);
    EXPECT_EQ(c->emails[1].tls, smtp_tls::implicit);
    EXPECT_FALSE(c->emails[1].to_developer);
    EXPECT_EQ(c->emails[2].tls, smtp_tls::none);
    EXPECT_EQ(c->emails[2].timeout, 30 * k_second);
}

TEST(NotifyEmailConfig, ReportsEveryProblemByField) {
    const auto j = json::parse(R"({
        "webhooks": [{"name": "hub", "url": "https://hooks.example.com/k", "secretFiles": "/s"}],
        "email": {},
        "emails": [{"name": "hub", "url": "http://smtp.example.com", "from": "nobody",
                    "password": "hunter2", "to": ["Ops <ops@example.com>"], "toDeveloper": 1},
                   {"name": "b", "url": "smtp://smtp.example.com", "tls": "none",
                    "from": "k@example.com", "username": "u", "events": ["key.created"],
                    "apps": ["[x"]},
                   {"name": "c", "url": "smtp://u@smtp.example.com/x", "from": "k@example.com",
                    "toDeveloper": false, "timeout": "1h", "portalUrl": "ftp://x"}]})");
    auto c = parse_config(j);
    ASSERT_FALSE(c.ok());
    const auto& m = c.err().message;
    for (const char* want :
         {"notify.email: use emails", "notify.emails[0].name: \"hub\" is used twice",
          "notify.emails[0].url: must start with smtp://", "notify.emails[0].from: required",
          "notify.emails[0].password: put the SMTP password in a file",
          "notify.emails[0].to: not a bare address", "notify.emails[0].toDeveloper: must be",
          "notify.emails[1].tls: plain SMTP is allowed only to a loopback host, not "
          "smtp.example.com",
          "notify.emails[1]: username and passwordFile go together",
          "notify.emails[1].events: unknown event type", "notify.emails[1].apps: bad glob",
          "notify.emails[2].url: must be smtp://host[:port]", "notify.emails[2]: no recipient",
          "notify.emails[2].timeout: at most 5m", "notify.emails[2].portalUrl: must be an http"})
        EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin: " << m;
    EXPECT_EQ(m.find("hunter2"), std::string::npos) << "never repeat a password";
}

TEST(NotifyEmailConfig, MailboxAddresses) {
    EXPECT_EQ(mailbox_address("a@b.example"), "a@b.example");
    EXPECT_EQ(mailbox_address("Key Rot <a@b.example>"), "a@b.example");
    for (const char* bad : {"", "nobody", "@b", "a@", "a@@b", "a b@c", "a@b\r\nBcc: x@y", "x <a@b",
                            "<a@b> x", "a@b,c@d"})
        EXPECT_EQ(mailbox_address(bad), "") << bad;
}

TEST(NotifyEmailSink, StartUpReadsFilesAndNamesThemNeverTheirContent) {
    temp_dir d;
    net::io_context io;
    auto c = mail_config();
    c.password_file = d.path / "password";
    EXPECT_NE(email_sink::create(io.get_executor(), c)
                  .err()
                  .message.find("cannot read passwordFile " + c.password_file.string()),
              std::string::npos);
    write_file(c.password_file, "s3cret-pass\nsecond line\n");
    auto two = email_sink::create(io.get_executor(), c);
    ASSERT_FALSE(two.ok());
    EXPECT_EQ(two.err().message.find("s3cret"), std::string::npos);
    write_file(c.password_file, "s3cret-pass\n");
    c.body_file = d.path / "body.txt";
    write_file(c.body_file, "Hello {{consumerSecret}}");
    auto bad = email_sink::create(io.get_executor(), c);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.err().message.find("unknown name {{consumerSecret}}"), std::string::npos);
    write_file(c.body_file, "Key {{key}} of {{app}}");
    auto ok = email_sink::create(io.get_executor(), c);
    ASSERT_TRUE(ok.ok()) << ok.err().describe();
    EXPECT_EQ(ok.value()->name(), "partner-mail");

    // Whether an event is stored for the sink at all.
    EXPECT_TRUE(ok.value()->wants(make(rotated())));
    auto inactive = rotated();
    inactive.developer_status = "inactive";
    EXPECT_FALSE(ok.value()->wants(make(inactive)));
    c.filter.apps = {"billing-*"};
    auto filtered = email_sink::create(io.get_executor(), c);
    ASSERT_TRUE(filtered.ok());
    EXPECT_FALSE(filtered.value()->wants(make(rotated())));

    auto plain = mail_config();
    plain.tls = smtp_tls::none;
    plain.host = "smtp.example.com";
    plain.host_is_loopback = false;
    EXPECT_FALSE(email_sink::create(io.get_executor(), plain).ok());
}

}  // namespace notify_email_test
