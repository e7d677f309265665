#!/usr/bin/env python3
"""High availability: two `keyrotd run` replicas with leader election through a
Lease (tests/integration/lease_server.py stands in for the API server). Only
the leader writes; killing it hands the work to the other within the lease,
and the new leader re-sends the notifications the old one could not deliver."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
DEV = "dev@partner.example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed():
    apps = []
    for batch, expires in (("now", "+2d"), ("later", "+604815s")):  # later: due ~15 s in
        for i in range(4):
            apps.append({"developerEmail": DEV, "name": "%s-%d" % (batch, i),
                         "attributes": [{"name": "DisplayName", "value": "App %d" % i}],
                         "credentials": [{"consumerKey": "HAkey%s%027d" % (batch, i),
                                          "consumerSecret": "HAsecret%026d" % i,
                                          "issuedAt": "-20d", "expiresAt": expires,
                                          "apiProducts": [{"apiproduct": "payments",
                                                           "status": "approved"}]}]})
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "P", "lastName": "N", "userName": "p"}],
            "apiProducts": [{"name": "payments", "approvalType": "auto"}], "apps": apps}


def metric(port, name):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return None
    return None


def start_lease_server(d):
    log = open(os.path.join(d, "lease.log"), "w")
    port_file = os.path.join(d, "lease.port")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "lease_server.py"),
                          "--token", "kube-token", "--port-file", port_file],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline:
            raise AssertionError("lease server did not start")
        time.sleep(0.05)
    token_file = os.path.join(d, "token")
    with open(token_file, "w") as f:
        f.write("kube-token")
    return p, int(open(port_file).read().strip()), token_file


def start_replica(d, name, emu_url, lease_port, token_file, lease=("3s", "2s", "500ms"),
                  listen_port=None, method="import", extra_config=""):
    """`keyrotd run` as pod keyrotd-NAME, electing through the stand-in; returns (Popen, Keyrotd).
    Each replica has its own stateDir, as pods with an emptyDir."""
    wd = os.path.join(d, name)
    os.makedirs(wd, exist_ok=True)
    k = h.Keyrotd(wd, emu_url, [h.policy(overlap="1h", method=method)], extra_config=extra_config)
    if listen_port is not None:
        with open(k.config) as f:
            cfg = f.read().replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:%d" % listen_port)
        with open(k.config, "w") as f:
            f.write(cfg)
    env = dict(os.environ, POD_NAME="keyrotd-" + name, POD_NAMESPACE="keyrot",
               KEYROTD_LEASE_URL="http://127.0.0.1:%d" % lease_port,
               KEYROTD_LEASE_TOKEN_FILE=token_file, KEYROTD_LEASE_CA_FILE="",
               KEYROTD_LEASE_DURATION=lease[0], KEYROTD_LEASE_RENEW_DEADLINE=lease[1],
               KEYROTD_LEASE_RETRY_PERIOD=lease[2])
    log = open(os.path.join(wd, "keyrotd.log"), "w")
    return subprocess.Popen([h.KEYROTD, "run", "-c", k.config], cwd=wd, env=env, stdout=log,
                            stderr=subprocess.STDOUT), k


def stop_all(procs, lease, emu, d):
    for p, _ in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    lease.terminate()
    lease.wait(5)
    emu.stop()
    h.rmtree(d)


class HaTest(unittest.TestCase):
    def test_only_the_leader_writes_and_a_follower_takes_over(self):
        d = h.tmpdir()
        emu = h.Emulator(d, seed())
        lease, lease_port, token_file = start_lease_server(d)
        procs = {}
        try:
            ports = {}
            for name in ("a", "b"):
                ports[name] = free_port()
                procs[name] = start_replica(d, name, emu.url, lease_port, token_file,
                                            listen_port=ports[name])
                time.sleep(0.3)  # a starts first and is likely to lead; not assumed below

            def leaders():
                return {n for n in procs if procs[n][0].poll() is None
                        and metric(ports[n], "keyrotd_leader") == 1.0}

            def rotated(prefix):
                n = 0
                for a in emu.state()["apps"]:
                    if a["name"].startswith(prefix):
                        n += any(any(x["name"] == "keyrotd_replaces" for x in c.get("attributes", []))
                                 for c in a.get("credentials", []))
                return n

            deadline = time.time() + 20
            while rotated("now-") < 4:
                self.assertLess(time.time(), deadline, "the first batch was not rotated")
                time.sleep(0.2)
            lead = leaders()
            self.assertEqual(len(lead), 1, "exactly one leader: %s" % lead)
            first = lead.pop()
            other = "b" if first == "a" else "a"
            self.assertGreater(len(procs[first][1].audit()), 0)
            self.assertEqual(procs[other][1].audit(), [], "the follower wrote nothing")
            self.assertEqual(rotated("later-"), 0)

            procs[first][0].send_signal(signal.SIGKILL)
            procs[first][0].wait(5)
            killed_at = time.time()
            deadline = killed_at + 10
            while other not in leaders():
                self.assertLess(time.time(), deadline, "no takeover")
                time.sleep(0.1)
            print("takeover after %.2f s" % (time.time() - killed_at), file=sys.stderr)
            deadline = time.time() + 30
            while rotated("later-") < 4:
                self.assertLess(time.time(), deadline, "the second batch was not rotated")
                time.sleep(0.2)
            later = {a["app"] for a in procs[other][1].audit() if a["action"] == "created"}
            self.assertEqual(later, {"later-%d" % i for i in range(4)})
            # One successor per key, whoever made it.
            for a in emu.state()["apps"]:
                marked = [c for c in a["credentials"]
                          if any(x["name"] == "keyrotd_replaces" for x in c.get("attributes", []))]
                self.assertEqual(len(marked), 1, a["name"])
        finally:
            stop_all(procs, lease, emu, d)


class NotifyFailoverTest(unittest.TestCase):
    """The leader queues key.rotated events it cannot deliver (its receiver is
    down) and dies with its disk; the replica that takes over re-derives them
    from Apigee and delivers them with the same ids (docs/notifications.md,
    "After a failover")."""

    def test_new_leader_sends_the_lost_events(self):
        import base64
        import secrets as pysecrets
        from notify_test import Receiver, notify_config
        d = h.tmpdir()
        emu = h.Emulator(d, seed())
        lease, lease_port, token_file = start_lease_server(d)
        secret = "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()
        rx = Receiver(secret)
        procs = {}
        try:
            # a's webhook goes nowhere: its events stay in its outbox.
            urls = {"a": "http://127.0.0.1:%d/dead" % free_port(), "b": rx.url}
            for name in ("a", "b"):
                os.makedirs(os.path.join(d, name), exist_ok=True)
                with open(os.path.join(d, name, "whsec"), "w") as f:
                    f.write(secret + "\n")
                procs[name] = start_replica(d, name, emu.url, lease_port, token_file,
                                            extra_config=notify_config(urls[name]))
                if name == "a":  # a leads: b starts once a holds the lease
                    deadline = time.time() + 10
                    while not procs["a"][1].audit():
                        self.assertLess(time.time(), deadline, "a did not rotate")
                        time.sleep(0.1)
            outbox = os.path.join(d, "a", "state", "outbox")

            def queued():
                ids = {}
                for f in os.listdir(outbox) if os.path.isdir(outbox) else []:
                    if f.endswith(".json"):
                        with open(os.path.join(outbox, f)) as fh:
                            j = json.load(fh)
                        if j["type"] == "key.rotated":
                            ids[json.loads(j["body"])["data"]["app"]] = j["id"]
                return ids
            deadline = time.time() + 20
            while len(queued()) < 4:
                self.assertLess(time.time(), deadline, "a did not queue 4 key.rotated")
                time.sleep(0.1)
            lost = queued()
            self.assertEqual(rx.events(), [], "b follows: it published nothing")
            procs["a"][0].send_signal(signal.SIGKILL)  # and its disk is gone with it
            procs["a"][0].wait(5)
            deadline = time.time() + 20

            def got():
                return {e["data"]["app"]: g["headers"]["webhook-id"] for g, e in rx.events()
                        if e["type"] == "key.rotated"}
            while len(got()) < 4:
                self.assertLess(time.time(), deadline, "b did not re-send: %s" % got())
                time.sleep(0.1)
            self.assertEqual(got(), lost)
            self.assertTrue(all(g["ok"] for g, _ in rx.events()))
        finally:
            rx.stop()
            stop_all(procs, lease, emu, d)


class FailoverStateTest(unittest.TestCase):
    """The leader dies after its Apigee write took effect and before it learnt
    so: the generate journal (method generate) or the audit intent (import) it
    wrote first must reach the replica that takes over, which has its own,
    empty, stateDir. They live in the ConfigMap keyrotd-state beside the Lease.
    Without it the new leader makes a second successor beside an unmarked
    orphan (generate), or completes the successor without its `created`
    record (import)."""

    def run_case(self, method):
        d = h.tmpdir()
        emu = h.Emulator(d, {"organization": "demo",
                             "developers": [{"email": DEV, "firstName": "P", "lastName": "N",
                                             "userName": "p"}],
                             "apiProducts": [{"name": "payments", "approvalType": "auto"}],
                             "apps": [{"developerEmail": DEV, "name": "fo-0",
                                       "attributes": [{"name": "Team", "value": "blue"}],
                                       "credentials": [{"consumerKey": "FOkey%027d" % 0,
                                                        "issuedAt": "-20d", "expiresAt": "+2d",
                                                        "apiProducts": [{"apiproduct": "payments",
                                                                         "status": "approved"}]}]}]})
        # The first write commits at once; its answer never reaches the leader.
        emu.hook("faults", {"writeLatencyMs": 20000})
        lease, lease_port, token_file = start_lease_server(d)
        procs = {}
        try:
            procs["a"] = start_replica(d, "a", emu.url, lease_port, token_file, method=method)
            deadline = time.time() + 20
            while not emu.hook("writes")["writes"]:
                self.assertLess(time.time(), deadline, "no write")
                time.sleep(0.02)
            procs["a"][0].send_signal(signal.SIGKILL)
            procs["a"][0].wait(5)
            emu.hook("faults", {"writeLatencyMs": 0})
            first = emu.hook("writes")["writes"]
            self.assertEqual(len(first), 1, first)
            self.assertIn("keyrotd-a", first[0]["userAgent"])
            cms = http_json(lease_port, "/__lease/configmaps")
            kept = cms["items"]["keyrot/keyrotd-state"]["data"]
            want = "generate-" if method == "generate" else "intent-"
            self.assertTrue(any(k.startswith(want) for k in kept), kept)

            procs["b"] = start_replica(d, "b", emu.url, lease_port, token_file, method=method)

            def done():
                app = emu.app(DEV, "fo-0")
                return [c for c in app["credentials"]
                        if any(x["name"] == "keyrotd_replaces" and not x["value"].startswith("pending:")
                               for x in c.get("attributes", []))]
            deadline = time.time() + 30
            while not done():
                self.assertLess(time.time(), deadline, "the successor was not completed")
                time.sleep(0.2)
            app = emu.app(DEV, "fo-0")
            self.assertEqual(len(app["credentials"]), 2,
                             "one successor, no orphan: %s" % [c.get("attributes") for c in app["credentials"]])
            new = done()[0]
            self.assertEqual({x["name"]: x["value"] for x in app.get("attributes", [])}.get("Team"), "blue")
            created = [r for n in ("a", "b") for r in procs[n][1].audit() if r["action"] == "created"]
            self.assertEqual(len(created), 1, created)
            self.assertEqual(created[0]["key"], h.fp(new["consumerKey"]))
            self.assertEqual(procs["a"][1].audit(), [], "a died before it knew")
            # Recovery removed what it used.
            deadline = time.time() + 10
            while http_json(lease_port, "/__lease/configmaps")["items"]["keyrot/keyrotd-state"]["data"]:
                self.assertLess(time.time(), deadline, "recovery state left behind")
                time.sleep(0.2)
        finally:
            if os.environ.get("KEEP"):
                print("kept", d, file=sys.stderr)
                for p, _ in procs.values():
                    p.kill()
                lease.terminate()
                emu.stop()
            else:
                stop_all(procs, lease, emu, d)

    def test_generate_journal_survives_failover(self):
        self.run_case("generate")

    def test_audit_intent_survives_failover(self):
        self.run_case("import")


def http_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return json.loads(r.read())


class RollingUpdateTest(unittest.TestCase):
    """A rolling update in the middle of a pass, under Apigee latency: the leader
    gets SIGTERM while its writes are in flight, a new replica starts, the old
    follower is there too. The emulator's write history (one span per write,
    from arrival to answer, named by the replica's User-Agent) must show that no
    two processes ever had writes in flight at once: the old leader releases the
    lease only once its writes drained, and every write is fenced by the lease."""

    def test_no_two_writers_at_once(self):
        d = h.tmpdir()
        apps = []
        for i in range(12):
            apps.append({"developerEmail": DEV, "name": "roll-%02d" % i,
                         "credentials": [{"consumerKey": "ROLLkey%025d" % i, "issuedAt": "-20d",
                                          "expiresAt": "+2d",
                                          "apiProducts": [{"apiproduct": "payments",
                                                           "status": "approved"}]}]})
        emu = h.Emulator(d, {"organization": "demo",
                             "developers": [{"email": DEV, "firstName": "P", "lastName": "N",
                                             "userName": "p"}],
                             "apiProducts": [{"name": "payments", "approvalType": "auto"}],
                             "apps": apps})
        # Slow writes, fast reads: a write of the old leader is still in flight
        # when a new leader, had it the lease, would already be writing.
        emu.hook("faults", {"writeLatencyMs": 2500})
        lease, lease_port, token_file = start_lease_server(d)
        procs = {}

        def start(name):
            procs[name] = start_replica(d, name, emu.url, lease_port, token_file,
                                        lease=("6s", "4s", "500ms"))

        try:
            start("a")
            time.sleep(0.5)
            start("b")
            # Wait until the leader is in the middle of its pass.
            deadline = time.time() + 20
            while True:
                spans = emu.hook("writes")["writes"]
                if len(spans) >= 2:
                    break
                self.assertLess(time.time(), deadline, "no writes")
                time.sleep(0.05)
            first = spans[0]["userAgent"]
            leader = "a" if "keyrotd-a" in first else "b"
            procs[leader][0].send_signal(signal.SIGTERM)  # the rolling update
            start("c")                                     # its replacement
            deadline = time.time() + 60

            def rotated():
                n = 0
                for a in emu.state()["apps"]:
                    n += any(any(x["name"] == "keyrotd_replaces" and not x["value"].startswith("pending:")
                                 for x in c.get("attributes", [])) for c in a["credentials"])
                return n
            while rotated() < len(apps):
                self.assertLess(time.time(), deadline, "not every app was rotated")
                time.sleep(0.2)
            rc = procs[leader][0].wait(30)
            self.assertEqual(rc, 0, "the old leader stopped cleanly")
            spans = sorted(emu.hook("writes")["writes"], key=lambda w: w["start"])
            writers = {w["userAgent"] for w in spans}
            self.assertGreaterEqual(len(writers), 2, "the work moved to another replica: %s" % writers)
            overlaps = []
            for i, w in enumerate(spans):
                for v in spans[i + 1:]:
                    if v["start"] >= w["end"]:
                        break
                    if v["userAgent"] != w["userAgent"]:
                        overlaps.append((w, v))
            self.assertEqual(overlaps[:3], [], "two processes had writes in flight at once")
            for a in emu.state()["apps"]:
                marked = [c for c in a["credentials"]
                          if any(x["name"] == "keyrotd_replaces" for x in c.get("attributes", []))]
                self.assertEqual(len(marked), 1, a["name"])
            print("rolling update: %d writes by %s, no overlap" % (len(spans), sorted(writers)),
                  file=sys.stderr)
        finally:
            stop_all(procs, lease, emu, d)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
