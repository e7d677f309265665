#!/usr/bin/env python3
"""Delivery end to end (issue 12, docs/delivery.md): `keyrotd once` against the
Apigee emulator delivers each new key to a Kubernetes Secret (the stand-in of
tests/integration/targets_server.py) and revokes the old key only after the
Secret holds the new one, verified."""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.request

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
DEV = "dev@partner.example.com"
OLD = "DELIVERoldKey%019d" % 1


def seed():
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "P", "lastName": "N", "userName": "p"}],
            "apiProducts": [{"name": "payments", "approvalType": "auto"}],
            "apps": [{"developerEmail": DEV, "name": "fleet",
                      "credentials": [{"consumerKey": OLD, "consumerSecret": "DELIVERoldSecret_01",
                                       "issuedAt": "-80d", "expiresAt": "+2d",
                                       "apiProducts": [{"apiproduct": "payments",
                                                        "status": "approved"}]}]}]}


class Targets:
    def __init__(self, d):
        self.log = open(os.path.join(d, "targets.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "targets_server.py"),
                                      "--kube-token", "kube-token"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = int(self.proc.stdout.readline().strip())
        self.url = "http://127.0.0.1:%d" % self.port
        self.token_file = os.path.join(d, "kube-token")
        with open(self.token_file, "w") as f:
            f.write("kube-token")

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def secret(self, name, namespace="keyrot"):
        s = self.call("GET", "/__t/state")["secrets"].get("%s/%s" % (namespace, name))
        if s is None:
            return None
        return {"data": s["decoded"], "labels": s["metadata"].get("labels", {})}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.log.close()


class DeliveryTest(unittest.TestCase):
    def setUp(self):
        self.d = h.tmpdir()
        self.emu = h.Emulator(self.d, seed())
        self.t = Targets(self.d)
        os.environ.update(KEYROTD_KUBE_API_URL=self.t.url, KEYROTD_KUBE_TOKEN_FILE=self.t.token_file,
                          KEYROTD_KUBE_CA_FILE="")
        # deliver sits at the policy's top level, beside rotation.
        p = h.policy(overlap="2s", lifetime="90d")
        p["deliver"] = [{"kind": "kubernetesSecret", "namespace": "keyrot", "name": "apigee-{app}"}]
        self.k = h.Keyrotd(self.d, self.emu.url, [p])

    def tearDown(self):
        for v in ("KEYROTD_KUBE_API_URL", "KEYROTD_KUBE_TOKEN_FILE", "KEYROTD_KUBE_CA_FILE"):
            os.environ.pop(v, None)
        self.t.stop()
        self.emu.stop()
        h.rmtree(self.d)

    def keys(self):
        return {c["consumerKey"]: c for c in self.emu.app(DEV, "fleet")["credentials"]}

    def test_delivered_before_revocation(self):
        r = self.k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        keys = self.keys()
        new = [k for k in keys if k != OLD]
        self.assertEqual(len(new), 1, keys)
        s = self.t.secret("apigee-fleet")
        self.assertIsNotNone(s, "the Secret was not created")
        data = s["data"]
        self.assertEqual(data["consumerKey"], new[0])
        self.assertEqual(data["consumerSecret"], keys[new[0]]["consumerSecret"])
        self.assertEqual(data["previousConsumerKey"], OLD, "the old key stays readable during the overlap")
        self.assertEqual(s["labels"].get("app.kubernetes.io/managed-by"), "keyrotd")
        # After the overlap: revoked, and the Secret drops the previous key.
        time.sleep(2.5)  # the overlap (keyrotd's clock is the real one)
        r = self.k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.keys()[OLD]["status"], "revoked")
        data = self.t.secret("apigee-fleet")["data"]
        self.assertEqual(data["consumerKey"], new[0])
        self.assertNotIn("previousConsumerKey", data)
        revoked = [a for a in self.k.audit() if a["action"] == "revoked"]
        self.assertEqual(len(revoked), 1)
        self.assertIn("delivered and verified", revoked[0]["detail"])
        # No key or secret in any output or the audit log.
        text = "\n".join(self.k.outputs) + self.k.audit_text()
        for secret in (new[0], keys[new[0]]["consumerSecret"], OLD, "DELIVERoldSecret_01"):
            self.assertNotIn(secret, text)

    def test_revocation_held_while_the_target_refuses(self):
        # Someone else's Secret of that name (no managed-by label): never written.
        self.t.call("POST", "/__t/seed", {"kind": "secret", "namespace": "keyrot",
                                          "name": "apigee-fleet", "labels": {"team": "x"},
                                          "data": {"other": "value"}})
        r = self.k.run("once", timeout=60)
        self.assertEqual(self.keys()[OLD]["status"], "approved")
        time.sleep(2.5)  # the overlap (keyrotd's clock is the real one)
        r = self.k.run("once", timeout=60)
        self.assertNotEqual(r.returncode, 0, "a held revocation is a failed action")
        self.assertEqual(self.keys()[OLD]["status"], "approved", "revoked without delivery")
        held = [a for a in self.k.audit() if a["action"] == "failed"
                and a["detail"].startswith("revocation held")]
        self.assertEqual(len(held), 1, self.k.audit())
        self.assertEqual(self.t.secret("apigee-fleet")["data"], {"other": "value"})


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
