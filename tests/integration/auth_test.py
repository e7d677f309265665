#!/usr/bin/env python3
"""keyrotd's auth methods end to end against the Apigee emulator: `google` with
a service-account key file (GOOGLE_APPLICATION_CREDENTIALS, systemd's
$CREDENTIALS_DIRECTORY) and through the GCE metadata server (GCE_METADATA_HOST),
token-file, token-env, basic and none; short-lived tokens renewed mid-run; a
wrong token, a key the token endpoint does not know, a metadata server that is
down. The emulator checks the JWT (RS256 signature, iss, aud, scope, iat/exp).
No token, private key or JWT may appear in any keyrotd output. Run by ctest
(tests/integration/auth.cmake). Standard library + the `openssl` CLI."""
import base64
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import warnings

import harness as h

warnings.simplefilter("ignore", ResourceWarning)

DEV = "dev@partner.example.com"
SA_EMAIL = "keyrotd@test-project.iam.gserviceaccount.com"
STATIC_TOKEN = "static-token-Zq9xV3mK7pL2"
BASIC_USER, BASIC_PASS = "edge-admin", "pa55-W0rd-qZ81x"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUTH_ENV = ("GOOGLE_APPLICATION_CREDENTIALS", "CREDENTIALS_DIRECTORY", "GCE_METADATA_HOST",
            "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def seed(expiries=("+2d",)):
    apps = []
    for i, exp in enumerate(expiries):
        apps.append({"developerEmail": DEV, "name": "app-%02d" % i,
                     "credentials": [{"consumerKey": "AUTHkey%025d" % i,
                                      "consumerSecret": "AUTHsecret%022d" % i,
                                      "issuedAt": "-28d", "expiresAt": exp,
                                      "apiProducts": ["payments"]}]})
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "Pat", "lastName": "Ner",
                            "userName": "pat"}],
            "apiProducts": [{"name": "payments"}], "apps": apps}


