#!/usr/bin/python3
"""Webhooks and email end to end (issue 11, docs/notifications.md): keyrotd and the Apigee
emulator as processes, and a Python standard-library HTTP receiver on loopback
that verifies every Standard Webhooks v1 signature with its own HMAC code;
for email, an SMTP server (smtp_server.py, python3-aiosmtpd) with STARTTLS and
AUTH that can refuse recipients with 550 or 451.

usage: notify_test.py [TestCase]
"""
import base64
import email
import email.policy
import glob
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import unittest

import harness as h
from daemon_test import Daemon, free_port, samples, seed, wait_for
from smtp_server import SmtpServer


class Receiver:
    """Answers each POST with the next status of `script` (then `default`) and
    records (headers, raw body, signature ok, status answered)."""

    def __init__(self, secret, script=(), default=200, port=0):
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.script = list(script)
        self.default = default
        self.got = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = outer.script.pop(0) if outer.script else outer.default
                    outer.got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body, "ok": outer.verify(self.headers, body),
                                      "status": status, "at": time.time()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hooks/keyrotd" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, headers, body):
        """Standard Webhooks v1, written from the specification (not keyrotd's code)."""
        msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
        if not msg_id or not ts or abs(time.time() - int(ts)) > 300:
            return False
        signed = ("%s.%s." % (msg_id, ts)).encode() + body
        want = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        for sig in headers.get("webhook-signature", "").split():
            version, _, value = sig.partition(",")
            if version == "v1" and hmac.compare_digest(value, want):
                return True
        return False

    def events(self, status=None):
        with self.lock:
            got = list(self.got)
        return [(g, json.loads(g["body"])) for g in got if status is None or g["status"] == status]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def iso_ms(s):
    """RFC 3339 with milliseconds, UTC ("2026-11-25T12:00:00.123Z"), as epoch ms."""
    import datetime
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1000)


def notify_config(url, extra=""):
    return ("notify:\n  expiringAt: [30d, 7d, 1d]\n  webhooks:\n"
            "    - name: hub\n      url: %s\n      secretFiles: [whsec]\n      timeout: 3s\n%s"
            % (url, extra))


class NotifyCase(unittest.TestCase):
    script = ()
    default = 200

    def setUp(self):
        self.dir = h.tmpdir()
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        path = os.path.join(self.dir, "whsec")
        with open(path, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(path, 0o600)
        self.emu = h.Emulator(self.dir, seed(due=1, due_expires="+2d", fresh=1))
        self.seed_secrets = self.all_secrets()
        self.rx = None
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        if self.rx:
            self.rx.stop()
        self.emu.stop()
        if sys.exc_info()[0] is None:
            h.rmtree(self.dir)

    def all_secrets(self):
        return [s for a in self.emu.state()["apps"] for c in a.get("credentials", [])
                for s in (c["consumerKey"], c["consumerSecret"])]

    def keyrotd(self, url):
        return h.Keyrotd(self.dir, self.emu.url, [h.policy(lifetime="90d", overlap="1h")],
                         notify_config(url))

    def start(self, k):
        d = Daemon(k)
        self.daemons.append(d)
        return d

    def old_fp(self):
        return h.fp("DUEkey%026d" % 0)

    def new_fp(self):
        app = self.emu.app(seed()["developers"][0]["email"], "due-00")
        fps = [h.fp(c["consumerKey"]) for c in app["credentials"]]
        new = [f for f in fps if f != self.old_fp()]
        self.assertEqual(len(new), 1, fps)
        return new[0]

    def assert_clean(self, k):
        """No consumer key or secret (seeded or made by keyrotd), and no signing
        secret, in any body, outbox file, state file or output."""
        texts = [g["body"].decode() for g, _ in (self.rx.events() if self.rx else [])]
        for f in glob.glob(os.path.join(k.state_dir, "**"), recursive=True):
            if os.path.isfile(f) and not f.endswith("/lock"):
                texts.append(open(f, errors="replace").read())
        texts += k.outputs + [d.log() for d in self.daemons]
        secrets_now = set(self.all_secrets()) | set(self.seed_secrets)
        self.assertGreaterEqual(len(secrets_now), 6)
        for t in texts:
            for s in secrets_now:
                self.assertNotIn(s, t)
            self.assertNotIn(self.secret, t)
            self.assertNotIn(self.secret.removeprefix("whsec_"), t)


class OnceTest(NotifyCase):
    """`keyrotd once` queues key.rotated and key.expiring, delivers them signed
    before it exits, and a second run sends no occurrence again."""

    def test_once(self):
        self.rx = Receiver(self.secret)
        k = self.keyrotd(self.rx.url)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.rx.events()
        types = sorted(e["type"] for _, e in got)
        self.assertIn("key.rotated", types, got)
        for g, e in got:
            self.assertTrue(g["ok"], g["headers"])
            self.assertEqual(g["headers"]["webhook-id"], e["data"]["id"])
            self.assertEqual(g["headers"]["content-type"], "application/json")
        rotated = [e for _, e in got if e["type"] == "key.rotated"]
        self.assertEqual(len(rotated), 1, rotated)
        d = rotated[0]["data"]
        self.assertEqual(d["key"], self.new_fp())
        self.assertEqual(d["replaces"], self.old_fp())
        self.assertEqual((d["organization"], d["app"], d["policy"]), ("demo", "due-00", "p"))
        self.assertEqual(d["developer"], seed()["developers"][0]["email"])
        # Created and completed in one pass: the record of the completion
        # names the new key's expiry (90d lifetime) and the old key's
        # revocation (issue + 1h overlap).
        self.assertLessEqual(abs(h.now_ms() + 90 * 86400 * 1000 - iso_ms(d["expiresAt"])), 120 * 1000)
        self.assertLessEqual(abs(h.now_ms() + 3600 * 1000 - iso_ms(d["replacesRevokedAt"])), 120 * 1000)
        # The pass's key list is read after its actions: the old key is revoked
        # within the hour (overlap 1h), inside the 1d lead time; the new key
        # (90 days) and the fresh one (60 days) are outside every lead time.
        expiring = [e["data"] for _, e in got if e["type"] == "key.expiring"]
        self.assertEqual([(x["key"], x["leadTime"]) for x in expiring], [(self.old_fp(), "1d")])
        self.assertLessEqual(abs(h.now_ms() + 3600 * 1000 - iso_ms(expiring[0]["expiresAt"])),
                             120 * 1000)
        self.assertEqual(len(got), 2, got)
        # The outbox is empty after delivery.
        self.assertEqual(glob.glob(os.path.join(k.state_dir, "outbox", "*.json")), [])

        # Again: the same state, nothing sent again (the outbox forgot the
        # delivered ids; the record of sent ids did not).
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.rx.events()), len(got), self.rx.events())
        self.assertIn("notify-sent.json", os.listdir(k.state_dir))
        # A dry run publishes nothing, even with the record gone.
        os.remove(os.path.join(k.state_dir, "notify-sent.json"))
        r = k.run("once", "--dry-run", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.rx.events()), len(got))
        self.assert_clean(k)


