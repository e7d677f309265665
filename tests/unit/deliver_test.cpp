// keyrot::deliver, the pure parts: target names from templates and the
// attribute allow-list, CRC-32C against RFC 3720's vectors, base64, the data
// fields and their digest, config errors, and the request bodies each target
// sends (tests/unit/deliver_loopback_test.cpp drives the targets themselves).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fingerprint.hpp"
#include "deliver/config.hpp"
#include "deliver/crc32c.hpp"
#include "deliver/fields.hpp"
#include "deliver/kube_secret.hpp"
#include "deliver/naming.hpp"
#include "deliver/secret_manager.hpp"
#include "deliver/vault.hpp"

namespace deliver_test {

using namespace keyrot;
using namespace keyrot::deliver;
using nlohmann::json;

namespace {

app demo_app() {
    app a;
    a.organization = "acme-prod";
    a.developer_email = "ana@partner.example.com";
    a.name = "fleet-telemetry";
    a.attributes = {{"keyrotd_target", "team-fleet"},
                    {"evil", "../kube-system/x"},
                    {"outside", "other-team"},
                    {"slash", "team-a/b"},
                    {"dots", "team-.."},
                    {"upper", "team-Fleet"},
                    {"empty", ""}};
    return a;
}

const std::vector<attribute_rule> k_rules = {
    {"keyrotd_target", "team-"}, {"evil", "team-"},  {"outside", "team-"}, {"slash", "team-"},
    {"dots", "team-"},           {"upper", "team-"}, {"empty", "team-"},   {"missing", "team-"}};

payload demo_payload(bool with_previous) {
    payload p;
    p.current = {secret("NEWKEY0123456789abcdefNEWKEY0123456789abcdefABCD"),
                 secret("NEWSECRETxyz0123456789NEWSECRETxyz0123456789ABCD"),
                 as_sys_ms(1795608000000)};  // 2026-11-25T12:00:00Z
    if (with_previous)
        p.previous = key_material{secret("OLDKEY0123456789abcdefOLDKEY0123456789abcdefABCD"),
                                  secret("OLDSECRETxyz0123456789OLDSECRETxyz0123456789ABCD"),
                                  time_or_never::never()};
    return p;
}

}  // namespace

// ---- naming ----

struct name_case {
    const char* tmpl;
    name_kind kind;
    const char* want;        // rendered name; "" with skipped/error below
    bool skipped = false;    // the app lacks the attribute
    const char* error = "";  // substring of the error
};

class RenderName : public ::testing::TestWithParam<name_case> {};

TEST_P(RenderName, Table) {
    const auto& c = GetParam();
    auto r = render_name(c.tmpl, demo_app(), k_rules, c.kind);
    if (*c.error) {
        ASSERT_FALSE(r.ok()) << c.tmpl;
        EXPECT_NE(r.err().message.find(c.error), std::string::npos) << r.err().message;
        EXPECT_EQ(r.err().what, error::kind::config);
        return;
    }
    ASSERT_TRUE(r.ok()) << c.tmpl << ": " << r.err().message;
    if (c.skipped) {
        EXPECT_FALSE(r->has_value()) << c.tmpl;
        return;
    }
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(**r, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Deliver, RenderName,
    ::testing::Values(
        name_case{"apigee-{app}", name_kind::kubernetes_name, "apigee-fleet-telemetry"},
        name_case{"{org}.{app}", name_kind::kubernetes_name, "acme-prod.fleet-telemetry"},
        name_case{"apigee/{developer}/{app}", name_kind::vault_path,
                  "apigee/ana@partner.example.com/fleet-telemetry"},
        name_case{"apigee-{attr:keyrotd_target}", name_kind::kubernetes_name, "apigee-team-fleet"},
        name_case{"apigee/{attr:keyrotd_target}/{app}", name_kind::vault_path,
                  "apigee/team-fleet/fleet-telemetry"},
        name_case{"{{literal}}-{app}", name_kind::vault_path, "", false, "character outside"},
        name_case{"apigee_{app}", name_kind::secret_manager_id, "apigee_fleet-telemetry"},
        // An attribute the app does not have (or has empty): the target does not apply.
        name_case{"x-{attr:missing}", name_kind::kubernetes_name, "", true},
        name_case{"x-{attr:empty}", name_kind::kubernetes_name, "", true},
        // The allow-list: the value must start with the prefix and be one plain segment.
        name_case{"x-{attr:outside}", name_kind::kubernetes_name, "", false,
                  "outside the allowed prefix \"team-\""},
        name_case{"{attr:evil}", name_kind::vault_path, "", false, "outside the allowed prefix"},
        name_case{"apigee/{attr:slash}", name_kind::vault_path, "", false,
                  "character outside [A-Za-z0-9._-]"},
        // "team-.." is one harmless segment; only "." and ".." themselves traverse.
        name_case{"apigee/{attr:dots}/x", name_kind::vault_path, "apigee/team-../x"},
        name_case{"{attr:upper}", name_kind::kubernetes_name, "", false,
                  "not a Kubernetes object name"},
        // Values are never mangled: an e-mail is not a Kubernetes name or a secret id.
        name_case{"apigee-{developer}", name_kind::kubernetes_name, "", false,
                  "not a Kubernetes object name"},
        name_case{"apigee-{developer}", name_kind::secret_manager_id, "", false,
                  "not a Secret Manager secret id"},
        name_case{"{app}/../x", name_kind::vault_path, "", false, "'..' path segment"},
        name_case{"/{app}", name_kind::vault_path, "", false, "empty path segment"},
        name_case{"{app}/", name_kind::vault_path, "", false, "empty path segment"},
        name_case{"{app}..x", name_kind::kubernetes_name, "", false, "not a Kubernetes"},
        name_case{"{attr:keyrotd_target}", name_kind::kubernetes_name, "team-fleet"},
        name_case{"{attr:other}", name_kind::kubernetes_name, "", false,
                  "not in attributeTargets"}));

TEST(DeliverNaming, DotDotAttributeValueIsRefusedWhateverThePrefix) {
    app a = demo_app();
    a.attributes = {{"t", ".."}};
    auto r = render_name("x/{attr:t}", a, {{"t", "."}}, name_kind::vault_path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("'.' or '..'"), std::string::npos) << r.err().message;
}

TEST(DeliverNaming, TeamAppsUseTheTeamAsDeveloper) {
    app a = demo_app();
    a.developer_email.clear();
    a.app_group = "fleet-team";
    auto r = render_name("apigee-{developer}-{app}", a, {}, name_kind::kubernetes_name);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(**r, "apigee-fleet-team-fleet-telemetry");
}

// {team} names a team app's team; a developer's app has no team, so a target
// named by {team} does not apply to it (skipped, and why_not_applied says so).
TEST(DeliverNaming, TeamPlaceholder) {
    app team = demo_app();
    team.developer_email.clear();
    team.app_group = "fleet-team";
    auto r = render_name("apigee-{team}-{app}", team, {}, name_kind::kubernetes_name);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(**r, "apigee-fleet-team-fleet-telemetry");
    EXPECT_EQ(why_not_applied("apigee-{team}-{app}", team), "");
    r = render_name("apigee/{team}/{app}", team, {}, name_kind::vault_path);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(**r, "apigee/fleet-team/fleet-telemetry");
    // A team name that is not a legal name for the kind is refused, never mangled.
    team.app_group = "Fleet Team";
    r = render_name("apigee-{team}", team, {}, name_kind::kubernetes_name);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("not a Kubernetes object name"), std::string::npos);

    const app dev = demo_app();
    r = render_name("apigee-{team}-{app}", dev, {}, name_kind::kubernetes_name);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(why_not_applied("apigee-{team}-{app}", dev),
              "uses {team}, and app fleet-telemetry is a developer's app, not a team's");
    EXPECT_EQ(why_not_applied("{{team}}-{app}", dev), "");  // a literal, not the placeholder
    EXPECT_EQ(why_not_applied("x-{attr:missing}", dev),
              "uses {attr:missing}, and app fleet-telemetry does not have that attribute");
    EXPECT_TRUE(check_template("apigee-{team}", {}).ok());
}

TEST(DeliverNaming, LongNamesAreRefused) {
    EXPECT_EQ(illegal_name(std::string(253, 'a'), name_kind::kubernetes_name), "");
    EXPECT_NE(illegal_name(std::string(254, 'a'), name_kind::kubernetes_name), "");
    // As the API server's IsDNS1123Subdomain: 253 in all, no per-label limit.
    EXPECT_EQ(illegal_name(std::string(64, 'a') + ".b", name_kind::kubernetes_name), "");
    EXPECT_EQ(illegal_name(std::string(255, 'a'), name_kind::secret_manager_id), "");
    EXPECT_NE(illegal_name(std::string(256, 'a'), name_kind::secret_manager_id), "");
    EXPECT_TRUE(is_dns_label("team-a"));
    EXPECT_FALSE(is_dns_label("team_a"));
    EXPECT_FALSE(is_dns_label("-a"));
    EXPECT_FALSE(is_dns_label(std::string(64, 'a')));
}

TEST(DeliverNaming, CheckTemplate) {
    EXPECT_TRUE(check_template("apigee-{app}", {}).ok());
    EXPECT_TRUE(check_template("{attr:keyrotd_target}", k_rules).ok());
    const std::vector<std::pair<const char*, const char*>> bad = {
        {"", "is empty"},
        {"apigee-{ap}", "unknown placeholder {ap}"},
        {"apigee-{app", "unclosed '{'"},
        {"apigee-}", "unbalanced '}'"},
        {"{attr:}", "names no attribute"},
        {"{attr:keyrotd_target}", "not in attributeTargets"},
    };
    for (const auto& [tmpl, why] : bad) {
        auto r = check_template(tmpl, {});
        ASSERT_FALSE(r.ok()) << tmpl;
        EXPECT_NE(r.err().message.find(why), std::string::npos) << tmpl << ": " << r.err().message;
    }
}

// Every dot-separated label is checked, not only the first.
TEST(DeliverNaming, EveryLabelIsChecked) {
    EXPECT_NE(illegal_name("a.b_c", name_kind::kubernetes_name), "");
    EXPECT_NE(illegal_name("a.-b", name_kind::kubernetes_name), "");
    EXPECT_NE(illegal_name("a.", name_kind::kubernetes_name), "");
}

// ---- CRC-32C ----

TEST(DeliverCrc32c, Rfc3720Vectors) {
    // RFC 3720 B.4 "CRC Examples" (the CRC as the 32-bit value, bytes reflected).
    EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
    EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
    std::string inc, dec;
    for (int i = 0; i < 32; ++i) {
        inc += static_cast<char>(i);
        dec += static_cast<char>(31 - i);
    }
    EXPECT_EQ(crc32c(inc), 0x46DD794Eu);
    EXPECT_EQ(crc32c(dec), 0x113FDB5Cu);
    const unsigned char read_pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                        0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                        0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    EXPECT_EQ(crc32c(std::string_view(reinterpret_cast<const char*>(read_pdu), 48)), 0xD9963A56u);
    // The usual check value, and the empty string.
    EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
    EXPECT_EQ(crc32c(""), 0u);
}

TEST(DeliverCrc32c, Incremental) {
    EXPECT_EQ(crc32c("56789", crc32c("1234")), crc32c("123456789"));
}

// ---- fields, digest, base64 ----

TEST(DeliverFields, PayloadFields) {
    const auto without = payload_fields(demo_payload(false));
    ASSERT_EQ(without.size(), 3u);
    EXPECT_EQ(without.at("consumerKey"), demo_payload(false).current.consumer_key);
    EXPECT_EQ(without.at("expiresAt").reveal(), "2026-11-25T12:00:00Z");
    const auto with = payload_fields(demo_payload(true));
    ASSERT_EQ(with.size(), 6u);
    EXPECT_EQ(with.at("previousExpiresAt").reveal(), "never");
    EXPECT_EQ(with.at("previousConsumerSecret"), demo_payload(true).previous->consumer_secret);
    for (const auto& [k, v] : with)
        EXPECT_NE(std::find(field_names().begin(), field_names().end(), k), field_names().end());
    EXPECT_NE(fields_digest(with), fields_digest(without));
    EXPECT_EQ(fields_digest(with), fields_digest(payload_fields(demo_payload(true))));
    EXPECT_EQ(fields_digest(with).size(), 64u);
    EXPECT_EQ(current_key_fingerprint(with), demo_payload(true).fingerprint());
    EXPECT_EQ(demo_payload(true).fingerprint(),
              fingerprint(demo_payload(true).current.consumer_key));
    EXPECT_EQ(demo_payload(false).previous_fingerprint(), "");
}

TEST(DeliverFields, FieldsJsonIsSortedAndComplete) {
    const auto j = json::parse(fields_json(payload_fields(demo_payload(false))));
    EXPECT_EQ(j.dump(), R"({"consumerKey":"NEWKEY0123456789abcdefNEWKEY0123456789abcdefABCD",)"
                        R"("consumerSecret":"NEWSECRETxyz0123456789NEWSECRETxyz0123456789ABCD",)"
                        R"("expiresAt":"2026-11-25T12:00:00Z"})");
}

TEST(DeliverFields, Base64) {
    const std::vector<std::pair<std::string, std::string>> rfc4648 = {{"", ""},
                                                                      {"f", "Zg=="},
                                                                      {"fo", "Zm8="},
                                                                      {"foo", "Zm9v"},
                                                                      {"foob", "Zm9vYg=="},
                                                                      {"fooba", "Zm9vYmE="},
                                                                      {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, enc] : rfc4648) {
        EXPECT_EQ(base64_encode(plain), enc);
        EXPECT_EQ(base64_decode(enc), plain);
    }
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    EXPECT_EQ(base64_decode(base64_encode(all)), all);
    for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg="})
        EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

TEST(DeliverFields, SecretsNeverPrint) {
    const payload p = demo_payload(true);
    EXPECT_EQ(fmt::format("{}", p.current.consumer_key), "***");
}

// ---- config ----

TEST(DeliverConfig, ParsesEveryKind) {
    const json policy = json::parse(R"({
      "name": "partners", "organization": "acme-prod",
      "deliver": [
        {"kind": "kubernetesSecret", "namespace": "team-a", "name": "apigee-{app}",
         "annotations": {"reloader.stakater.com/match": "true"}, "labels": {"team": "a"}},
        {"kind": "vault", "address": "https://vault:8200", "path": "apigee/{developer}/{app}",
         "tokenFile": "/run/secrets/vault-token"},
        {"kind": "vault", "address": "https://vault:8200", "mount": "kv", "path": "x/{app}",
         "kubernetesRole": "keyrotd", "kubernetesAuthMount": "k8s-prod", "caFile": "/ca.pem"},
        {"kind": "secretManager", "project": "acme-prod", "secret": "apigee-{attr:keyrotd_target}",
         "labels": {"team": "a"}}
      ],
      "attributeTargets": {"attribute": "keyrotd_target", "prefix": "team-"}
    })");
    auto c = parse_config(policy);
    ASSERT_TRUE(c.ok()) << c.err().message;
    ASSERT_EQ(c->targets.size(), 4u);
    const auto& k = std::get<kubernetes_secret_config>(c->targets[0]);
    EXPECT_EQ(k.namespace_, "team-a");
    EXPECT_EQ(k.annotations.at("reloader.stakater.com/match"), "true");
    const auto& v = std::get<vault_config>(c->targets[1]);
    EXPECT_EQ(v.mount, "secret");
    EXPECT_EQ(v.token_file, "/run/secrets/vault-token");
    const auto& v2 = std::get<vault_config>(c->targets[2]);
    EXPECT_EQ(v2.kubernetes_mount, "k8s-prod");
    EXPECT_EQ(v2.kubernetes_role, "keyrotd");
    EXPECT_EQ(kind_name(c->targets[3]), "secretManager");
    ASSERT_EQ(c->attribute_rules.size(), 1u);
    EXPECT_EQ(c->attribute_rules[0], (attribute_rule{"keyrotd_target", "team-"}));
}

TEST(DeliverConfig, NoDeliverSectionIsEmpty) {
    auto c = parse_config(json::parse(R"({"name": "p"})"));
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->empty());
}