def make_key(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", path], check=True, capture_output=True)
    return open(path).read()


def write_sa(path, pem, token_uri=None, email=SA_EMAIL):
    doc = {"type": "service_account", "project_id": "test-project",
           "private_key_id": "0123456789abcdef", "private_key": pem, "client_email": email,
           "client_id": "1234567890"}
    if token_uri:
        doc["token_uri"] = token_uri
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o600)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class AuthBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keydir = h.tmpdir()
        cls.key_pem = make_key(os.path.join(cls.keydir, "sa.pem"))
        cls.other_pem = make_key(os.path.join(cls.keydir, "other.pem"))

    @classmethod
    def tearDownClass(cls):
        h.rmtree(cls.keydir)

    def setUp(self):
        self.dir = h.tmpdir()
        self.emus = []
        self.outputs = []
        # The emulator knows only the public half; it reads it from a key file
        # without token_uri (its own URL is an accepted audience).
        self.sa_emu = os.path.join(self.dir, "sa-emulator.json")
        write_sa(self.sa_emu, self.key_pem)

    def tearDown(self):
        try:
            self.check_no_secrets()
        finally:
            for e in self.emus:
                e.stop()
            h.rmtree(self.dir)

    def emulator(self, expiries=("+2d",), ttl=None, auth=True):
        extra = []
        if auth:
            extra += ["--service-account", self.sa_emu, "--token", STATIC_TOKEN,
                      "--basic", "%s:%s" % (BASIC_USER, BASIC_PASS)]
        if ttl:
            extra += ["--token-ttl", str(ttl)]
        d = os.path.join(self.dir, "emu%d" % len(self.emus))
        os.makedirs(d)
        e = h.Emulator(d, seed(expiries), extra=extra)
        self.emus.append(e)
        return e

    def keyrotd(self, emu, auth, name="k", **kw):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        kw.setdefault("extra_config", "log: {level: debug, format: text}\n")
        pol = h.policy(lifetime="30d", before=kw.pop("before", "7d"), overlap="1h")
        return h.Keyrotd(d, emu.url, [pol], auth=auth, **kw)

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
        env.update(extra)
        return env

    def once(self, k, env, *args):
        r = subprocess.run([h.KEYROTD, "once", "-c", k.config, *args], capture_output=True,
                           text=True, timeout=120, cwd=k.dir, env=env)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def rotated(self, emu, app="app-00"):
        creds = emu.app(DEV, app)["credentials"]
        return [c for c in creds
                if any(a["name"] == "keyrotd_replaces" for a in c.get("attributes", []))]

    def key_file_for(self, emu, path=None, pem=None, email=SA_EMAIL):
        path = path or os.path.join(self.dir, "sa-key.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_sa(path, pem or self.key_pem, emu.url + "/token", email)
        return path

    def check_no_secrets(self):
        text = "\n".join(self.outputs)
        for k in getattr(self, "extra_outputs", []):
            text += "\n" + k
        secrets = [STATIC_TOKEN, BASIC_PASS, "eyJhbGciOiJSUzI1NiIs",  # a JWT's header
                   base64.b64encode(("%s:%s" % (BASIC_USER, BASIC_PASS)).encode()).decode()]
        for e in self.emus:
            if e.proc.poll() is None:
                secrets += [t["token"] for t in e.hook("tokens")["issued"]]
        for pem in (self.key_pem, self.other_pem):
            body = [l for l in pem.splitlines() if l and not l.startswith("-----")]
            secrets += [l for l in body if len(l) >= 40]
            # As it sits in the JSON key file, with escaped newlines.
            secrets.append("\\n".join(body[:2]))
        for s in secrets:
            self.assertNotIn(s, text, "a secret leaked into keyrotd's output")

    def assert_clean_failure(self, r, *words):
        out = r.stdout + r.stderr
        if os.environ.get("AUTH_TEST_SHOW"):
            print("\n--- exit %d:\n%s" % (r.returncode, out[-1500:]))
        self.assertNotEqual(r.returncode, 0, out)
        self.assertGreater(r.returncode, 0, "killed by a signal: " + out)
        self.assertLess(r.returncode, 128, out)
        for w in words:
            self.assertIn(w, out)


class GoogleTest(AuthBase):
    def test_key_file_via_google_application_credentials(self):
        emu = self.emulator()
        path = self.key_file_for(emu)
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GOOGLE_APPLICATION_CREDENTIALS=path))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)
        t = emu.hook("tokens")
        self.assertGreaterEqual(t["tokenRequests"], 1)
        self.assertEqual(t["tokenErrors"], 0)
        self.assertEqual(t["rejected"], 0)
        self.assertGreaterEqual(t["acceptedIssued"], 1)
        self.assertEqual({i["source"] for i in t["issued"]}, {"jwt:" + SA_EMAIL})

    def test_key_file_via_credentials_directory(self):
        emu = self.emulator()
        creds = os.path.join(self.dir, "credentials")
        self.key_file_for(emu, os.path.join(creds, "sa-key.json"))
        os.chmod(creds, 0o500)
        k = self.keyrotd(emu, "{method: google}")
        # A metadata host that would fail proves the key file was taken first.
        r = self.once(k, self.env(CREDENTIALS_DIRECTORY=creds, GCE_METADATA_HOST="127.0.0.1:1"))
        os.chmod(creds, 0o700)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)
        t = emu.hook("tokens")
        self.assertGreaterEqual(t["tokenRequests"], 1)
        self.assertEqual(t["metadataRequests"], 0)

    def test_google_application_credentials_wins_over_credentials_directory(self):
        emu = self.emulator()
        good = self.key_file_for(emu)
        creds = os.path.join(self.dir, "credentials")
        self.key_file_for(emu, os.path.join(creds, "sa-key.json"), pem=self.other_pem)
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GOOGLE_APPLICATION_CREDENTIALS=good, CREDENTIALS_DIRECTORY=creds))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_metadata_server(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GCE_METADATA_HOST="127.0.0.1:%d" % emu.port,
                                  CREDENTIALS_DIRECTORY=os.path.join(self.dir, "nothing-here")))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)
        t = emu.hook("tokens")
        self.assertGreaterEqual(t["metadataRequests"], 1)
        self.assertEqual(t["metadataErrors"], 0)
        self.assertEqual(t["tokenRequests"], 0)
        self.assertEqual({i["source"] for i in t["issued"]}, {"metadata"})

    def test_metadata_server_down(self):
        emu = self.emulator()
        emu.hook("faults", {"metadataDown": True})
        k = self.keyrotd(emu, "{method: google}")
        t0 = time.time()
        r = self.once(k, self.env(GCE_METADATA_HOST="127.0.0.1:%d" % emu.port))
        self.assert_clean_failure(r, "metadata server", "503")
        self.assertLess(time.time() - t0, 60)
        self.assertEqual(self.rotated(emu), [])
        self.assertEqual(emu.writes(), 0)

    def test_metadata_server_unreachable(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GCE_METADATA_HOST="127.0.0.1:1"))
        self.assert_clean_failure(r, "metadata server")
        self.assertEqual(self.rotated(emu), [])

    def test_unknown_key_is_refused_by_the_token_endpoint(self):
        emu = self.emulator()
        path = self.key_file_for(emu, pem=self.other_pem)  # signed with a key it does not know
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GOOGLE_APPLICATION_CREDENTIALS=path))
        self.assert_clean_failure(r, "invalid_grant", SA_EMAIL)
        self.assertEqual(self.rotated(emu), [])
        self.assertGreaterEqual(emu.hook("tokens")["tokenErrors"], 1)

    def test_missing_key_file_is_a_config_error(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: google}")
        r = self.once(k, self.env(GOOGLE_APPLICATION_CREDENTIALS=os.path.join(self.dir, "nope.json")))
        self.assert_clean_failure(r, "nope.json", "cannot read service-account key file")