class Ed25519Test(NotifyCase):
    """v1a end to end: a webhook that shares no secret with keyrotd gets only
    Ed25519 signatures, and a receiver verifies them with the public key alone
    (Debian's python3-cryptography, not keyrotd's code); one with both gets
    v1 and v1a, each verifying."""

    def test_v1a(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.exceptions import InvalidSignature
        private = Ed25519PrivateKey.generate()
        public = private.public_key()
        path = os.path.join(self.dir, "ed.pem")
        with open(path, "wb") as f:
            f.write(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        os.chmod(path, 0o600)
        self.rx = Receiver(self.secret)  # its v1 check fails without the shared secret
        both = Receiver(self.secret)
        extra = ("    - name: both\n      url: %s\n      secretFiles: [whsec]\n"
                 "      ed25519KeyFile: ed.pem\n" % both.url)
        config = ("notify:\n  expiringAt: [30d, 7d, 1d]\n  webhooks:\n"
                  "    - name: hub\n      url: %s\n      ed25519KeyFile: ed.pem\n%s"
                  % (self.rx.url, extra))
        k = h.Keyrotd(self.dir, self.emu.url, [h.policy(lifetime="90d", overlap="1h")], config)
        try:
            r = k.run("once", timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

            def v1a_ok(g):
                hd = g["headers"]
                signed = ("%s.%s." % (hd["webhook-id"], hd["webhook-timestamp"])).encode() + \
                    g["body"]
                good = 0
                for sig in hd["webhook-signature"].split():
                    version, _, value = sig.partition(",")
                    if version != "v1a":
                        continue
                    try:
                        public.verify(base64.b64decode(value), signed)
                        good += 1
                    except InvalidSignature:
                        return False
                    # A signature must not verify another body.
                    try:
                        public.verify(base64.b64decode(value), signed + b" ")
                        return False
                    except InvalidSignature:
                        pass
                return good == 1

            got = self.rx.events()
            self.assertGreaterEqual(len(got), 2, got)
            for g, e in got:
                versions = [s.partition(",")[0] for s in g["headers"]["webhook-signature"].split()]
                self.assertEqual(versions, ["v1a"], g["headers"])
                self.assertFalse(g["ok"])  # no shared secret: no v1 to check
                self.assertTrue(v1a_ok(g), g["headers"])
            got_both = both.events()
            self.assertEqual(sorted(e["data"]["id"] for _, e in got_both),
                             sorted(e["data"]["id"] for _, e in got))
            for g, _ in got_both:
                versions = [s.partition(",")[0] for s in g["headers"]["webhook-signature"].split()]
                self.assertEqual(versions, ["v1", "v1a"], g["headers"])
                self.assertTrue(g["ok"])  # v1, with Python's hmac
                self.assertTrue(v1a_ok(g), g["headers"])
            self.assert_clean(k)
        finally:
            both.stop()


class RetryTest(NotifyCase):
    """`keyrotd run`: the receiver answers 500, then 200: the same event (same
    webhook-id, signed anew) arrives on the retry about 5 s later."""

    def test_retry(self):
        self.rx = Receiver(self.secret, script=[500])
        k = self.keyrotd(self.rx.url)
        d = self.start(k)
        wait_for("a delivered key.rotated", lambda: [
            e for _, e in self.rx.events(200) if e["type"] == "key.rotated"], 30)
        got = self.rx.events()
        first_id = got[0][0]["headers"]["webhook-id"]
        self.assertEqual(got[0][0]["status"], 500)
        retried = [g for g, _ in got[1:] if g["headers"]["webhook-id"] == first_id]
        self.assertTrue(retried and retried[0]["status"] == 200, got)
        self.assertTrue(all(g["ok"] for g, _ in got))
        self.assertGreaterEqual(retried[0]["at"] - got[0][0]["at"], 4.0)  # the 5 s step, -10 %
        m = d.metrics()
        wait_for("outbox drained", lambda: samples(
            d.metrics(), "keyrotd_notify_outbox_depth").get("") == 0, 15)
        self.assertGreaterEqual(samples(m, "keyrotd_notify_deliveries_total")[
            '{outcome="retrying",sink="hub"}'], 1)
        self.assertGreaterEqual(samples(d.metrics(), "keyrotd_notify_deliveries_total")[
            '{outcome="delivered",sink="hub"}'], 1)
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        self.assert_clean(k)


class GoneTest(NotifyCase):
    """410 Gone disables the webhook: one request, then none; metric set."""

    def test_gone(self):
        self.rx = Receiver(self.secret, default=410)
        k = self.keyrotd(self.rx.url)
        d = self.start(k)
        wait_for("sink disabled", lambda: samples(
            d.metrics(), "keyrotd_notify_sink_disabled").get('{sink="hub"}') == 1, 30)
        time.sleep(1.0)
        self.assertEqual(len(self.rx.events()), 1, self.rx.events())
        self.assertIn("410 Gone", d.log())
        self.assertEqual(samples(d.metrics(), "keyrotd_notify_outbox_depth").get(""), 0)
        d.stop()
        self.assert_clean(k)


class KillTest(NotifyCase):
    """The receiver is down; keyrotd is SIGKILLed with the events queued; after
    a restart with the receiver up, they arrive with the same webhook-id."""

    def test_sigkill(self):
        port = free_port()
        k = self.keyrotd("http://127.0.0.1:%d/hooks/keyrotd" % port)
        d = self.start(k)
        outbox = os.path.join(k.state_dir, "outbox")

        def queued():
            ids = {}
            for f in glob.glob(os.path.join(outbox, "*.json")):
                try:
                    body = json.loads(json.load(open(f))["body"])
                except (ValueError, KeyError):
                    return None
                ids[body["data"]["id"]] = body["type"]
            return ids if "key.rotated" in ids.values() else None
        wait_for("key.rotated in the outbox", queued, 30)
        # One failed attempt (connection refused) is recorded before the kill.
        wait_for("a failed attempt", lambda: "will retry" in d.log(), 10)
        d.stop(signal.SIGKILL)
        ids = queued()
        self.assertIn("key.expiring", ids.values())
        self.rx = Receiver(self.secret, port=port)
        d2 = self.start(k)
        wait_for("every queued event delivered", lambda: set(ids) <= {
            g["headers"]["webhook-id"] for g, _ in self.rx.events(200)}, 20)
        for g, e in self.rx.events():
            self.assertTrue(g["ok"])
            self.assertEqual(ids.get(g["headers"]["webhook-id"], e["type"]), e["type"])
        rotated = [e["data"] for _, e in self.rx.events() if e["type"] == "key.rotated"]
        self.assertEqual(rotated[0]["key"], self.new_fp())
        wait_for("outbox empty", lambda: not glob.glob(os.path.join(outbox, "*.json")), 10)
        rc, _ = d2.stop()
        self.assertEqual(rc, 0)
        self.assert_clean(k)


class StrandedTest(NotifyCase):
    """app.stranded: an app with no valid key, an app with no key at all, a
    revocation held by drift, a key with no room for the marker; once per
    occurrence across runs. A fresh stateDir (a failover's new leader) reports
    the strandings and the rotation.failed again with the same ids: they are
    derived from what Apigee shows at every pass."""

    def test_stranded(self):
        dev = seed()["developers"][0]["email"]
        st = seed(due=0, fresh=1)
        st["apiProducts"].append({"name": "admin"})
        old = "DRIFTkey%024d" % 0
        st["apps"] += [
            {"developerEmail": dev, "name": "stale",
             "credentials": [{"consumerKey": "STALEkey%024d" % 0, "consumerSecret": "S" * 24,
                              "issuedAt": "-120d", "expiresAt": "-30d",
                              "apiProducts": ["payments"]}]},
            {"developerEmail": dev, "name": "empty", "credentials": []},
            {"developerEmail": dev, "name": "full",
             "credentials": [{"consumerKey": "FULLkey%025d" % 0, "consumerSecret": "S" * 24,
                              "issuedAt": "-80d", "expiresAt": "+2d",
                              "attributes": [{"name": "a%d" % i, "value": "v"}
                                             for i in range(18)],
                              "apiProducts": ["payments"]}]},
            {"developerEmail": dev, "name": "drift",
             "credentials": [{"consumerKey": old, "consumerSecret": "S" * 24,
                              "issuedAt": "-80d", "expiresAt": "+20d",
                              "apiProducts": ["payments", "admin"]},
                             {"consumerKey": "DRIFTnew%024d" % 0, "consumerSecret": "T" * 24,
                              "issuedAt": "-2h", "expiresAt": "+88d",
                              "attributes": [{"name": "keyrotd_replaces", "value": h.fp(old)}],
                              "apiProducts": ["payments"]}]},
        ]
        self.emu.stop()
        os.remove(os.path.join(self.dir, "emulator.port"))
        self.emu = h.Emulator(self.dir, st)
        self.seed_secrets = self.all_secrets()
        self.rx = Receiver(self.secret)
        k = self.keyrotd(self.rx.url)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)  # the key without room failed
        got = self.rx.events()
        for g, _ in got:
            self.assertTrue(g["ok"], g["headers"])
        stranded = {e["data"]["app"]: e["data"] for _, e in got if e["type"] == "app.stranded"}
        # An app with no key at all is listed only under the first reading of
        # keyStatus; under the strict one keyrotd cannot see it
        # (docs/apigee-fidelity.md, f).
        keyless = [] if h.PROFILE == "strict" else ["empty"]
        self.assertEqual(sorted(stranded), sorted(["drift", "full", "stale"] + keyless), got)
        for app in keyless:  # no key to name: the id is (organization, developer, app, type)
            self.assertNotIn("key", stranded[app])
            self.assertTrue(stranded[app]["reason"].startswith(
                "no valid key: Apigee lists no approved key"), stranded[app])
            self.assertEqual(stranded[app]["developerStatus"], "active")
        self.assertEqual(stranded["stale"]["key"], h.fp("STALEkey%024d" % 0))
        self.assertTrue(stranded["stale"]["reason"].startswith("no valid key: 1 expired"),
                        stranded["stale"])
        self.assertEqual(stranded["full"]["key"], h.fp("FULLkey%025d" % 0))
        self.assertTrue(stranded["full"]["reason"].startswith(
            "no room for the keyrotd_replaces marker: "), stranded["full"])
        self.assertEqual(stranded["drift"]["key"], h.fp(old))
        self.assertTrue(stranded["drift"]["reason"].startswith("drift held a revocation: "),
                        stranded["drift"])
        for d in stranded.values():
            self.assertEqual((d["organization"], d["developer"], d["policy"]), ("demo", dev, "p"))
        self.assertIn("rotation.failed", [e["type"] for _, e in got])
        # Again: the same occurrences, nothing sent twice.
        n = len(got)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(self.rx.events()), n, self.rx.events()[n:])
        self.assert_clean(k)
        # A fresh disk: the same strandings and failure, with the same ids.
        first = sorted((e["type"], g["headers"]["webhook-id"]) for g, e in got
                       if e["type"] in ("app.stranded", "rotation.failed"))
        b = h.Keyrotd(self.dir, self.emu.url, [h.policy(lifetime="90d", overlap="1h")],
                      notify_config(self.rx.url), state_dir="./state-b")
        r = b.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        again = sorted((e["type"], g["headers"]["webhook-id"]) for g, e in self.rx.events()[n:]
                       if e["type"] in ("app.stranded", "rotation.failed"))
        self.assertEqual(again, first)
        self.assertEqual(len(first), 4 + len(keyless), first)  # strandings and one failure
        self.assert_clean(b)


class FailoverTest(NotifyCase):
    """A new process without the old one's stateDir (a failover to a replica
    whose disk never held the outbox) re-derives key.rotated and key.revoked
    from Apigee and sends them again with the same ids; once more, nothing."""

    def keyrotd_at(self, state_dir):
        return h.Keyrotd(self.dir, self.emu.url, [h.policy(lifetime="90d", overlap="2s")],
                         notify_config(self.rx.url), state_dir=state_dir)

    def test_failover(self):
        self.rx = Receiver(self.secret)
        a = self.keyrotd_at("./state-a")
        r = a.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(2.5)  # the overlap is over: the next pass revokes the old key
        r = a.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        first = {e["type"]: g["headers"]["webhook-id"] for g, e in self.rx.events()}
        self.assertIn("key.rotated", first, self.rx.events())
        self.assertIn("key.revoked", first, self.rx.events())
        n = len(self.rx.events())

        b = self.keyrotd_at("./state-b")  # a fresh disk: no outbox, no notify-sent.json
        r = b.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("notifications re-derived from Apigee", r.stderr)
        again = self.rx.events()[n:]
        got = sorted((e["type"], g["headers"]["webhook-id"], e["data"]["key"]) for g, e in again)
        self.assertEqual(got, sorted([("key.revoked", first["key.revoked"], self.old_fp()),
                                      ("key.rotated", first["key.rotated"], self.new_fp())]),
                         again)
        for g, e in again:
            self.assertTrue(g["ok"], g["headers"])
            if e["type"] == "key.rotated":
                self.assertEqual(e["data"]["replaces"], self.old_fp())
        # Remembered now: another start with this disk sends nothing again.
        n = len(self.rx.events())
        r = b.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.rx.events()[n:], [])
        self.assert_clean(b)