struct config_case {
    const char* policy;
    const char* error;
};

class DeliverConfigErrors : public ::testing::TestWithParam<config_case> {};

TEST_P(DeliverConfigErrors, Table) {
    auto c = parse_config(json::parse(GetParam().policy));
    ASSERT_FALSE(c.ok()) << GetParam().policy;
    EXPECT_EQ(c.err().what, error::kind::config);
    EXPECT_EQ(c.err().message, GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Deliver, DeliverConfigErrors,
    ::testing::Values(
        config_case{R"({"deliver": {}})", "deliver: must be a list of targets"},
        config_case{R"({"deliver": [1]})", "deliver[0]: must be an object"},
        config_case{R"({"deliver": [{}]})", "deliver[0].kind: is required"},
        config_case{R"({"deliver": [{"kind": "s3"}]})",
                    "deliver[0].kind: \"s3\" is not one of kubernetesSecret, vault, secretManager"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "name": "a"}]})",
                    "deliver[0].namespace: is required"},
        config_case{
            R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "{org}", "name": "a"}]})",
            "deliver[0].namespace: must be a literal namespace name (RFC 1123 label; no "
            "placeholders: RBAC grants keyrotd only the namespaces configured)"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": 3}]})",
                    "deliver[0].name: must be a string"},
        config_case{
            R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x-{ap}"}]})",
            "deliver[0].name: unknown placeholder {ap} (known: {org} {developer} {team} {app} "
            "{attr:NAME})"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x",
                       "annotation": {}}]})",
                    "deliver[0].annotation: unknown field"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x",
                       "annotations": {"a": 1}}]})",
                    "deliver[0].annotations.a: must be a string"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x",
                       "labels": {"app.kubernetes.io/managed-by": "me"}}]})",
                    "deliver[0].labels: must not set the managed-by label (keyrotd sets it)"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x"},
                                    {"kind": "kubernetesSecret", "namespace": "a", "name": "x"}]})",
                    "deliver[1]: names the same place as an earlier target (kubernetesSecret a/x)"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a",
                       "name": "{attr:t}"}]})",
                    "deliver[0].name: {attr:t}: attribute t is not in attributeTargets (an app "
                    "attribute may name a target only inside an allowed prefix)"},
        config_case{
            R"({"deliver": [{"kind": "vault", "address": "http://vault:8200", "path": "a",
                       "tokenFile": "f"}]})",
            "deliver[0].address: plain http:// is allowed only to a loopback host, not vault"},
        config_case{R"({"deliver": [{"kind": "vault", "address": "https://v", "path": "a"}]})",
                    "deliver[0]: needs exactly one of tokenFile and kubernetesRole"},
        config_case{R"({"deliver": [{"kind": "vault", "address": "https://v", "path": "a",
                       "tokenFile": "f", "kubernetesRole": "r"}]})",
                    "deliver[0]: needs exactly one of tokenFile and kubernetesRole"},
        config_case{R"({"deliver": [{"kind": "vault", "address": "https://v", "path": "a",
                       "tokenFile": "f", "kubernetesAuthMount": "k"}]})",
                    "deliver[0].kubernetesAuthMount: is used only with kubernetesRole"},
        config_case{R"({"deliver": [{"kind": "vault", "address": "https://v", "path": "a",
                       "mount": "../sys", "tokenFile": "f"}]})",
                    "deliver[0].mount: \"../sys\" has a '.' or '..' path segment"},
        config_case{R"({"deliver": [{"kind": "vault", "address": "https://v", "path": "",
                       "tokenFile": "f"}]})",
                    "deliver[0].path: must not be empty"},
        config_case{R"({"deliver": [{"kind": "secretManager", "project": "Acme", "secret": "a"}]})",
                    "deliver[0].project: must be a literal project id or number ([a-z0-9-], at "
                    "most 30)"},
        config_case{R"({"deliver": [{"kind": "secretManager", "project": "acme"}]})",
                    "deliver[0].secret: is required"},
        config_case{R"({"deliver": [{"kind": "secretManager", "project": "acme", "secret": "a",
                       "labels": {"Team": "a"}}]})",
                    "deliver[0].labels.Team: is not a Google label key ([a-z][a-z0-9_-]{0,62})"},
        config_case{R"({"deliver": [{"kind": "secretManager", "project": "acme", "secret": "a",
                       "labels": {"team": "A b"}}]})",
                    "deliver[0].labels.team: is not a Google label value ([a-z0-9_-]{0,63})"},
        config_case{R"({"deliver": [{"kind": "kubernetesSecret", "namespace": "a", "name": "x",
                       "labels": {"team": "-a"}}]})",
                    "deliver[0].labels.team: is not a Kubernetes label value"},
        config_case{R"({"attributeTargets": {"attribute": "t"}})",
                    "attributeTargets.prefix: is required"},
        config_case{R"({"attributeTargets": {"attribute": "t", "prefix": ""}})",
                    "attributeTargets.prefix: must not be empty"},
        config_case{R"({"attributeTargets": [{"attribute": "t", "prefix": "a-"},
                                             {"attribute": "t", "prefix": "b-"}]})",
                    "attributeTargets[1].attribute: t is listed twice"},
        config_case{R"({"attributeTargets": {"attribute": "t", "prefix": "a-", "x": 1}})",
                    "attributeTargets.x: unknown field"}));