class StaticMethodsTest(AuthBase):
    def test_token_file(self):
        emu = self.emulator()
        path = os.path.join(self.dir, "token")
        with open(path, "w") as f:
            f.write(STATIC_TOKEN + "\n")
        k = self.keyrotd(emu, "{method: token-file, path: %s}" % path)
        r = self.once(k, self.env())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)
        self.assertEqual(emu.hook("tokens")["rejected"], 0)

    def test_token_env(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: token-env, env: APIGEE_TOKEN}")
        r = self.once(k, self.env(APIGEE_TOKEN=STATIC_TOKEN))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)

    def test_basic(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: basic, userEnv: EDGE_USER, passwordEnv: EDGE_PASS}")
        r = self.once(k, self.env(EDGE_USER=BASIC_USER, EDGE_PASS=BASIC_PASS))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)
        self.assertEqual(emu.hook("tokens")["rejected"], 0)
        r = self.once(k, self.env(EDGE_USER=BASIC_USER, EDGE_PASS=BASIC_PASS + "x"))
        self.assert_clean_failure(r, "401")

    def test_none(self):
        emu = self.emulator(auth=False)
        k = self.keyrotd(emu, "{method: none}")
        r = self.once(k, self.env())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.rotated(emu)), 1)

    def test_none_against_a_server_that_wants_credentials(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: none}")
        r = self.once(k, self.env())
        self.assert_clean_failure(r, "401")
        self.assertEqual(self.rotated(emu), [])

    def test_wrong_token(self):
        emu = self.emulator()
        k = self.keyrotd(emu, "{method: token-env, env: APIGEE_TOKEN}")
        r = self.once(k, self.env(APIGEE_TOKEN="wrong-" + STATIC_TOKEN[::-1]))
        self.assert_clean_failure(r, "401")
        self.assertEqual(self.rotated(emu), [])
        self.assertEqual(emu.writes(), 0)
        r = self.once(k, self.env())  # unset
        self.assert_clean_failure(r, "APIGEE_TOKEN")