def unmatched_seed():
    """One app the policy matches (fresh-00, 60 days: no warning) and keys no
    policy rotates: apps the policy's match leaves out, and a team (AppGroup)
    app, which keyrotd never rotates."""
    dev = seed()["developers"][0]["email"]
    st = seed(due=0, fresh=1)

    def app(name, key, expires, team=None):
        a = {"name": name,
             "credentials": [{"consumerKey": key, "consumerSecret": "S" * 24,
                              "issuedAt": "-80d", "apiProducts": ["payments"]}]}
        if expires:
            a["credentials"][0]["expiresAt"] = expires
        if team:
            a["appGroup"] = team
        else:
            a["developerEmail"] = dev
        return a

    st["apps"] += [
        app("manual-week", "MANUALkey%023d" % 0, "+5d"),   # within 7d
        app("manual-soon", "MANUALkey%023d" % 1, "+12h"),  # within 1d
        app("manual-later", "MANUALkey%023d" % 2, "+60d"),  # beyond every lead time
        app("manual-gone", "MANUALkey%023d" % 3, "-2d"),   # expired already
        app("manual-never", "MANUALkey%023d" % 4, None),   # never expires
        app("shared-svc", "TEAMkey%025d" % 0, "+20d", team="ops"),  # within 30d
    ]
    return st