// ---- request bodies ----

TEST(DeliverBodies, SecretCreate) {
    kube_secret_place place{
        "team-a", "apigee-fleet", {{"reloader.stakater.com/match", "true"}}, {{"team", "a"}}};
    const auto j = json::parse(secret_create_body(place, payload_fields(demo_payload(true))));
    EXPECT_EQ(j["kind"], "Secret");
    EXPECT_EQ(j["type"], "Opaque");
    EXPECT_EQ(j["metadata"]["name"], "apigee-fleet");
    EXPECT_EQ(j["metadata"]["namespace"], "team-a");
    EXPECT_EQ(j["metadata"]["labels"]["app.kubernetes.io/managed-by"], "keyrotd");
    EXPECT_EQ(j["metadata"]["labels"]["team"], "a");
    EXPECT_EQ(j["metadata"]["annotations"]["reloader.stakater.com/match"], "true");
    EXPECT_FALSE(j["metadata"].contains("resourceVersion"));
    EXPECT_EQ(j["data"].size(), 6u);
    EXPECT_EQ(base64_decode(j["data"]["consumerKey"].get<std::string>()),
              demo_payload(true).current.consumer_key.reveal());
    EXPECT_EQ(base64_decode(j["data"]["previousExpiresAt"].get<std::string>()), "never");
}

