#!/usr/bin/env python3
"""`keyrotd run` as a service, against the Apigee emulator over real HTTP: the
scheduler wakes up when a key falls due (not at the next interval), SIGHUP
reloads (good and bad configs), SIGTERM during a slow pass leaves nothing the
next start cannot complete, the systemd notify protocol over a datagram socket,
a real Prometheus server scraping /metrics (PromQL over its HTTP API) and
`promtool check metrics`, JSON logs, /readyz, perKey: false, and no secret in
any output. Run by ctest (tests/integration/daemon.cmake), one class per test."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import harness as h

DEV = "dev@partner.example.com"


def seed(due=3, due_expires="+2d", fresh=1):
    """`due` apps whose one key expires at `due_expires`, `fresh` apps with a
    key good for 60 days."""
    apps = []
    for i in range(due):
        apps.append({"developerEmail": DEV, "name": "due-%02d" % i,
                     "attributes": [{"name": "Notes", "value": "keep"}],
                     "credentials": [{"consumerKey": "DUEkey%026d" % i,
                                      "consumerSecret": "DUEsecret%023d" % i,
                                      "issuedAt": "-28d", "expiresAt": due_expires,
                                      "attributes": [{"name": "env", "value": "prod"}],
                                      "apiProducts": ["payments"]}]})
    for i in range(fresh):
        apps.append({"developerEmail": DEV, "name": "fresh-%02d" % i,
                     "credentials": [{"consumerKey": "FRESHkey%024d" % i,
                                      "consumerSecret": "FRESHsecret%021d" % i,
                                      "issuedAt": "-1d", "expiresAt": "+60d",
                                      "apiProducts": ["payments"]}]})
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "Pat", "lastName": "Ner",
                            "userName": "pat"}],
            "apiProducts": [{"name": "payments"}],
            "apps": apps}


def successors(app, old_fp, complete_only=True):
    out = []
    for c in app.get("credentials", []):
        for a in c.get("attributes", []):
            if a["name"] != "keyrotd_replaces":
                continue
            if a["value"] == old_fp or (not complete_only and a["value"] == "pending:" + old_fp):
                out.append(c)
    return out


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return 0, str(e)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


def samples(metrics_text, name):
    """{labels-string: value} of every sample of `name` in an exposition."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name:
            out[m.group(2) or ""] = float(m.group(3))
    return out


