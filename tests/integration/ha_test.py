#!/usr/bin/env python3
"""High availability: two `keyrotd run` replicas with leader election through a
Lease (tests/integration/lease_server.py stands in for the API server). Only
the leader writes; killing it hands the work to the other within the lease."""
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


class HaTest(unittest.TestCase):
    def test_only_the_leader_writes_and_a_follower_takes_over(self):
        d = h.tmpdir()
        emu = h.Emulator(d, seed())
        lease_log = open(os.path.join(d, "lease.log"), "w")
        lease_port_file = os.path.join(d, "lease.port")
        lease = subprocess.Popen([sys.executable, os.path.join(HERE, "lease_server.py"),
                                  "--token", "kube-token", "--port-file", lease_port_file],
                                 stdout=lease_log, stderr=subprocess.STDOUT)
        procs = {}
        try:
            deadline = time.time() + 10
            while not (os.path.exists(lease_port_file) and open(lease_port_file).read().strip()):
                self.assertLess(time.time(), deadline, "lease server did not start")
                time.sleep(0.05)
            lease_port = int(open(lease_port_file).read().strip())
            token_file = os.path.join(d, "token")
            with open(token_file, "w") as f:
                f.write("kube-token")
            ports = {}
            for name in ("a", "b"):
                wd = os.path.join(d, name)
                os.makedirs(wd)
                ports[name] = free_port()
                k = h.Keyrotd(wd, emu.url, [h.policy(overlap="1h")],
                              extra_config="")
                with open(k.config) as f:
                    cfg = f.read().replace("listen: 127.0.0.1:0",
                                           "listen: 127.0.0.1:%d" % ports[name])
                with open(k.config, "w") as f:
                    f.write(cfg)
                env = dict(os.environ, POD_NAME="keyrotd-" + name, POD_NAMESPACE="keyrot",
                           KEYROTD_LEASE_URL="http://127.0.0.1:%d" % lease_port,
                           KEYROTD_LEASE_TOKEN_FILE=token_file, KEYROTD_LEASE_CA_FILE="",
                           KEYROTD_LEASE_DURATION="3s", KEYROTD_LEASE_RENEW_DEADLINE="2s",
                           KEYROTD_LEASE_RETRY_PERIOD="500ms")
                log = open(os.path.join(wd, "keyrotd.log"), "w")
                procs[name] = (subprocess.Popen([h.KEYROTD, "run", "-c", k.config], cwd=wd,
                                                env=env, stdout=log, stderr=subprocess.STDOUT), k)
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


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