TEST(DeliverBodies, SecretUpdateKeepsOthersAndDropsStalePrevious) {
    kube_secret_place place{"team-a", "s", {{"note", "x"}}, {}};
    const json current = json::parse(secret_create_body(place, payload_fields(demo_payload(true))));
    json read = current;
    read["metadata"]["resourceVersion"] = "4711";
    read["metadata"]["labels"]["gitops"] = "yes";
    read["data"]["ca.crt"] = base64_encode("PEM");
    auto view = read_secret(read);
    ASSERT_TRUE(view.ok());
    EXPECT_TRUE(view->owned);
    EXPECT_EQ(view->resource_version, "4711");
    EXPECT_EQ(view->fields.size(), 6u) << "ca.crt is not keyrotd's";
    EXPECT_TRUE(metadata_in_place(read, place));

    const auto j =
        json::parse(secret_update_body(read, place, payload_fields(demo_payload(false))));
    EXPECT_EQ(j["metadata"]["resourceVersion"], "4711");
    EXPECT_EQ(j["metadata"]["labels"]["gitops"], "yes");
    EXPECT_EQ(j["metadata"]["labels"]["app.kubernetes.io/managed-by"], "keyrotd");
    EXPECT_EQ(j["data"]["ca.crt"], base64_encode("PEM"));
    EXPECT_FALSE(j["data"].contains("previousConsumerKey"));
    EXPECT_EQ(j["data"].size(), 4u);

    json other = read;
    other["metadata"]["annotations"] = json::object();
    EXPECT_FALSE(metadata_in_place(other, place));
    other["metadata"]["labels"].erase("app.kubernetes.io/managed-by");
    EXPECT_FALSE(read_secret(other)->owned);
    other["data"]["consumerKey"] = "***not base64***";
    EXPECT_FALSE(read_secret(other).ok());
}

