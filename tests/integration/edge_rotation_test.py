#!/usr/bin/env python3
"""keyrotd against the emulator's Apigee Edge flavor (apigee.flavor: edge), over
real HTTP: developer apps rotate with method generate (company apps, which
have no generate-key call on Edge, are left alone by it and a generate policy
for them is refused); developer and company apps rotate by age with method
import and keys that never expire (keys/create takes no expiry), and their
revoked keys are deleted (deleteRevokedAfter, Edge's listing); through
Basic auth and through the Edge login server's OAuth password grant with an
MFA code (TOTP); the org app list pages by inclusive startKey (small rows, so
several pages); Edge Public Cloud and Private Cloud. validate refuses what
cannot work on Edge. Run by ctest (tests/integration/rotation.cmake) under both
emulator profiles."""
import json
import os
import sys
import time
import unittest

import harness as h

DEV = "dev@partner.example.com"
OTHER = "ops@partner.example.com"
USER = "edge-admin@example.com"
PASSWORD = "edge-pw-Secr3t"
MFA_SEED = "JBSWY3DPEHPK3PXP"


def seed():
    key_attrs = [{"name": "env", "value": "prod"}]

    def app(name, key, expires="+2d", issued="-28d", dev=DEV, company=None):
        a = {"name": name, "status": "approved",
             "attributes": [{"name": "Notes", "value": "keep me"}, {"name": "tier", "value": "gold"}],
             "callbackUrl": "https://%s.example.com/cb" % name, "scopes": [],
             "credentials": [{
                 "consumerKey": key, "consumerSecret": key + "-SECRET",
                 "status": "approved", "issuedAt": issued, "expiresAt": expires,
                 "attributes": key_attrs, "scopes": [],
                 "apiProducts": [{"apiproduct": "payments", "status": "approved"},
                                 {"apiproduct": "admin", "status": "pending"}]}]}
        if company:
            a["companyName"] = company
        else:
            a["developerEmail"] = dev
        return a

    apps = [app("shop", "SHOPkey0000000000000000000000001"),
            app("fresh", "FRESHkey000000000000000000000001", expires="+60d", issued="-1d"),
            app("b2b", "B2Bkey00000000000000000000000001", company="partner-blue"),
            app("b2b-idle", "IDLEkey0000000000000000000000001", company="partner-gone")]
    # Enough apps for several pages of 3 rows.
    for i in range(5):
        apps.append(app("bulk-%d" % i, "BULKkey%025d" % i, dev=OTHER, expires="+60d", issued="-1d"))
    for i, a in enumerate(apps):
        a["appId"] = "app-%03d" % (i * 7 % len(apps))  # list order differs from seed order
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "Pat", "lastName": "Ner", "userName": "pat",
                            "status": "active", "developerId": "dev-id-pat"},
                           {"email": OTHER, "firstName": "Op", "lastName": "S", "userName": "ops",
                            "status": "active", "developerId": "dev-id-ops"}],
            "companies": [{"name": "partner-blue", "status": "active"},
                          {"name": "partner-gone", "status": "inactive"}],
            "apiProducts": [{"name": "payments", "approvalType": "auto"},
                            {"name": "admin", "approvalType": "manual"}],
            "apps": apps}


def policy(method="generate", companies=False):
    match = {"developers": ["*"]}
    if companies:
        match["appGroups"] = ["partner-*"]
    return {"name": "edge", "organization": "demo", "match": match,
            "rotation": {"keyLifetime": "30d", "rotateBefore": "7d", "overlap": "3s",
                         "method": method}}


def import_policy():
    """Keys that never expire, rotated by age: developer and company apps."""
    return {"name": "edge-import", "organization": "demo",
            "match": {"developers": ["*"], "appGroups": ["partner-*"]},
            "rotation": {"method": "import", "keyLifetime": "never", "maxAge": "20d",
                         "rotateBefore": "7d", "overlap": "3s", "deleteRevokedAfter": "1s"}}


def successors_of(app, old_fp):
    return [c for c in app.get("credentials", [])
            if any(a["name"] == "keyrotd_replaces" and a["value"] in (old_fp, "pending:" + old_fp)
                   for a in c.get("attributes", []))]