class ExpiryTest(AuthBase):
    """Tokens live 3 s; `keyrotd run` keeps rotating for longer than that."""

    def run_daemon(self, env, emu, k, seconds):
        out = open(os.path.join(self.dir, "run.log"), "w+")
        p = subprocess.Popen([h.KEYROTD, "run", "-c", k.config], stdout=out,
                             stderr=subprocess.STDOUT, cwd=k.dir, env=env)
        time.sleep(seconds)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        out.seek(0)
        text = out.read()
        out.close()
        self.outputs.append(text)
        return rc, text

    def check_rotations_after_expiry(self, emu, k, env, source_count_key):
        # Keys become due 2, 6 and 10 s from now (rotateBefore 10s).
        t0 = time.time()
        rc, text = self.run_daemon(env, emu, k, 14)
        self.assertEqual(rc, 0, text)
        t = emu.hook("tokens")
        self.assertGreaterEqual(t[source_count_key], 2, t)
        first_expiry = min(i["expiresAt"] for i in t["issued"]) / 1000.0
        self.assertLess(first_expiry, t0 + 8)
        created = [a for a in k.audit() if a["action"] == "created"]
        self.assertEqual(sorted(a["app"] for a in created), ["app-00", "app-01", "app-02"], text)
        for app in ("app-00", "app-01", "app-02"):
            self.assertEqual(len(self.rotated(emu, app)), 1, app)

        def ts(a):
            v = a["ts"]
            if isinstance(v, (int, float)):
                return v / (1000.0 if v > 1e11 else 1.0)
            return time.mktime(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone

        late = [a for a in created if ts(a) > first_expiry]
        self.assertGreaterEqual(len(late), 1, (first_expiry, [a["ts"] for a in created]))
        return t

    def test_key_file_token_renewed_mid_run(self):
        emu = self.emulator(expiries=("+12s", "+16s", "+20s"), ttl=3)
        path = self.key_file_for(emu)
        k = self.keyrotd(emu, "{method: google}", before="10s")
        self.check_rotations_after_expiry(emu, k, self.env(GOOGLE_APPLICATION_CREDENTIALS=path),
                                          "tokenRequests")

    def test_metadata_token_renewed_mid_run(self):
        emu = self.emulator(expiries=("+12s", "+16s", "+20s"), ttl=3)
        k = self.keyrotd(emu, "{method: google}", before="10s")
        self.check_rotations_after_expiry(
            emu, k, self.env(GCE_METADATA_HOST="127.0.0.1:%d" % emu.port), "metadataRequests")


class EmulatorOAuthTest(AuthBase):
    """The emulator's token endpoint checks what Google's does."""

    def jwt(self, pem_path, **claims):
        now = int(time.time())
        c = {"iss": SA_EMAIL, "scope": SCOPE, "aud": self.emu.url + "/token", "iat": now,
             "exp": now + 3600}
        c.update(claims)
        c = {k: v for k, v in c.items() if v is not None}
        head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps(c).encode())
        signing_input = (head + "." + body).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pem_path],
                             input=signing_input, capture_output=True, check=True).stdout
        return head + "." + body + "." + b64url(sig)

    def post_token(self, assertion, grant="urn:ietf:params:oauth:grant-type:jwt-bearer"):
        data = urllib.parse.urlencode({"grant_type": grant, "assertion": assertion}).encode()
        req = urllib.request.Request(self.emu.url + "/token", data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path, headers=()):
        req = urllib.request.Request(self.emu.url + path)
        for k, v in headers:
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_token_endpoint_checks(self):
        self.emu = self.emulator(ttl=2)
        key = os.path.join(self.keydir, "sa.pem")
        other = os.path.join(self.keydir, "other.pem")
        now = int(time.time())
        status, body = self.post_token(self.jwt(key))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 2)
        token = body["access_token"]
        # The token opens /v1 until it expires.
        self.assertEqual(self.get("/v1/organizations/demo",
                                  [("Authorization", "Bearer " + token)])[0], 200)
        cases = [
            (self.jwt(other), "invalid_grant", "Signature"),
            (self.jwt(key, aud="https://oauth2.googleapis.com/token"), "invalid_grant", "audience"),
            (self.jwt(key, scope="https://www.googleapis.com/auth/userinfo.email"),
             "invalid_scope", "scope"),
            (self.jwt(key, scope=None), "invalid_scope", "scope"),
            (self.jwt(key, iat=now - 7200, exp=now - 3600), "invalid_grant", "short-lived"),
            (self.jwt(key, exp=now + 7200), "invalid_grant", "short-lived"),
            (self.jwt(key, iss="someone@else.iam.gserviceaccount.com"), "invalid_grant",
             "account not found"),
            ("not.a-jwt", "invalid_grant", "JWT"),
        ]
        for assertion, err, words in cases:
            status, body = self.post_token(assertion)
            self.assertEqual(status, 400, (assertion[-20:], body))
            self.assertEqual(body["error"], err, body)
            self.assertIn(words, body["error_description"])
        status, body = self.post_token(self.jwt(key), grant="client_credentials")
        self.assertEqual((status, body["error"]), (400, "unsupported_grant_type"))
        # Tampered claims: the signature no longer matches.
        good = self.jwt(key).split(".")
        forged = b64url(json.dumps({"iss": SA_EMAIL, "scope": SCOPE, "aud": self.emu.url + "/token",
                                    "iat": now, "exp": now + 60, "x": 1}).encode())
        status, body = self.post_token(good[0] + "." + forged + "." + good[2])
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))

        time.sleep(2.2)
        status, body = self.get("/v1/organizations/demo", [("Authorization", "Bearer " + token)])
        self.assertEqual(status, 401, body)

    def test_metadata_endpoint(self):
        self.emu = self.emulator()
        path = "/computeMetadata/v1/instance/service-accounts/default/token"
        self.assertEqual(self.get(path)[0], 403)
        status, body = self.get(path, [("Metadata-Flavor", "Google")])
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertGreater(doc["expires_in"], 0)
        self.assertEqual(self.get("/v1/organizations/demo",
                                  [("Authorization", "Bearer " + doc["access_token"])])[0], 200)
        self.assertEqual(self.get("/v1/organizations/demo",
                                  [("Authorization", "Bearer nope")])[0], 401)
        self.emu.hook("faults", {"metadataDown": True})
        self.assertEqual(self.get(path, [("Metadata-Flavor", "Google")])[0], 503)
        self.emu.hook("faults", {"metadataDown": False})
        self.assertEqual(self.get(path, [("Metadata-Flavor", "Google")])[0], 200)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2, warnings="ignore")