TEST(DeliverBodies, Vault) {
    const json existing = {
        {"consumerKey", "old"}, {"previousConsumerKey", "older"}, {"note", "kept"}};
    const auto j = json::parse(vault_write_body(existing, payload_fields(demo_payload(false)), 7));
    EXPECT_EQ(j["options"]["cas"], 7);
    EXPECT_EQ(j["data"]["note"], "kept");
    EXPECT_EQ(j["data"]["consumerKey"], demo_payload(false).current.consumer_key.reveal());
    EXPECT_FALSE(j["data"].contains("previousConsumerKey"));
    EXPECT_EQ(json::parse(vault_write_body(json(), payload_fields(demo_payload(true)),
                                           0))["options"]["cas"],
              0);
    EXPECT_EQ(json::parse(vault_metadata_body()),
              json::parse(R"({"custom_metadata": {"managed-by": "keyrotd"}})"));
    EXPECT_EQ(json::parse(vault_login_body("keyrotd", "jwt")),
              json::parse(R"({"role": "keyrotd", "jwt": "jwt"})"));
    EXPECT_TRUE(
        vault_owned(json::parse(R"({"data": {"custom_metadata": {"managed-by": "keyrotd"}}})")));
    EXPECT_FALSE(vault_owned(json::parse(R"({"data": {"custom_metadata": null}})")));
    EXPECT_FALSE(
        vault_owned(json::parse(R"({"data": {"custom_metadata": {"managed-by": "tf"}}})")));
    EXPECT_EQ(vault_error_text(
                  R"({"errors": ["check-and-set parameter did not match the current version"]})"),
              "check-and-set parameter did not match the current version");
    EXPECT_EQ(vault_error_text("<html>"), "");
}