class TeamRotatedTest(NotifyCase):
    """A team (AppGroup) app rotated by a policy with match.appGroups: its
    key.rotated names the team, no developer and no developer status; its
    app.stranded (every kind) too, once per occurrence, apart from a developer's
    app of the same name, and with the same ids from a fresh stateDir."""

    def test_team_key_rotated(self):
        self.emu.stop()
        os.remove(os.path.join(self.dir, "emulator.port"))
        st = seed(due=1, due_expires="+2d", fresh=0)
        for a in st["apps"]:
            del a["developerEmail"]
            a["appGroup"] = "ops"
        self.emu = h.Emulator(self.dir, st)
        self.seed_secrets = self.all_secrets()
        self.rx = Receiver(self.secret)
        p = h.policy(lifetime="90d", overlap="1h", match={"appGroups": ["ops"]})
        k = h.Keyrotd(self.dir, self.emu.url, [p], notify_config(self.rx.url))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rotated = [e["data"] for _, e in self.rx.events() if e["type"] == "key.rotated"]
        self.assertEqual(len(rotated), 1, self.rx.events())
        d = rotated[0]
        self.assertEqual((d["team"], d["app"], d["policy"]), ("ops", "due-00", "p"))
        self.assertEqual(d["replaces"], self.old_fp())
        self.assertNotIn("developer", d)
        self.assertNotIn("developerStatus", d)
        self.assertIn("expiresAt", d)


    def test_team_app_stranded(self):
        dev = seed()["developers"][0]["email"]
        st = seed(due=0, fresh=0)
        st["apiProducts"].append({"name": "admin"})
        st["appGroups"] = [{"name": "ops", "status": "active"}]
        old = "TDRIFTkey%023d" % 0

        def team_app(name, creds):
            return {"appGroup": "ops", "name": name, "credentials": creds}

        stale = [{"consumerKey": "TSTALEkey%023d" % 0, "consumerSecret": "S" * 24,
                  "issuedAt": "-120d", "expiresAt": "-30d", "apiProducts": ["payments"]}]
        st["apps"] += [
            team_app("stale", stale),
            team_app("empty", []),
            team_app("full", [{"consumerKey": "TFULLkey%024d" % 0, "consumerSecret": "S" * 24,
                               "issuedAt": "-80d", "expiresAt": "+2d",
                               "attributes": [{"name": "a%d" % i, "value": "v"}
                                              for i in range(18)],
                               "apiProducts": ["payments"]}]),
            team_app("drift", [{"consumerKey": old, "consumerSecret": "S" * 24,
                                "issuedAt": "-80d", "expiresAt": "+20d",
                                "apiProducts": ["payments", "admin"]},
                               {"consumerKey": "TDRIFTnew%023d" % 0, "consumerSecret": "T" * 24,
                                "issuedAt": "-2h", "expiresAt": "+88d",
                                "attributes": [{"name": "keyrotd_replaces", "value": h.fp(old)}],
                                "apiProducts": ["payments"]}]),
            # The developer's own stale app: the same name, another owner, its own event.
            {"developerEmail": dev, "name": "stale",
             "credentials": [dict(stale[0], consumerKey="DSTALEkey%023d" % 0)]},
        ]
        self.emu.stop()
        os.remove(os.path.join(self.dir, "emulator.port"))
        self.emu = h.Emulator(self.dir, st)
        self.seed_secrets = self.all_secrets()
        self.rx = Receiver(self.secret)
        p = h.policy(lifetime="90d", overlap="1h",
                     match={"developers": ["*"], "appGroups": ["ops"]})
        k = h.Keyrotd(self.dir, self.emu.url, [p], notify_config(self.rx.url))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)  # the key without room failed
        got = self.rx.events()
        for g, _ in got:
            self.assertTrue(g["ok"], g["headers"])
        stranded = [e["data"] for _, e in got if e["type"] == "app.stranded"]
        teams = {d["app"]: d for d in stranded if "team" in d}
        devs = [d for d in stranded if "team" not in d]
        # A team app with no key at all is listed only under the first reading of
        # keyStatus, as a developer's (docs/apigee-fidelity.md, f).
        keyless = [] if h.PROFILE == "strict" else ["empty"]
        self.assertEqual(sorted(teams), sorted(["drift", "full", "stale"] + keyless), got)
        for d in teams.values():
            self.assertEqual((d["organization"], d["team"], d["policy"]), ("demo", "ops", "p"))
            self.assertNotIn("developer", d)
            self.assertNotIn("developerStatus", d)
        for app in keyless:
            self.assertNotIn("key", teams[app])
            self.assertTrue(teams[app]["reason"].startswith(
                "no valid key: Apigee lists no approved key"), teams[app])
        self.assertEqual(teams["stale"]["key"], h.fp("TSTALEkey%023d" % 0))
        self.assertTrue(teams["stale"]["reason"].startswith("no valid key: 1 expired"),
                        teams["stale"])
        self.assertEqual(teams["full"]["key"], h.fp("TFULLkey%024d" % 0))
        self.assertTrue(teams["full"]["reason"].startswith(
            "no room for the keyrotd_replaces marker: "), teams["full"])
        self.assertEqual(teams["drift"]["key"], h.fp(old))
        self.assertTrue(teams["drift"]["reason"].startswith("drift held a revocation: "),
                        teams["drift"])
        self.assertEqual([(d["developer"], d["app"], d["key"]) for d in devs],
                         [(dev, "stale", h.fp("DSTALEkey%023d" % 0))])
        failed = [e["data"] for _, e in got if e["type"] == "rotation.failed"]
        self.assertEqual([(d.get("team"), d["app"]) for d in failed], [("ops", "full")], failed)
        ids = {}
        for g, e in got:
            if e["type"] == "app.stranded":
                ids[(e["data"].get("team") or e["data"]["developer"], e["data"]["app"])] = \
                    g["headers"]["webhook-id"]
        self.assertNotEqual(ids[("ops", "stale")], ids[(dev, "stale")])
        # Again: the same occurrences, nothing sent twice.
        n = len(got)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(self.rx.events()), n, self.rx.events()[n:])
        self.assert_clean(k)
        # A fresh disk: the same strandings and failure, with the same ids.
        first = sorted((e["type"], g["headers"]["webhook-id"]) for g, e in got
                       if e["type"] in ("app.stranded", "rotation.failed"))
        b = h.Keyrotd(self.dir, self.emu.url, [p], notify_config(self.rx.url),
                      state_dir="./state-b")
        r = b.run("once", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        again = sorted((e["type"], g["headers"]["webhook-id"]) for g, e in self.rx.events()[n:]
                       if e["type"] in ("app.stranded", "rotation.failed"))
        self.assertEqual(again, first)
        self.assertEqual(len(first), 5 + len(keyless), first)  # 4 strandings and one failure
        self.assert_clean(b)

    def test_team_stranded_webhook_filters(self):
        """A webhook filtered on developers never gets a team's app.stranded;
        one filtered on apps does."""
        st = seed(due=0, fresh=2)  # developer apps the policy does not match
        st["apps"].append({"appGroup": "ops", "name": "stale",
                           "credentials": [{"consumerKey": "TSTALEkey%023d" % 0,
                                            "consumerSecret": "S" * 24, "issuedAt": "-120d",
                                            "expiresAt": "-30d", "apiProducts": ["payments"]}]})
        self.emu.stop()
        os.remove(os.path.join(self.dir, "emulator.port"))
        self.emu = h.Emulator(self.dir, st)
        self.seed_secrets = self.all_secrets()
        self.rx = Receiver(self.secret)
        by_dev, by_app = Receiver(self.secret), Receiver(self.secret)
        self.addCleanup(by_dev.stop)
        self.addCleanup(by_app.stop)
        extra = ("    - name: by-developer\n      url: %s\n      secretFiles: [whsec]\n"
                 "      developers: [\"*\"]\n"
                 "    - name: by-app\n      url: %s\n      secretFiles: [whsec]\n"
                 "      apps: [\"stale\"]\n" % (by_dev.url, by_app.url))
        p = h.policy(lifetime="90d", overlap="1h", match={"appGroups": ["ops"]})
        k = h.Keyrotd(self.dir, self.emu.url, [p], notify_config(self.rx.url, extra))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for rx, want in ((self.rx, 1), (by_app, 1), (by_dev, 0)):
            st_events = [e["data"] for _, e in rx.events() if e["type"] == "app.stranded"]
            self.assertEqual(len(st_events), want, rx.events())
            for d in st_events:
                self.assertEqual((d["team"], d["app"]), ("ops", "stale"))
        self.assertEqual(by_dev.events(), [])
        self.assert_clean(k)


class UnmatchedExpiringTest(NotifyCase):
    """key.expiring for keys no policy rotates (apps the policies do not match,
    team apps), at the config's notify.expiringAt: exactly one per key and lead
    time, no policy, the team named for a team app; nothing again on a second
    run; a fresh stateDir sends the same ids; a webhook that filters on
    policies gets none."""

    def keyrotd_at(self, state_dir, extra=""):
        p = h.policy(lifetime="90d", overlap="1h", match={"apps": ["fresh-*"]})
        return h.Keyrotd(self.dir, self.emu.url, [p], notify_config(self.rx.url, extra),
                         state_dir=state_dir)

    def test_unmatched_and_team_keys(self):
        self.emu.stop()
        os.remove(os.path.join(self.dir, "emulator.port"))
        self.emu = h.Emulator(self.dir, unmatched_seed())
        self.seed_secrets = self.all_secrets()
        self.rx = Receiver(self.secret)
        only_p = Receiver(self.secret)
        try:
            extra = ("    - name: only-p\n      url: %s\n      secretFiles: [whsec]\n"
                     "      timeout: 3s\n      policies: [p]\n" % only_p.url)
            k = self.keyrotd_at("./state", extra)
            r = k.run("once", timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = self.rx.events()
            for g, e in got:
                self.assertTrue(g["ok"], g["headers"])
                self.assertEqual(g["headers"]["webhook-id"], e["data"]["id"])
            expiring = [(g, e["data"]) for g, e in got if e["type"] == "key.expiring"]
            self.assertEqual(len(got), len(expiring), got)  # nothing else happens here
            pairs = sorted((d["app"], d["leadTime"]) for _, d in expiring)
            self.assertEqual(pairs, [("manual-soon", "1d"), ("manual-week", "7d"),
                                     ("shared-svc", "30d")], expiring)
            by_app = {d["app"]: d for _, d in expiring}
            dev = seed()["developers"][0]["email"]
            now = h.now_ms()
            for app, key, days in (("manual-week", "MANUALkey%023d" % 0, 5),
                                   ("manual-soon", "MANUALkey%023d" % 1, 0.5),
                                   ("shared-svc", "TEAMkey%025d" % 0, 20)):
                d = by_app[app]
                self.assertEqual(d["key"], h.fp(key))
                self.assertNotIn("policy", d)  # no policy rotates it
                self.assertEqual(d["organization"], "demo")
                self.assertLessEqual(abs(now + days * 86400 * 1000 - iso_ms(d["expiresAt"])),
                                     120 * 1000, d)
            for app in ("manual-week", "manual-soon"):
                self.assertEqual(by_app[app]["developer"], dev)
                # Known only from the developer list (no read for a key no
                # policy rotates); the strict profile's list names emails only.
                self.assertEqual(by_app[app].get("developerStatus"),
                                 None if h.PROFILE == "strict" else "active")
                self.assertNotIn("team", by_app[app])
            team = by_app["shared-svc"]
            self.assertEqual(team["team"], "ops")
            self.assertNotIn("developer", team)
            self.assertNotIn("developerStatus", team)
            # A filter on policies names policies' keys: these have none.
            self.assertEqual(only_p.events(), [])
            first = sorted((d["app"], g["headers"]["webhook-id"]) for g, d in expiring)

            # Again: the same lead times, nothing sent twice.
            n = len(got)
            r = k.run("once", timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.rx.events()[n:], [])
            self.assert_clean(k)

            # A fresh disk (a failover's new leader): the same warnings, same ids.
            b = self.keyrotd_at("./state-b")
            r = b.run("once", timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            again = sorted((e["data"]["app"], g["headers"]["webhook-id"])
                           for g, e in self.rx.events()[n:])
            self.assertEqual(again, first)
            self.assert_clean(b)
        finally:
            only_p.stop()


# ---- email (docs/notifications.md, "Email") ---------------------------------

INACTIVE = "gone@former-partner.example.com"
PORTAL = "https://developers.example.com/my-apps"
SMTP_PASSWORD = "smtp-" + secrets.token_hex(12)


def email_config(url, extra="", sink_extra="", name="mail"):
    return ("notify:\n  expiringAt: [30d, 7d, 1d]\n%s  emails:\n"
            "    - name: %s\n      url: %s\n      caFile: smtp-cert.pem\n"
            "      username: keyrotd\n      passwordFile: smtp-password\n"
            "      from: \"keyrotd <keyrotd@api.example.com>\"\n"
            "      portalUrl: %s\n      timeout: 5s\n%s"
            % (extra, name, url, PORTAL, sink_extra))


def mail_of(m):
    """(parsed message, decoded text body) of a message the server got."""
    msg = email.message_from_bytes(m["data"], policy=email.policy.default)
    return msg, msg.get_content()


class EmailCase(NotifyCase):
    """The emulator seeded with an active developer's due app (as NotifyCase)
    and an inactive developer's due app; an SMTP server with STARTTLS and AUTH."""
    starttls = True
    emulator_args = ()

    def seed_more(self, st):
        """A subclass's additions to the seed."""

    def setUp(self):
        self.dir = h.tmpdir()
        st = seed(due=1, due_expires="+2d", fresh=1)
        st["developers"].append({"email": INACTIVE, "firstName": "G", "lastName": "One",
                                 "userName": "gone", "status": "inactive"})
        st["apps"].append({"developerEmail": INACTIVE, "name": "legacy",
                           "credentials": [{"consumerKey": "LEGACYkey%023d" % 0,
                                            "consumerSecret": "LEGACYsecret%020d" % 0,
                                            "issuedAt": "-28d", "expiresAt": "+2d",
                                            "apiProducts": ["payments"]}]})
        self.seed_more(st)
        self.emu = h.Emulator(self.dir, st, extra=self.emulator_args)
        self.seed_secrets = self.all_secrets()
        self.secret = "unused-" + secrets.token_hex(8)  # assert_clean checks it too
        self.rx = None
        self.daemons = []
        self.smtp = SmtpServer(self.dir, starttls=self.starttls, user="keyrotd",
                               password=SMTP_PASSWORD)
        path = os.path.join(self.dir, "smtp-password")
        with open(path, "w") as f:
            f.write(SMTP_PASSWORD + "\n")
        os.chmod(path, 0o600)

    def tearDown(self):
        self.smtp.stop()
        super().tearDown()

    def keyrotd(self, extra_config):
        return h.Keyrotd(self.dir, self.emu.url, [h.policy(lifetime="90d", overlap="1h")],
                         extra_config)

    def assert_clean_mail(self, k):
        """No consumer key or secret, nor the SMTP password, in any mail (raw and
        decoded), state file, log or output."""
        self.assert_clean(k)
        texts = []
        for m in self.smtp.got():
            texts.append(m["data"].decode(errors="replace"))
            texts.append(mail_of(m)[1])
        for f in glob.glob(os.path.join(k.state_dir, "**"), recursive=True):
            if os.path.isfile(f) and not f.endswith("/lock"):
                texts.append(open(f, errors="replace").read())
        texts += k.outputs + [d.log() for d in self.daemons]
        secrets_now = set(self.all_secrets()) | set(self.seed_secrets)
        for t in texts:
            self.assertNotIn(SMTP_PASSWORD, t)
            for s in secrets_now:
                self.assertNotIn(s, t)


class EmailTest(EmailCase):
    """`once`: the rotation's key.rotated and the old key's key.expiring each
    reach the developer by mail, over STARTTLS with AUTH, with the facts and
    the portal link and no secret; the inactive developer gets nothing; a
    second run sends nothing again."""

    def test_developer_mail(self):
        k = self.keyrotd(email_config(self.smtp.url()))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.smtp.got()
        self.assertEqual(len(got), 2, [mail_of(m)[0]["Subject"] for m in got])
        dev = seed()["developers"][0]["email"]
        by_type = {}
        for m in got:
            self.assertTrue(m["tls"], "sent after STARTTLS")
            self.assertTrue(m["authenticated"])
            self.assertEqual(m["rcpt"], [dev])
            self.assertEqual(m["from"], "keyrotd@api.example.com")
            msg, text = mail_of(m)
            self.assertEqual(msg["To"], dev)
            by_type[msg["X-Keyrotd-Event"]] = (msg, text)
        self.assertEqual(sorted(by_type), ["key.expiring", "key.rotated"])
        msg, text = by_type["key.rotated"]
        new, old = self.new_fp(), self.old_fp()
        self.assertIn("A new API key for app due-00 is ready", msg["Subject"])
        self.assertTrue(msg["Message-ID"].startswith("<evt_"), msg["Message-ID"])
        for want in ("Organization: demo", "App:          due-00", "Developer:    " + dev,
                     "Policy:       p", "new API key, %s; it replaces the key %s" % (new, old),
                     "The new key expires: ", "The old key %s will be revoked at " % old,
                     "developer portal: " + PORTAL):
            self.assertIn(want, text)
        # The facts are the event's: expiry in 90 days, revocation in an hour.
        import re
        exp = re.search(r"The new key expires: (\S+)\.", text).group(1)
        rev = re.search(r"will be revoked at (\S+):", text).group(1)
        self.assertLessEqual(abs(h.now_ms() + 90 * 86400 * 1000 - iso_ms(exp)), 120 * 1000)
        self.assertLessEqual(abs(h.now_ms() + 3600 * 1000 - iso_ms(rev)), 120 * 1000)
        msg, text = by_type["key.expiring"]
        self.assertIn("The key %s stops working at " % old, text)
        self.assertIn("(warning 1d ahead)", text)
        # Never to the inactive developer (its app is left alone and its key
        # expires within 7 days: a webhook would get key.expiring, a mail not).
        self.assertNotIn(INACTIVE, self.smtp.rcpts_seen)
        self.assertEqual(glob.glob(os.path.join(k.state_dir, "outbox", "*.json")), [])
        # Again: nothing new.
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.smtp.got()), 2)
        self.assert_clean_mail(k)


class EmailUnknownStatusTest(EmailCase):
    """Never to a developer whose status keyrotd does not know: the developer
    list names emails only (the emulator's developer-list-emails reading), so a
    developer whose app has nothing to do is never read; its key.expiring goes
    to the fixed address alone. The due app's developer, read (active) before
    keyrotd writes to the app, is mailed; the inactive one, read too, is not."""
    emulator_args = ("--reading", "developer-list-emails")
    QUIET = "quiet@partner.example.com"

    def seed_more(self, st):
        st["developers"].append({"email": self.QUIET, "firstName": "Q", "lastName": "Uiet",
                                 "userName": "quiet"})
        st["apps"].append({"developerEmail": self.QUIET, "name": "quiet",
                           "credentials": [{"consumerKey": "QUIETkey%024d" % 0,
                                            "consumerSecret": "QUIETsecret%021d" % 0,
                                            "issuedAt": "-70d", "expiresAt": "+20d",
                                            "apiProducts": ["payments"]}]})

    def test_unknown_status(self):
        k = self.keyrotd(email_config(self.smtp.url(),
                                      sink_extra="      to: [ops@api.example.com]\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.smtp.got()
        quiet = [m for m in got if "App:          quiet" in mail_of(m)[1]]
        self.assertEqual(len(quiet), 1, [m["rcpt"] for m in got])
        self.assertEqual(quiet[0]["rcpt"], ["ops@api.example.com"])
        self.assertEqual(mail_of(quiet[0])[0]["X-Keyrotd-Event"], "key.expiring")
        self.assertNotIn(self.QUIET, self.smtp.rcpts_seen)
        self.assertNotIn(INACTIVE, self.smtp.rcpts_seen)
        dev = seed()["developers"][0]["email"]
        mine = sorted(mail_of(m)[0]["X-Keyrotd-Event"] for m in got if dev in m["rcpt"])
        self.assertEqual(mine, ["key.expiring", "key.rotated"])
        self.assert_clean_mail(k)


class EmailUnmatchedTest(EmailCase):
    """key.expiring for keys no policy rotates, by mail: the active developer of
    an app no policy matches gets it (with the fixed address as a blind copy);
    a team app's and an inactive developer's go to the fixed address alone."""

    def seed_more(self, st):
        dev = seed()["developers"][0]["email"]
        for owner, name, key, expires in ((dev, "manual-week", "MANUALkey%023d" % 0, "+5d"),
                                          (INACTIVE, "legacy-manual", "MANUALkey%023d" % 1,
                                           "+5d"),
                                          (None, "shared-svc", "TEAMkey%025d" % 0, "+20d")):
            a = {"name": name,
                 "credentials": [{"consumerKey": key, "consumerSecret": "S" * 24,
                                  "issuedAt": "-80d", "expiresAt": expires,
                                  "apiProducts": ["payments"]}]}
            if owner:
                a["developerEmail"] = owner
            else:
                a["appGroup"] = "ops"
            st["apps"].append(a)
        # A team app with no valid key (for test_team_stranded_mail; no policy
        # of test_unmatched_mail matches it, and an expired key gets no warning).
        st["apps"].append({"appGroup": "ops", "name": "team-stale",
                           "credentials": [{"consumerKey": "TSTALEkey%023d" % 0,
                                            "consumerSecret": "S" * 24, "issuedAt": "-120d",
                                            "expiresAt": "-30d", "apiProducts": ["payments"]}]})

    def keyrotd(self, extra_config):
        p = h.policy(lifetime="90d", overlap="1h", match={"apps": ["due-*", "fresh-*", "legacy"]})
        return h.Keyrotd(self.dir, self.emu.url, [p], extra_config)

    def test_unmatched_mail(self):
        k = self.keyrotd(email_config(self.smtp.url(),
                                      sink_extra="      to: [ops@api.example.com]\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.smtp.got()
        by_app = {}
        for m in got:
            msg, text = mail_of(m)
            app = re.search(r"^  App: +(\S+)", text, re.M).group(1)
            if app in ("manual-week", "legacy-manual", "shared-svc"):
                self.assertNotIn(app, by_app, "one mail per event")
                by_app[app] = (m["rcpt"], msg, text)
        self.assertEqual(sorted(by_app), ["legacy-manual", "manual-week", "shared-svc"],
                         [mail_of(m)[0]["Subject"] for m in got])
        for app, (rcpt, msg, text) in by_app.items():
            self.assertEqual(msg["X-Keyrotd-Event"], "key.expiring", app)
            self.assertNotIn("Policy:", text)
        dev = seed()["developers"][0]["email"]
        # The developer list of the strict profile names emails only: then the
        # developer is not known active and is not mailed.
        want = ["ops@api.example.com"] if h.PROFILE == "strict" else [dev, "ops@api.example.com"]
        self.assertEqual(sorted(by_app["manual-week"][0]), sorted(want))
        self.assertEqual(by_app["legacy-manual"][0], ["ops@api.example.com"])
        self.assertEqual(by_app["shared-svc"][0], ["ops@api.example.com"])
        self.assertIn("Team:         ops", by_app["shared-svc"][2])
        self.assertNotIn(INACTIVE, self.smtp.rcpts_seen)
        # Again: nothing new.
        n = len(got)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.smtp.got()), n)
        self.assert_clean_mail(k)


    def test_team_stranded_mail(self):
        """A team app's app.stranded goes to the fixed address alone (a team has
        no developer to mail), naming the team."""
        p = h.policy(lifetime="90d", overlap="1h",
                     match={"appGroups": ["ops"], "apps": ["team-stale"]})
        k = h.Keyrotd(self.dir, self.emu.url, [p],
                      email_config(self.smtp.url(), sink_extra="      to: [ops@api.example.com]\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [(m["rcpt"],) + mail_of(m) for m in self.smtp.got()]
        stranded = [g for g in got if g[1]["X-Keyrotd-Event"] == "app.stranded"]
        self.assertEqual(len(stranded), 1, [g[1]["Subject"] for g in got])
        rcpt, msg, text = stranded[0]
        self.assertEqual(rcpt, ["ops@api.example.com"])
        self.assertIn("Team:         ops", text)
        self.assertIn("App:          team-stale", text)
        self.assertNotIn("Developer:", text)
        self.assertIn("no valid key", text)
        # Again: nothing new.
        n = len(self.smtp.got())
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.smtp.got()), n)
        self.assert_clean_mail(k)


class EmailFilterTest(EmailCase):
    """Fixed addresses and filters: `to` alone (toDeveloper: false) gets every
    event, the inactive developer's app's included; a sink filtered to
    key.rotated of due-* apps gets one; a sink whose apps match nothing gets
    none; beside the developer a fixed address is a blind copy."""

    def test_fixed_and_filters(self):
        url = self.smtp.url()
        sinks = email_config(url, sink_extra="      toDeveloper: false\n"
                                             "      to: [ops@api.example.com]\n", name="ops")
        for name, extra in (("rotated", "      events: [key.rotated]\n      apps: [\"due-*\"]\n"
                                        "      to: [audit@api.example.com]\n"),
                            ("nobody", "      apps: [\"nomatch-*\"]\n"
                                       "      to: [nobody@api.example.com]\n")):
            sinks += ("    - name: %s\n      url: %s\n      caFile: smtp-cert.pem\n"
                      "      username: keyrotd\n      passwordFile: smtp-password\n"
                      "      from: keyrotd@api.example.com\n%s" % (name, url, extra))
        k = self.keyrotd(sinks)
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.smtp.got()
        dev = seed()["developers"][0]["email"]
        ops = [mail_of(m)[0] for m in got if m["rcpt"] == ["ops@api.example.com"]]
        self.assertEqual(sorted(m["X-Keyrotd-Event"] for m in ops),
                         ["key.expiring", "key.expiring", "key.rotated"])
        self.assertTrue(all(m["To"] == "ops@api.example.com" for m in ops))
        legacy = [mail_of(m)[1] for m in got if m["rcpt"] == ["ops@api.example.com"]
                  and "App:          legacy" in mail_of(m)[1]]
        self.assertEqual(len(legacy), 1, "the fixed address hears about the inactive one")
        self.assertIn("Developer:    " + INACTIVE, legacy[0])
        audit = [m for m in got if "audit@api.example.com" in m["rcpt"]]
        self.assertEqual(len(audit), 1)
        # Developer and fixed address in one transaction: To names the developer only.
        self.assertEqual(audit[0]["rcpt"], [dev, "audit@api.example.com"])
        msg, _ = mail_of(audit[0])
        self.assertEqual((msg["To"], msg["X-Keyrotd-Event"]), (dev, "key.rotated"))
        self.assertNotIn("audit@api.example.com", audit[0]["data"].decode())
        self.assertNotIn("nobody@api.example.com", self.smtp.rcpts_seen)
        self.assertNotIn(INACTIVE, self.smtp.rcpts_seen)
        self.assertEqual(len(got), 4, [m["rcpt"] for m in got])
        self.assert_clean_mail(k)


class EmailRefusedTest(EmailCase):
    """`run`: the server refuses the developer with 550: each event is tried
    once, counted `refused`, never retried, and leaves the outbox."""

    def test_refused(self):
        dev = seed()["developers"][0]["email"]
        self.smtp.reject[dev.lower()] = "550 5.1.1 no such user"
        k = self.keyrotd(email_config(self.smtp.url()))
        d = self.start(k)
        wait_for("two refusals", lambda: samples(d.metrics(), "keyrotd_notify_deliveries_total")
                 .get('{outcome="refused",sink="mail"}', 0) >= 2, 30)
        wait_for("outbox drained", lambda: samples(
            d.metrics(), "keyrotd_notify_outbox_depth").get("") == 0, 10)
        time.sleep(6)  # past the first retry step (5 s): nothing is tried again
        self.assertEqual(self.smtp.rcpts_seen.count(dev), 2, self.smtp.rcpts_seen)
        self.assertEqual(self.smtp.got(), [])
        m = samples(d.metrics(), "keyrotd_notify_deliveries_total")
        self.assertEqual(m.get('{outcome="retrying",sink="mail"}', 0), 0)
        self.assertEqual(m.get('{outcome="refused",sink="mail"}'), 2)
        self.assertIn("refused by the mail server", d.log())
        self.assertIn("SMTP 550", d.log())
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        self.assert_clean_mail(k)

    def test_refused_developer_leaves_the_fixed_addresses_their_copy(self):
        """The developer refused (550), a fixed address configured: the fixed
        address still gets each mail, in a transaction of its own; the
        refusal is counted, nothing is retried."""
        dev = seed()["developers"][0]["email"]
        self.smtp.reject[dev.lower()] = "550 5.1.1 no such user"
        k = self.keyrotd(email_config(self.smtp.url(),
                                      sink_extra="      to: [ops@api.example.com]\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        mails = [m for m in self.smtp.got() if m["rcpt"] == ["ops@api.example.com"]]
        types = sorted(mail_of(m)[0]["X-Keyrotd-Event"] for m in mails)
        self.assertIn("key.rotated", types, types)
        # Every mail that went to the developer went to ops too, and nothing
        # reached the developer.
        self.assertEqual([m for m in self.smtp.got() if dev in m["rcpt"]], [])
        refused = self.smtp.rcpts_seen.count(dev)
        self.assertGreater(refused, 0, self.smtp.rcpt_log)
        # (ops also gets the inactive developer's events, which never go to a developer)
        self.assertGreaterEqual(len(mails), refused, self.smtp.rcpt_log)
        rotated = [mail_of(m)[1] for m in mails if mail_of(m)[0]["X-Keyrotd-Event"] == "key.rotated"]
        self.assertTrue(any("due-00" in b for b in rotated), rotated)
        # Once more: nothing is sent again (each event was done).
        before = len(self.smtp.got())
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.smtp.got()), before)
        self.assert_clean_mail(k)


class EmailRetryTest(EmailCase):
    """`run`: 451 (try later) to the first RCPT: retried along the outbox's
    schedule (about 5 s later) with the same Message-ID, then delivered."""

    def test_retry(self):
        self.smtp.rcpt_script = ["451 4.3.0 try again later"]
        k = self.keyrotd(email_config(self.smtp.url()))
        d = self.start(k)
        wait_for("both mails delivered", lambda: len(self.smtp.got()) >= 2, 30)
        first_try = self.smtp.rcpts_seen
        self.assertEqual(len(first_try), 3, first_try)  # one refused with 451, then two
        m = samples(d.metrics(), "keyrotd_notify_deliveries_total")
        self.assertGreaterEqual(m.get('{outcome="retrying",sink="mail"}', 0), 1)
        wait_for("delivered counted", lambda: samples(
            d.metrics(), "keyrotd_notify_deliveries_total").get(
            '{outcome="delivered",sink="mail"}', 0) == 2, 10)
        self.assertIn("SMTP 451", d.log())
        ids = [mail_of(m)[0]["Message-ID"] for m in self.smtp.got()]
        self.assertEqual(len(set(ids)), 2)
        refused_at = [t for _, answer, t in self.smtp.rcpt_log if answer.startswith("451")]
        self.assertEqual(len(refused_at), 1)
        retry_at = max(m["at"] for m in self.smtp.got())
        self.assertGreaterEqual(retry_at - refused_at[0], 4.0)  # the 5 s step, -10 %
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        self.assert_clean_mail(k)


class EmailStarttlsTest(EmailCase):
    """smtp:// requires STARTTLS: to a server that does not offer it nothing is
    sent (no AUTH, no mail), the event waits in the outbox; tls: none (plain,
    loopback only) to the same server delivers it."""
    starttls = False

    def test_starttls_required(self):
        k = self.keyrotd(email_config(self.smtp.url()).replace(
            "      caFile: smtp-cert.pem\n      username: keyrotd\n"
            "      passwordFile: smtp-password\n", "      username: keyrotd\n"
            "      passwordFile: smtp-password\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.smtp.got(), [])
        self.assertEqual(self.smtp.auth_attempts, [], "no password over a plain connection")
        self.assertEqual(self.smtp.rcpts_seen, [])
        self.assertIn("STARTTLS", r.stdout + r.stderr)
        self.assertEqual(len(glob.glob(os.path.join(k.state_dir, "outbox", "*.json"))), 2)
        # Plain SMTP must be asked for, and only to a loopback host: to a
        # server without AUTH (which needs TLS) on the same port. The queued
        # events are due again 5 s after the failed attempt.
        port = self.smtp.port
        self.smtp.stop()
        self.smtp = SmtpServer(self.dir, starttls=False, port=port)
        time.sleep(6)
        k = self.keyrotd(email_config(self.smtp.url()).replace(
            "      caFile: smtp-cert.pem\n      username: keyrotd\n"
            "      passwordFile: smtp-password\n", "      tls: none\n"))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.smtp.got()), 2, r.stdout + r.stderr)
        self.assertFalse(any(m["tls"] for m in self.smtp.got()))
        self.assertEqual(glob.glob(os.path.join(k.state_dir, "outbox", "*.json")), [])
        bad = h.Keyrotd(self.dir, self.emu.url, [h.policy()], email_config(
            "smtp://smtp.example.com:25").replace(
            "      caFile: smtp-cert.pem\n      username: keyrotd\n"
            "      passwordFile: smtp-password\n", "      tls: none\n"))
        r = bad.run("validate")
        self.assertEqual(r.returncode, 1)
        self.assertIn("plain SMTP is allowed only to a loopback host, not smtp.example.com",
                      r.stderr)
        self.assert_clean_mail(k)


class EmailTemplateTest(EmailCase):
    """subjectFile and bodyFile replace the built-in templates; an unknown name
    in one stops keyrotd at start-up (78), naming the file."""

    def test_template_override(self):
        with open(os.path.join(self.dir, "subject.txt"), "w") as f:
            f.write("Key news for {{app}} ({{type}})\n")
        with open(os.path.join(self.dir, "body.txt"), "w") as f:
            f.write("Dear {{developer}},\n{{#isRotated}}new={{key}} old={{replaces}} "
                    "until={{replacesRevokedAt}}\n{{/isRotated}}{{^isRotated}}other\n"
                    "{{/isRotated}}portal={{portalUrl}}\n")
        k = self.keyrotd(email_config(self.smtp.url(), sink_extra=(
            "      subjectFile: subject.txt\n      bodyFile: body.txt\n"
            "      events: [key.rotated]\n")))
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.smtp.got()
        self.assertEqual(len(got), 1)
        msg, text = mail_of(got[0])
        self.assertEqual(msg["Subject"], "Key news for due-00 (key.rotated)")
        dev = seed()["developers"][0]["email"]
        import re
        self.assertRegex(text, r"^Dear %s,\r?\nnew=%s old=%s until=\S+Z\r?\nportal=%s\r?\n$"
                         % (re.escape(dev), self.new_fp(), self.old_fp(), re.escape(PORTAL)))
        with open(os.path.join(self.dir, "body.txt"), "w") as f:
            f.write("{{consumerSecret}}\n")
        r = k.run("once", timeout=60)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("body.txt: unknown name {{consumerSecret}}", r.stderr)
        # A missing template file is found by validate.
        os.remove(os.path.join(self.dir, "body.txt"))
        r = k.run("validate")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"notify\.emails\[0\]\.bodyFile: cannot read template file")
        self.assert_clean_mail(k)


class ConfigTest(unittest.TestCase):
    """Notify errors through `validate` (1) and start-up (78), by file, line and field."""

    def test_receiver_checks_the_specification_vector(self):
        """The receiver's v1 check (what every webhook test relies on) against the
        Standard Webhooks specification's published example."""
        rx = Receiver("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        try:
            headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       "webhook-timestamp": "1614265330",
                       "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
            body = b'{"test": 2432232314}'
            real_time = time.time
            time.time = lambda: 1614265330
            try:
                self.assertTrue(rx.verify(headers, body))
                self.assertFalse(rx.verify(headers, body + b" "))
                self.assertFalse(rx.verify(dict(headers, **{"webhook-timestamp": "1614265331"}),
                                           body))
            finally:
                time.time = real_time
            self.assertFalse(rx.verify(headers, body))  # five years late: replay refused
        finally:
            rx.stop()

    def test_config_errors(self):
        dirname = h.tmpdir()
        try:
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()], notify_config(
                "http://hooks.example.com/x"))
            # A missing secret file: validate names it; every other command exits 78.
            r = k.run("validate")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertRegex(r.stderr, r"keyrotd\.yaml:16:\d+: error: notify\.webhooks\[0\]\."
                                       r"secretFiles\[0\]: cannot read signing key file")
            r = k.run("once")
            self.assertEqual(r.returncode, 78, r.stderr)
            with open(os.path.join(dirname, "whsec"), "w") as f:
                f.write("not a secret\n")
            r = k.run("validate")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertRegex(r.stderr, r"keyrotd\.yaml:15:\d+: error: notify\.webhooks\[0\]\.url: "
                                       r"plain http:// is allowed only to a loopback host")
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()],
                          notify_config("http://127.0.0.1:9/x", "  outboxMax: 0\n"))
            r = k.run("validate")
            self.assertEqual(r.returncode, 1)
            self.assertIn("notify.outboxMax: must be a whole number", r.stderr)
            # Malformed key file: start-up refuses (78) without printing its content.
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()],
                          notify_config("http://127.0.0.1:9/x"))
            r = k.run("once")
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertNotIn("not a secret", r.stdout + r.stderr)
            # Email sinks are checked the same way: `email` is not a field,
            # a password never in the config text, a missing password file.
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()], notify_config(
                "http://127.0.0.1:9/x", "  email: {to: a@x.example}\n"))
            r = k.run("validate")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"keyrotd\.yaml:\d+:\d+: error: notify\.email: unknown "
                                       r"field \"email\"; did you mean \"emails\"")
            with open(os.path.join(dirname, "pw"), "w") as f:
                f.write("pw\n")
            mail = ("  emails:\n    - {name: partners, url: \"smtp://127.0.0.1:25\", "
                    "from: k@x.example, username: u,\n       %s}\n")
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()], notify_config(
                "http://127.0.0.1:9/x", mail % "password: hunter2, passwordFile: pw"))
            r = k.run("validate")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"keyrotd\.yaml:\d+:\d+: error: notify\.emails\[0\]\."
                                       r"password: put the SMTP password in a file")
            self.assertNotIn("hunter2", r.stderr)
            r = k.run("once")
            self.assertEqual(r.returncode, 78)
            self.assertNotIn("hunter2", r.stdout + r.stderr)
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()], notify_config(
                "http://127.0.0.1:9/x", mail % "passwordFile: nope"))
            r = k.run("validate")
            self.assertEqual(r.returncode, 1)
            self.assertIn("notify.emails[0].passwordFile: cannot read password file", r.stderr)
            r = k.run("once")
            self.assertEqual(r.returncode, 78)
            k = h.Keyrotd(dirname, "http://127.0.0.1:9", [h.policy()],
                          notify_config("http://127.0.0.1:9/x"))
            # Per-policy lead times are checked too.
            k.set_policies([h.policy(), dict(h.policy(name="q"), notify={"expiringAt": ["0d"]})])
            r = k.run("validate")
            self.assertEqual(r.returncode, 1)
            self.assertIn("notify.expiringAt[0]", r.stderr)
        finally:
            h.rmtree(dirname)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