class Daemon:
    """`keyrotd run` in the background; stderr to a file; the port it listens on."""

    def __init__(self, k, env=None, args=()):
        self.k = k
        self.err_path = os.path.join(k.dir, "run-%d.log" % int(time.time() * 1000))
        self.err = open(self.err_path, "w")
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        e.update(env or {})
        self.started = time.time()
        self.proc = subprocess.Popen([h.KEYROTD, "run", "-c", k.config, *args], cwd=k.dir,
                                     stdout=self.err, stderr=subprocess.STDOUT, env=e)
        self.port = int(wait_for("keyrotd's listen port", self._port, 20))
        self.url = "http://127.0.0.1:%d" % self.port

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("keyrotd exited %s: %s" % (self.proc.returncode, self.log()))
        m = re.search(r'"?port"?[=:]"?(\d+)', self.log())
        return m and m.group(1)

    def get(self, path):
        return http_get(self.url + path)

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, (status, body)
        return body

    def wait_ready(self, timeout=30):
        """Until the first pass succeeded (readiness no longer waits for it)."""
        def first_pass():
            st, body = self.get("/metrics")
            return st == 200 and "keyrotd_last_successful_pass_timestamp_seconds{" in body
        wait_for("a successful pass", first_pass, timeout)

    def kill(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals, waits, records the output; returns (exit code, seconds taken)."""
        t0 = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = "killed after %ds" % timeout
        took = time.time() - t0
        self.err.close()
        self.k.outputs.append(self.log())
        return rc, took


class DaemonCase(unittest.TestCase):
    """An emulator, a keyrotd config, and checks every test ends with."""
    policies = None
    extra_config = ""
    seed_args = {}

    def setUp(self):
        self.dir = h.tmpdir()
        self.emu = h.Emulator(self.dir, seed(**self.seed_args))
        self.k = h.Keyrotd(self.dir, self.emu.url, self.policies or [h.policy(overlap="1h")],
                           self.extra_config)
        self.daemons = []
        self.secrets = [s for a in self.emu.state()["apps"] for c in a.get("credentials", [])
                        for s in (c["consumerKey"], c["consumerSecret"])]
        self.scraped = []  # /metrics bodies, for the secrets check

    def tearDown(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        self.emu.stop()
        if sys.exc_info()[0] is None:
            h.rmtree(self.dir)

    def start(self, **kw):
        d = Daemon(self.k, **kw)
        self.daemons.append(d)
        return d

    def assert_no_secrets(self):
        """No consumer key or secret (the seed's or any keyrotd made) in any output."""
        now = [s for a in self.emu.state()["apps"] for c in a.get("credentials", [])
               for s in (c["consumerKey"], c["consumerSecret"])]
        text = "\n".join(self.k.outputs + self.scraped) + self.k.audit_text()
        for d in self.daemons:
            text += d.log()
        self.assertGreater(len(text), 0)
        for s in set(self.secrets + now):
            self.assertNotIn(s, text)

    def due_fps(self):
        return {a["name"]: h.fp(a["credentials"][0]["consumerKey"])
                for a in self.emu.state()["apps"] if a["name"].startswith("due-")}

    def assert_one_complete_successor_each(self, due):
        for a in self.emu.state()["apps"]:
            if a["name"] not in due:
                continue
            complete = successors(a, due[a["name"]])
            anything = successors(a, due[a["name"]], complete_only=False)
            self.assertEqual(len(complete), 1, (a["name"], a["credentials"]))
            self.assertEqual(len(anything), 1, a["name"])
            self.assertEqual([p["apiproduct"] for p in complete[0]["apiProducts"]], ["payments"])
            self.assertIn({"name": "env", "value": "prod"}, complete[0]["attributes"])


class ScheduleTest(DaemonCase):
    """(1) Keys entering rotateBefore seconds after the start get their successor
    within seconds, with interval 10m: the next-action timer, not the next pass."""
    seed_args = {"due": 3, "due_expires": "+40s"}
    policies = [h.policy(before="30s", overlap="1h", lifetime="30d")]

    def test_rotates_when_due_not_at_interval(self):
        due = self.due_fps()
        d = self.start()
        d.wait_ready()
        t_ready = time.time()
        # Not yet due at the first pass: nothing written.
        self.assertEqual(self.k.audit(), [])
        m = d.metrics()
        nxt = samples(m, "keyrotd_next_action_timestamp_seconds")
        self.assertEqual(len(nxt), 1, m)
        due_at = list(nxt.values())[0]
        self.assertAlmostEqual(due_at, d.started + 10, delta=3)

        def rotated():
            return all(successors(a, due[a["name"]]) for a in self.emu.state()["apps"]
                       if a["name"] in due)
        wait_for("successors", rotated, 30, step=0.2)
        t_done = time.time()
        latency = t_done - due_at
        print("due -> successor: %.2f s (first pass ready %.2f s after start)"
              % (latency, t_ready - d.started), file=sys.stderr)
        self.assertLess(latency, 5.0, "successors made within seconds of the due moment")
        created = [a for a in self.k.audit() if a["action"] == "created"]
        self.assertEqual(len(created), 3)
        for a in created:
            ts = time.mktime(time.strptime(a["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            self.assertGreaterEqual(ts + 1, due_at, "not before it was due")
        self.assert_one_complete_successor_each(due)
        rc, took = d.stop()
        self.assertEqual(rc, 0)
        self.assertLess(took, 5)
        self.assert_no_secrets()


class ReloadTest(DaemonCase):
    """(2) SIGHUP: a good config takes effect (counted as success), a bad one is
    logged and counted, the old one stays, the process lives on."""
    policies = [h.policy(name="nothing", match={"apps": ["no-such-app-*"]})]

    def test_good_then_bad(self):
        due = self.due_fps()
        d = self.start()
        d.wait_ready()
        self.assertEqual(self.k.audit(), [])
        m = d.metrics()
        self.assertEqual(samples(m, "keyrotd_config_reloads_total"),
                         {'{outcome="failure"}': 0, '{outcome="success"}': 0})

        self.k.set_policies([h.policy(name="all", overlap="1h")])
        d.kill(signal.SIGHUP)
        wait_for("successors after reload", lambda: all(
            successors(a, due[a["name"]]) for a in self.emu.state()["apps"]
            if a["name"] in due), 20, step=0.2)
        wait_for("reload counted", lambda: samples(d.metrics(), "keyrotd_config_reloads_total")
                 .get('{outcome="success"}') == 1, 10)
        wait_for("keys of the new policy", lambda: any(
            'policy="all"' in l for l in samples(d.metrics(), "keyrotd_keys")), 10)
        self.assert_one_complete_successor_each(due)

        # A bad policy: the old config stays in force.
        self.k.set_policies([h.policy(name="broken", overlap="banana")])
        d.kill(signal.SIGHUP)
        wait_for("failed reload counted", lambda: samples(
            d.metrics(), "keyrotd_config_reloads_total").get('{outcome="failure"}') == 1, 10)
        time.sleep(0.5)
        self.assertIsNone(d.proc.poll(), "still running")
        self.assertEqual(d.get("/healthz")[0], 200)
        self.assertEqual(d.get("/readyz")[0], 200)
        log = d.log()
        self.assertIn("reload failed", log)
        self.assertIn("rotation.overlap", log)
        m = d.metrics()
        self.assertEqual(samples(m, "keyrotd_config_reloads_total"),
                         {'{outcome="failure"}': 1, '{outcome="success"}': 1})
        self.assertFalse(any('policy="broken"' in l for l in samples(m, "keyrotd_keys")))
        # A broken config file (not YAML at all) too.
        with open(self.k.config, "a") as f:
            f.write("\n: [unclosed\n")
        d.kill(signal.SIGHUP)
        wait_for("second failed reload", lambda: samples(
            d.metrics(), "keyrotd_config_reloads_total").get('{outcome="failure"}') == 2, 10)
        self.assertEqual(d.get("/readyz")[0], 200)
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        self.assert_no_secrets()


class ReloadDuringPassTest(DaemonCase):
    """SIGHUP while a pass is in flight: the pass finishes with the policies it
    started with, then a pass with the new ones follows at once."""
    seed_args = {"due": 12}

    def test_reload_mid_pass(self):
        self.emu.hook("faults", {"latencyMs": 150})
        d = self.start()
        wait_for("the pass to start writing", lambda: self.k.audit(), 20)
        self.k.set_policies([h.policy(name="renamed", overlap="1h")])
        d.kill(signal.SIGHUP)
        wait_for("keys under the new policy", lambda: any(
            'policy="renamed"' in l for l in samples(d.metrics(), "keyrotd_keys")), 60, step=0.3)
        self.emu.hook("faults", {"latencyMs": 0})
        d.wait_ready()
        self.assertEqual(samples(d.metrics(), "keyrotd_config_reloads_total")
                         ['{outcome="success"}'], 1)
        self.assert_one_complete_successor_each(self.due_fps())
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        self.assert_no_secrets()


class StopTest(DaemonCase):
    """(3) SIGTERM during a slow pass: exits 0 promptly (in-flight calls finish,
    no new one starts); `keyrotd once` afterwards converges to exactly one
    complete successor per key."""
    seed_args = {"due": 20}

    def test_sigterm_mid_pass(self):
        due = self.due_fps()
        self.emu.hook("faults", {"latencyMs": 300})
        d = self.start()
        wait_for("the pass to be writing", lambda: any(
            a["action"] == "created" for a in self.k.audit()), 30, step=0.05)
        rc, took = d.stop(signal.SIGTERM)
        print("SIGTERM mid-pass: exit %s after %.2f s" % (rc, took), file=sys.stderr)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(took, 3.0, "in-flight calls take 0.3 s; no new ones may start")
        log = d.log()
        self.assertIn("stopping", log)
        self.assertNotIn("stopping now", log, "no forced exit needed")
        # Not everything was done: the stop really cut the pass short.
        done = [a for a in self.k.audit() if a["action"] == "completed"]
        self.assertLess(len(done), len(due))
        self.assertFalse(any(a["action"] == "failed" for a in self.k.audit()),
                         "calls refused because of the stop are not failures")
        self.emu.hook("faults", {"latencyMs": 0})
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_one_complete_successor_each(due)
        self.assertEqual(self.k.run("plan").returncode, 0)
        self.assertEqual(self.emu.hook("availability")["everLostLast"], [])
        self.assert_no_secrets()

    def test_idle_stop(self):
        d = self.start()
        d.wait_ready()
        rc, took = d.stop(signal.SIGINT)
        self.assertEqual(rc, 0)
        self.assertLess(took, 2.0)

    def test_second_signal_stops_at_once(self):
        due = self.due_fps()
        self.emu.hook("faults", {"latencyMs": 3000})
        d = self.start()
        time.sleep(1.0)  # the inventory read is in flight
        d.kill(signal.SIGTERM)
        time.sleep(0.3)
        self.assertIsNone(d.proc.poll(), "waits for the call in flight")
        rc, took = d.stop(signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertLess(took, 1.5)
        self.assertIn("stopping now", d.log())
        self.emu.hook("faults", {"latencyMs": 0})
        self.assertEqual(self.k.run("once").returncode, 0)
        self.assert_one_complete_successor_each(due)
        self.assert_no_secrets()


class NotifyTest(DaemonCase):
    """(4) The systemd notify protocol over $NOTIFY_SOCKET, read by a datagram
    socket in the test."""

    def test_notify(self):
        path = os.path.join(self.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        msgs = []
        done = threading.Event()

        def reader():
            while not done.is_set():
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                msgs.append((time.time(), data.decode()))
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            d = self.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
            wait_for("READY=1", lambda: any("READY=1" in m for _, m in msgs), 10)
            d.wait_ready()
            time.sleep(3.2)
            wd = [ts for ts, m in msgs if m == "WATCHDOG=1"]
            self.assertGreaterEqual(len(wd), 5, msgs)
            gaps = [b - a for a, b in zip(wd, wd[1:])]
            self.assertTrue(all(0.3 < g < 0.8 for g in gaps), gaps)
            ready = [m for _, m in msgs if "READY=1" in m][0]
            self.assertIn("STATUS=", ready)
            # A STATUS= after the first pass says how it went.
            wait_for("STATUS after a pass", lambda: any(
                "STATUS=demo: last pass ok" in m for _, m in msgs), 10)

            n = len(msgs)
            d.kill(signal.SIGHUP)
            wait_for("READY=1 after RELOADING=1", lambda: any(
                "READY=1" in m for _, m in msgs[n:]), 10)
            after = [m for _, m in msgs[n:] if m != "WATCHDOG=1"]
            self.assertTrue(after[0].startswith("RELOADING=1\nMONOTONIC_USEC="), after)
            self.assertIn("READY=1", after[1])

            # A bad config: RELOADING=1, then READY=1 all the same (the old one runs).
            self.k.set_policies([h.policy(overlap="banana")])
            n = len(msgs)
            d.kill(signal.SIGHUP)
            wait_for("READY=1 after a failed reload", lambda: any(
                "READY=1" in m for _, m in msgs[n:]), 10)
            after = [m for _, m in msgs[n:] if m != "WATCHDOG=1"]
            self.assertTrue(after[0].startswith("RELOADING=1"), after)
            self.assertIn("READY=1", after[1])
            self.assertIn("reload FAILED", after[1])

            n = len(msgs)
            rc, _ = d.stop()
            self.assertEqual(rc, 0)
            time.sleep(0.3)
            late = [m for _, m in msgs[n:]]
            self.assertTrue(any(m.startswith("STOPPING=1") for m in late), late)
            stop_at = [i for i, m in enumerate(late) if m.startswith("STOPPING=1")][0]
            self.assertNotIn("WATCHDOG=1", late[stop_at + 1:])
        finally:
            done.set()
            sock.close()
            t.join(2)
        # WATCHDOG_PID naming another process: no watchdog pings.
        self.k.set_policies([h.policy(overlap="1h")])
        sock2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path2 = os.path.join(self.dir, "notify2.sock")
        sock2.bind(path2)
        sock2.settimeout(0.2)
        try:
            d2 = self.start(env={"NOTIFY_SOCKET": path2, "WATCHDOG_USEC": "200000",
                                 "WATCHDOG_PID": "1"})
            d2.wait_ready()
            time.sleep(0.6)
            got = []
            while True:
                try:
                    got.append(sock2.recv(4096).decode())
                except socket.timeout:
                    break
            self.assertNotIn("WATCHDOG=1", got)
            self.assertTrue(any(m.startswith("READY=1") for m in got), got)
            self.assertEqual(d2.stop()[0], 0)
        finally:
            sock2.close()
        self.assert_no_secrets()


class PrometheusTest(DaemonCase):
    """(5) A real Prometheus server scrapes keyrotd; PromQL over its HTTP API
    returns the expected series and values; promtool accepts the exposition."""
    seed_args = {"due": 3, "fresh": 2}

    def test_scraped_by_prometheus(self):
        prom = shutil.which("prometheus") or "/usr/bin/prometheus"
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not os.path.exists(prom) or not os.path.exists(promtool):
            self.fail("prometheus/promtool not found: install Debian's prometheus package")
        d = self.start()
        d.wait_ready()
        body = d.metrics()
        self.scraped.append(body)
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

        port = free_port()
        pdir = os.path.join(self.dir, "prom")
        os.makedirs(os.path.join(pdir, "data"))
        cfg = os.path.join(pdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n  - job_name: keyrotd\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % d.port)
        plog = open(os.path.join(pdir, "prometheus.log"), "w")
        p = subprocess.Popen([prom, "--config.file=" + cfg,
                              "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                              "--web.listen-address=127.0.0.1:%d" % port,
                              "--storage.tsdb.retention.time=1h"],
                             stdout=plog, stderr=subprocess.STDOUT, cwd=pdir)
        api = "http://127.0.0.1:%d" % port
        try:
            wait_for("prometheus ready", lambda: p.poll() is None and
                     http_get(api + "/-/ready")[0] == 200 or p.poll() is not None, 60, step=0.3)
            self.assertIsNone(p.poll(), open(plog.name).read())

            def query(q):
                st, out = http_get(api + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
                if st != 200:
                    return []
                res = json.loads(out)
                self.assertEqual(res["status"], "success", res)
                return [(r["metric"], float(r["value"][1])) for r in res["data"]["result"]]

            def value(q):
                r = query(q)
                return r[0][1] if len(r) == 1 else None

            wait_for("a scrape", lambda: value('up{job="keyrotd"}') == 1, 30, step=0.5)
            version = subprocess.run([h.KEYROTD, "--version"], capture_output=True,
                                     text=True).stdout.split()[1]
            info = query("keyrotd_build_info")
            self.assertEqual(len(info), 1, info)
            self.assertEqual(info[0][0]["version"], version)
            self.assertEqual(info[0][1], 1)

            created = len([a for a in self.k.audit() if a["action"] == "created"])
            self.assertEqual(created, 3)
            self.assertEqual(value('keyrotd_rotations_total{organization="demo",policy="p",'
                                   'outcome="success"}'), 3)
            self.assertEqual(query('keyrotd_rotations_total{outcome="failure"}'), [])
            # Keys: 3 rotated (old in overlap, successor valid) + 2 fresh.
            keys = {m["state"]: v for m, v in query('keyrotd_keys{organization="demo"}')}
            self.assertEqual(keys, {"valid": 5, "due": 0, "overlap": 3, "expired": 0,
                                    "revoked": 0, "skipped": 0})
            self.assertEqual(value('count(keyrotd_key_expiry_timestamp_seconds)'), 8)
            # Every request keyrotd made is counted: the emulator saw the same number.
            emu_total = self.emu.hook("requests")["total"]
            wait_for("request counts scraped", lambda: value(
                "sum(keyrotd_apigee_requests_total)") == emu_total, 10, step=0.5)
            self.assertGreater(value('keyrotd_apigee_requests_total{method="POST",code="200"}'), 0)
            self.assertEqual(query('keyrotd_apigee_requests_total{code!~"2.."}'), [])
            last = value('keyrotd_last_successful_pass_timestamp_seconds{organization="demo"}')
            self.assertIsNotNone(last)
            self.assertTrue(d.started - 1 <= last <= time.time(), (d.started, last))
            self.assertEqual(value('keyrotd_config_reloads_total{outcome="success"}'), 0)
            self.assertEqual(value('keyrotd_passes_total{outcome="success"}'), 1)
            self.assertEqual(value('keyrotd_pass_duration_seconds_count'), 1)
        finally:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            plog.close()
        self.scraped.append(d.metrics())
        self.assertEqual(d.stop()[0], 0)
        self.assert_no_secrets()


class JsonLogTest(DaemonCase):
    """(6) log: {format: json}: every line a JSON object with severity (as Cloud
    Logging reads it), message and the fields of the event."""
    extra_config = "log: {level: info, format: json}\n"
    policies = [h.policy(overlap="1m")]  # warns at load: the warning is JSON too

    def test_json_lines(self):
        d = self.start()
        d.wait_ready()
        self.k.set_policies([h.policy(overlap="banana")])
        d.kill(signal.SIGHUP)
        wait_for("failed reload", lambda: "reload failed" in d.log(), 10)
        rc, _ = d.stop()
        self.assertEqual(rc, 0)
        lines = [l for l in d.log().splitlines() if l.strip()]
        self.assertGreater(len(lines), 5)
        objs = []
        for l in lines:
            o = json.loads(l)  # every line parses
            self.assertIsInstance(o, dict)
            self.assertIn(o["severity"], ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
            self.assertIsInstance(o["message"], str)
            self.assertIn("time", o)
            objs.append(o)
        created = [o for o in objs if o["message"] == "created"]
        self.assertEqual(len(created), 3)
        # Every audit record is a log line too, marked `audit` (kept by a cluster's log pipeline).
        audited = [o for o in objs if "audit" in o]
        self.assertEqual([(o["audit"], o["key"]) for o in audited],
                         [(a["action"], a["key"]) for a in self.k.audit()])
        for o in created:
            self.assertEqual(o["organization"], "demo")
            self.assertEqual(o["developer"], DEV)
            self.assertTrue(o["app"].startswith("due-"))
            self.assertEqual(o["policy"], "p")
            self.assertRegex(o["key"], "^[0-9a-f]{16}$")
            self.assertRegex(o["replaces"], "^[0-9a-f]{16}$")
        passes = [o for o in objs if o["message"] == "pass done"]
        self.assertGreaterEqual(len(passes), 1)
        self.assertEqual(passes[0]["organization"], "demo")
        self.assertTrue(any(o["severity"] == "WARNING" and "overlap" in o["message"]
                            for o in objs))
        self.assertTrue(any(o["severity"] == "ERROR" and "reload failed" in o["message"]
                            for o in objs))
        self.assert_no_secrets()


class ReadyzTest(DaemonCase):
    """(7) /readyz: ready while Apigee is down (a failing leader must stay
    scraped, and must not block a node drain), saying so in its body; not ready
    while stopping. /healthz 200 throughout; failed passes are retried with
    backoff."""

    def test_readyz_follows_passes(self):
        port = self.emu.port
        self.emu.stop()  # Apigee down
        d = self.start()
        time.sleep(1.5)
        st, body = d.get("/readyz")
        self.assertEqual(st, 200, body)
        self.assertIn("no successful pass", body)
        self.assertEqual(d.get("/healthz")[0], 200)
        time.sleep(2.5)
        fails = samples(d.metrics(), "keyrotd_passes_total")
        self.assertEqual(fails.get('{organization="demo",outcome="failure"}'), 1,
                         "one failure, then backoff (5 s), not a retry at full speed")
        self.emu = h.Emulator(self.dir, seed(), extra=("--port", str(port)))
        d.wait_ready(timeout=30)
        st, body = d.get("/readyz")
        self.assertEqual(st, 200)
        self.assertNotIn("no successful pass", body)
        self.assertEqual(d.stop()[0], 0)
        self.assert_no_secrets()


class PerKeyTest(DaemonCase):
    """(8) metrics: {perKey: false} drops keyrotd_key_expiry_timestamp_seconds."""
    extra_config = "metrics: {perKey: false}\n"

    def test_per_key_off(self):
        d = self.start()
        d.wait_ready()
        m = d.metrics()
        self.scraped.append(m)
        self.assertEqual(samples(m, "keyrotd_key_expiry_timestamp_seconds"), {})
        self.assertTrue(samples(m, "keyrotd_keys"))
        self.assertEqual(d.stop()[0], 0)
        # The default (on): one series per live key.
        with open(self.k.config) as f:
            text = f.read().replace("metrics: {perKey: false}\n", "")
        with open(self.k.config, "w") as f:
            f.write(text)
        d2 = self.start()
        d2.wait_ready()
        m = d2.metrics()
        self.scraped.append(m)
        self.assertEqual(len(samples(m, "keyrotd_key_expiry_timestamp_seconds")), 7)
        self.assertEqual(d2.stop()[0], 0)
        self.assert_no_secrets()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