class EdgeRotation:
    """The cases; mixed into one TestCase per cloud and auth method."""
    private_cloud = False
    oauth = False

    def setUp(self):
        self.dir = h.tmpdir()
        extra = ["--flavor", "edge", "--edge-user", USER, "--edge-password", PASSWORD]
        if self.private_cloud:
            extra.append("--private-cloud")
        if self.oauth:
            extra += ["--mfa-seed", MFA_SEED]
        self.emu = h.Emulator(self.dir, seed(), extra)
        edge = "{cloud: %s, appListRows: 3}" % ("private" if self.private_cloud else "public")
        if self.oauth:
            with open(os.path.join(self.dir, "edge-password"), "w") as f:
                f.write(PASSWORD + "\n")
            with open(os.path.join(self.dir, "edge-mfa-seed"), "w") as f:
                f.write(MFA_SEED + "\n")
            auth = ("{method: edge-oauth, tokenUrl: '%s/oauth/token', user: '%s', "
                    "passwordFile: edge-password, mfaSeedFile: edge-mfa-seed}"
                    % (self.emu.url, USER))
        else:
            os.environ["KEYROT_EDGE_USER"] = USER
            os.environ["KEYROT_EDGE_PASSWORD"] = PASSWORD
            auth = "{method: basic, userEnv: KEYROT_EDGE_USER, passwordEnv: KEYROT_EDGE_PASSWORD}"
        # The harness writes apigee: {url, auth, ...}; flavor and edge ride along.
        self.k = h.Keyrotd(self.dir, self.emu.url, [policy()],
                           auth=auth + "\n  flavor: edge\n  edge: " + edge)

    def tearDown(self):
        self.emu.stop()
        for out in self.k.outputs:  # no secret in any output
            for s in (PASSWORD, MFA_SEED, "SHOPkey0000000000000000000000001-SECRET"):
                self.assertNotIn(s, out)
        h.rmtree(self.dir)

    def app(self, name):
        apps = [a for a in self.emu.state()["apps"] if a["name"] == name]
        self.assertEqual(len(apps), 1, name)
        return apps[0]

    def test_generate_rotates_developer_apps(self):
        shop0, b2b0 = self.app("shop"), self.app("b2b")
        idle0, fresh0 = self.app("b2b-idle"), self.app("fresh")
        r = self.k.run("plan", "--json")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        plan = json.loads(r.stdout)
        self.assertEqual(sorted((p.get("team") or p.get("developer"), p["app"], p["action"])
                                for p in plan),
                         [(DEV, "shop", "create")], plan)
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.app("b2b"), b2b0, "company app: left alone")
        for before in (shop0,):
            after = self.app(before["name"])
            old = before["credentials"][0]
            succ = successors_of(after, h.fp(old["consumerKey"]))
            self.assertEqual(len(succ), 1, after)
            s = succ[0]
            self.assertIn({"name": "keyrotd_replaces", "value": h.fp(old["consumerKey"])},
                          s["attributes"])
            self.assertIn({"name": "env", "value": "prod"}, s["attributes"])
            self.assertEqual({p["apiproduct"]: p["status"] for p in s["apiProducts"]},
                             {"payments": "approved", "admin": "pending"})
            self.assertGreater(int(s["expiresAt"]), int(old["expiresAt"]))
            # generate replaced nothing of the app's that keyrotd did not put back
            self.assertEqual(after["attributes"], before["attributes"])
            self.assertEqual(after["callbackUrl"], before["callbackUrl"])
        self.assertEqual(self.app("b2b-idle"), idle0)
        self.assertEqual(self.app("fresh"), fresh0)
        time.sleep(3.5)  # the overlap
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for before in (shop0,):
            states = {c["consumerKey"]: c["status"] for c in self.app(before["name"])["credentials"]}
            self.assertEqual(states[before["credentials"][0]["consumerKey"]], "revoked")
            self.assertEqual(sorted(states.values()), ["approved", "revoked"])
        audit = self.k.audit()
        self.assertEqual([(a["app"], a["action"]) for a in audit],
                         [("shop", act) for act in ("created", "completed", "revoked")], audit)
        for a in audit:
            self.assertEqual((a.get("team", ""), a["developer"]), ("", DEV), a)
        # A third pass has nothing to do: every app was seen (several pages).
        self.emu.reset_counters()
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.emu.writes(), 0)
        # 9 apps, 3 rows, pages overlapping by one: 4 pages and the one that
        # brings nothing new (a page short of rows does not end the list).
        self.assertEqual(self.emu.reads().get("GET /v1/organizations/{org}/apps"), 5,
                         self.emu.reads())
        if self.oauth:
            tokens = self.emu.hook("tokens")
            self.assertGreaterEqual(tokens.get("edgeTokenRequests", 0), 1, tokens)
            self.assertEqual(tokens.get("edgeTokenErrors", 0), 0, tokens)

    def test_import_rotates_developer_and_company_apps_by_age(self):
        self.k.set_policies([import_policy()])
        before = {n: self.app(n) for n in ("shop", "b2b", "b2b-idle", "fresh")}
        r = self.k.run("plan", "--json")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        plan = json.loads(r.stdout)
        self.assertEqual(sorted((p.get("team") or p.get("developer"), p["app"], p["action"])
                                for p in plan),
                         [(DEV, "shop", "create"), ("partner-blue", "b2b", "create")], plan)
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name in ("shop", "b2b"):
            after, old = self.app(name), before[name]["credentials"][0]
            succ = successors_of(after, h.fp(old["consumerKey"]))
            self.assertEqual(len(succ), 1, after)
            s = succ[0]
            self.assertIn({"name": "keyrotd_replaces", "value": h.fp(old["consumerKey"])},
                          s["attributes"])
            self.assertIn({"name": "env", "value": "prod"}, s["attributes"])
            self.assertEqual({p["apiproduct"]: p["status"] for p in s["apiProducts"]},
                             {"payments": "approved", "admin": "pending"})
            self.assertEqual(int(s["expiresAt"]), -1, "an imported key never expires on Edge")
            # An import does not touch the app itself.
            self.assertEqual(after["attributes"], before[name]["attributes"])
            self.assertEqual(after["callbackUrl"], before[name]["callbackUrl"])
        self.assertEqual(self.app("b2b-idle"), before["b2b-idle"], "inactive company: left alone")
        self.assertEqual(self.app("fresh"), before["fresh"])
        # The forecast names the company app's next rotation, by age.
        r = self.k.run("plan", "--within", "30d", "--json")
        self.assertIn(r.returncode, (0, 2), r.stdout + r.stderr)
        ahead = [p for p in json.loads(r.stdout) if p.get("forecast")]
        self.assertIn(("partner-blue", "b2b", "create"),
                      [(p.get("team"), p["app"], p["action"]) for p in ahead], ahead)
        time.sleep(3.5)  # the overlap
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name in ("shop", "b2b"):
            old_key = before[name]["credentials"][0]["consumerKey"]
            states = {c["consumerKey"]: c["status"] for c in self.app(name)["credentials"]}
            self.assertEqual(states[old_key], "revoked")
            self.assertEqual(sorted(states.values()), ["approved", "revoked"])
        time.sleep(1.5)  # deleteRevokedAfter: Edge's listing brings the revoked keys
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name in ("shop", "b2b"):
            keys = [c["consumerKey"] for c in self.app(name)["credentials"]]
            self.assertEqual(len(keys), 1, keys)
            self.assertNotIn(before[name]["credentials"][0]["consumerKey"], keys)
        audit = self.k.audit()
        got = sorted((a.get("team", "") or a["developer"], a["app"], a["action"]) for a in audit)
        want = sorted((who, app, act) for who, app in ((DEV, "shop"), ("partner-blue", "b2b"))
                      for act in ("created", "completed", "revoked", "deleted"))
        self.assertEqual(got, want, audit)
        # Nothing left to do.
        self.emu.reset_counters()
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.emu.writes(), 0)

    def test_validate_refuses_what_edge_cannot_do(self):
        self.k.set_policies([policy("import")])
        r = self.k.run("validate")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Edge cannot set an expiry on an imported key", r.stderr)
        r = self.k.run("once")
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.k.set_policies([policy(companies=True)])
        r = self.k.run("validate")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("no generate-key call for company apps", r.stderr)
        self.k.set_policies([import_policy()])
        r = self.k.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.k.set_policies([policy()])
        r = self.k.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class EdgePublicBasicTest(EdgeRotation, unittest.TestCase):
    pass


class EdgePublicOAuthTest(EdgeRotation, unittest.TestCase):
    oauth = True


class EdgePrivateBasicTest(EdgeRotation, unittest.TestCase):
    private_cloud = True


class EdgePrivateOAuthTest(EdgeRotation, unittest.TestCase):
    private_cloud = True
    oauth = True


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