TEST(DeliverBodies, SecretManager) {
    const auto create = json::parse(sm_create_body({"acme", "s", {{"team", "a"}}}));
    EXPECT_EQ(create["replication"], json::parse(R"({"automatic": {}})"));
    EXPECT_EQ(create["labels"]["managed-by"], "keyrotd");
    EXPECT_EQ(create["labels"]["team"], "a");
    EXPECT_TRUE(sm_owned(create));

    const std::string text = fields_json(payload_fields(demo_payload(true)));
    const auto add = json::parse(sm_add_version_body(text));
    EXPECT_EQ(base64_decode(add["payload"]["data"].get<std::string>()), text);
    EXPECT_EQ(add["payload"]["dataCrc32c"], std::to_string(crc32c(text)))
        << "int64 in JSON is a decimal string";

    EXPECT_EQ(
        json::parse(sm_aliases_body({{"current", "3"}, {"previous", "2"}}, "\"e1\"")),
        json::parse(R"({"versionAliases": {"current": "3", "previous": "2"}, "etag": "\"e1\""})"));
    EXPECT_EQ(json::parse(sm_aliases_body({}, "")), json::parse(R"({"versionAliases": {}})"));

    EXPECT_EQ(sm_version_number("projects/123/secrets/s/versions/17"), "17");
    EXPECT_EQ(sm_version_number("projects/123/secrets/s/versions/latest"), "");
    EXPECT_EQ(sm_version_number("17"), "");

    using aliases = std::map<std::string, std::string>;
    EXPECT_EQ(sm_next_aliases({}, "1", false), (aliases{{"current", "1"}}));
    EXPECT_EQ(sm_next_aliases({{"current", "1"}, {"mine", "1"}}, "2", true),
              (aliases{{"current", "2"}, {"previous", "1"}, {"mine", "1"}}));
    EXPECT_EQ(sm_next_aliases({{"current", "2"}, {"previous", "1"}}, "2", true),
              (aliases{{"current", "2"}, {"previous", "1"}}))
        << "putting the same version again keeps previous";
    EXPECT_EQ(sm_next_aliases({{"current", "2"}, {"previous", "1"}}, "3", false),
              (aliases{{"current", "3"}}));

    json access = {
        {"name", "projects/1/secrets/s/versions/4"},
        {"payload", {{"data", base64_encode(text)}, {"dataCrc32c", std::to_string(crc32c(text))}}}};
    auto v = sm_read_access(access);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->version, "4");
    EXPECT_TRUE(v->checksum_ok);
    EXPECT_EQ(v->digest, fields_digest(payload_fields(demo_payload(true))));
    EXPECT_EQ(v->key, demo_payload(true).fingerprint());
    access["payload"]["dataCrc32c"] = std::to_string(crc32c(text) ^ 1u);
    EXPECT_FALSE(sm_read_access(access)->checksum_ok);
}

}  // namespace deliver_test
