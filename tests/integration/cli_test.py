#!/usr/bin/env python3
"""Every keyrotd command tells the truth (issue 16), against the Apigee emulator
over real HTTP on loopback: one keyrotd per stateDir (exit 75), SIGINT/SIGTERM
during `once` (no half-done rotation, exit 130/143), `rotate --app` exits 1
when it made no successor and matches emails case-insensitively, a failed pass
prints no result, missing credentials and files are configuration errors,
options a command does not take are usage errors, tables align by display
width, YAML traps get hints, JSON logs carry numbers, the new gauges, and a
running keyrotd is not dumpable. Run by ctest (tests/integration/cli.cmake),
one class per test."""
import json
import os
import warnings
import re
import signal
import subprocess
import sys
import time
import unicodedata
import unittest
import urllib.request

import harness as h

BEN = "ben.okafor@x.example.com"
OLD = "old@x.example.com"
NOBODY = 65534


def key(app, expires, issued="-20d"):
    k = "K" + re.sub(r"[^A-Za-z0-9]", "x", app.encode("ascii", "replace").decode())
    return {"consumerKey": (k + "0" * 32)[:32], "consumerSecret": "S" * 20, "issuedAt": issued,
            "expiresAt": expires, "apiProducts": ["payments"]}


def seed(extra_due=0):
    apps = [
        {"developerEmail": BEN, "name": "shop", "credentials": [key("shop", "+2d")]},
        {"developerEmail": BEN, "name": "gone", "credentials": [key("gone", "-60d", "-90d")]},
        {"developerEmail": OLD, "name": "dormant", "credentials": [key("dormant", "+2d")]},
        {"developerEmail": BEN, "name": "日本アプリ", "credentials": [key("jp", "+60d")]},
        {"developerEmail": BEN, "name": "ünïcode", "credentials": [key("uni", "+60d")]},
    ]
    for i in range(extra_due):
        apps.append({"developerEmail": BEN, "name": "bulk-%02d" % i,
                     "credentials": [key("bulk%02d" % i, "+2d")]})
    return {"organization": "demo",
            "developers": [{"email": BEN, "firstName": "Ben", "lastName": "Okafor",
                            "userName": "ben"},
                           {"email": OLD, "firstName": "Old", "lastName": "Gone",
                            "userName": "old", "status": "inactive"}],
            "apiProducts": [{"name": "payments"}],
            "apps": apps}


def wait_for(what, fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def marker(cred):
    for a in cred.get("attributes", []):
        if a["name"] == "keyrotd_replaces":
            return a["value"]
    return None


def width(s):
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


class Base(unittest.TestCase):
    extra_due = 0
    policies = None

    def setUp(self):
        self.dir = h.tmpdir()
        self.emu = h.Emulator(self.dir, seed(self.extra_due))
        self.k = h.Keyrotd(self.dir, self.emu.url, self.policies or [h.policy(overlap="1h")])

    def tearDown(self):
        self.emu.stop()
        h.rmtree(self.dir)

    def write_config(self, text):
        with open(self.k.config, "w") as f:
            f.write(text)

    def config_with(self, **apigee):
        """The harness's config with apigee fields replaced (auth, caFile)."""
        lines = ["apigee:", "  url: %s" % self.emu.url]
        for k, v in apigee.items():
            lines.append("  %s: %s" % (k, v))
        lines += ["listen: 127.0.0.1:0", "stateDir: ./state", "policies: ./policies", ""]
        self.write_config("\n".join(lines))

    def run_env(self, args, env=None, **kw):
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([h.KEYROTD, *args], capture_output=True, text=True, cwd=self.dir,
                              env=e, timeout=60, **kw)


class LockTest(Base):
    def test_second_instance_refused_with_75(self):
        d = self.k.start("run")
        try:
            lock = os.path.join(self.k.state_dir, "lock")
            wait_for("the lock file", lambda: os.path.exists(lock) and open(lock).read().strip())
            self.assertEqual(open(lock).read().strip(), str(d.pid))
            for cmd in (["once"], ["run"], ["rotate", "--app", "demo/%s/shop" % BEN]):
                r = self.k.run(*cmd)
                self.assertEqual(r.returncode, 75, cmd)
                self.assertIn("in use by PID %d" % d.pid, r.stdout + r.stderr)
            # plan, inventory and validate do not write: no lock needed
            self.assertIn(self.k.run("plan").returncode, (0, 2))
            self.assertEqual(self.k.run("inventory").returncode, 0)
        finally:
            rc, out = self.k.collect(d, signal.SIGTERM)
        self.assertEqual(rc, 0, out)
        # released with the process
        self.assertEqual(self.k.run("once").returncode, 0)


class SignalTest(Base):
    extra_due = 30

    def stop_during_once(self, sig, code):
        self.emu.hook("faults", {"latencyMs": 150})
        p = self.k.start("once")
        wait_for("a first rotation", lambda: any(r["action"] == "created"
                                                 for r in self.k.audit()), 60)
        p.send_signal(sig)
        rc, out = self.k.collect(p, timeout=60)
        self.emu.hook("faults", {"latencyMs": 0})
        self.assertEqual(rc, code, out)
        self.assertIn("stopping: no new writes", out)
        self.assertNotIn("stopping now", out)  # finished within the bound
        created = {r["replaces"] for r in self.k.audit() if r["action"] == "created"}
        succ = {}
        for a in self.emu.state()["apps"]:
            for c in a.get("credentials", []):
                m = marker(c)
                if m:
                    self.assertFalse(m.startswith("pending:"), "half-done successor in " + a["name"])
                    succ[m] = a["name"]
        self.assertEqual(set(succ), created, "every successor has its audit record and back")
        self.assertLess(len(created), 31, "stopped before rotating everything")

    def test_sigterm(self):
        self.stop_during_once(signal.SIGTERM, 143)

    def test_sigint(self):
        self.stop_during_once(signal.SIGINT, 130)


class RotateTest(Base):
    def rotate(self, app, *extra):
        return self.k.run("rotate", "--app", app, *extra)

    def test_case_insensitive_email(self):
        r = self.rotate("demo/BEN.Okafor@X.example.com/shop")
        self.assertEqual(r.returncode, 0, r.stderr)
        app = self.emu.app(BEN, "shop")
        self.assertEqual(sum(1 for c in app["credentials"] if marker(c)), 1)

    def test_nothing_done_is_exit_1_with_reason(self):
        for app, why in (("demo/%s/nope" % BEN, "has no app nope"),
                         ("demo/%s/dormant" % OLD, "inactive"),
                         ("demo/%s/gone" % BEN, "no valid key"),
                         ("other/%s/shop" % BEN, "no policy names organization other")):
            r = self.rotate(app)
            self.assertEqual(r.returncode, 1, app + ": " + r.stderr)
            self.assertIn("not rotated", r.stderr)
            self.assertIn(why, r.stderr)
        self.assertEqual(self.emu.writes(), 0)

    def test_completing_a_pending_successor_is_not_a_rotation(self):
        old = key("half", "+2d")
        pending = key("halfnew", "+30d", "-1h")
        pending["attributes"] = [{"name": "keyrotd_replaces",
                                  "value": "pending:" + h.fp(old["consumerKey"])}]
        st = seed()
        st["apps"] = [{"developerEmail": BEN, "name": "half", "credentials": [old, pending]}]
        self.emu.hook("seed", st)
        r = self.rotate("demo/%s/half" % BEN)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("completed a successor an earlier pass had left pending", r.stderr)
        self.assertTrue(any(a["action"] == "completed" for a in self.k.audit()))

    def test_dry_run_says_it_once_and_counts_apart(self):
        r = self.rotate("demo/%s/shop" % BEN, "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = [l for l in r.stderr.splitlines() if "created" in l][0]
        self.assertEqual(line.count("dry run"), 1, line)
        done = [l for l in r.stderr.splitlines() if "pass done" in l][0]
        self.assertIn("actions_done=0", done)
        self.assertIn("dry_run_actions=1", done)
        self.assertNotIn("policy matches no app", r.stderr)


class FailedPassTest(Base):
    policies = [h.policy(name="typo-org", org="dmeo")]

    def test_no_result_on_failure(self):
        for args in (["plan"], ["inventory"]):
            r = self.k.run(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertEqual(r.stdout, "", args)
            self.assertIn("typo-org", r.stderr)
            self.assertIn("00.json", r.stderr)  # the file that names the org
            j = json.loads(self.k.run(*args, "--json").stdout)
            self.assertIsInstance(j, dict)
            self.assertIn("dmeo", j["error"])
        r = self.k.run("once")
        self.assertEqual(r.returncode, 1)
        failed = [l for l in r.stderr.splitlines() if "pass failed" in l][0]
        self.assertTrue(failed.split()[1] == "error", failed)
        self.assertRegex(failed, r'error="[^"]+')
        self.assertIn("typo-org", r.stderr)


class CredentialsTest(Base):
    def test_unset_env_variable(self):
        self.config_with(auth="{method: token-env, env: KEYROTD_TEST_TOKEN_UNSET}")
        env = {"KEYROTD_TEST_TOKEN_UNSET": ""}
        r = self.run_env(["validate", "-c", self.k.config], env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: apigee.auth.env", r.stderr)
        for cmd in ("plan", "once", "inventory", "run"):
            r = self.run_env([cmd, "-c", self.k.config], env)
            self.assertEqual(r.returncode, 78, cmd + ": " + r.stderr)
            self.assertIn("KEYROTD_TEST_TOKEN_UNSET", r.stderr)
        self.assertEqual(self.emu.hook("requests")["total"], 0)

    def test_missing_files(self):
        for field, apigee in (
                ("apigee.auth.path", {"auth": "{method: token-file, path: ./no-token}"}),
                ("apigee.auth.path", {"auth": "{method: google, path: ./no-sa.json}"}),
                ("apigee.caFile", {"auth": "{method: none}", "caFile": "./no-ca.pem"})):
            self.config_with(**apigee)
            r = self.k.run("validate")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertRegex(r.stderr, r"keyrotd.yaml:\d+:\d+: error: " + re.escape(field))
            self.assertIn("No such file", r.stderr)
            self.assertEqual(self.k.run("once").returncode, 78)


    def test_lease_settings(self):
        # Leader election's settings follow client-go's rule (lease > renew
        # deadline > 1.2 x retry): validate says so, run refuses with 78.
        env = {"KEYROTD_LEASE_URL": "http://127.0.0.1:9", "POD_NAMESPACE": "k",
               "POD_NAME": "p", "KEYROTD_LEASE_DURATION": "15s",
               "KEYROTD_LEASE_RENEW_DEADLINE": "10s", "KEYROTD_LEASE_RETRY_PERIOD": "9s"}
        r = self.run_env(["validate", "-c", self.k.config], env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("leader election", r.stderr)
        r = self.run_env(["run", "-c", self.k.config], env)
        self.assertEqual(r.returncode, 78, r.stderr)
        env["KEYROTD_LEASE_RETRY_PERIOD"] = "2s"
        r = self.run_env(["validate", "-c", self.k.config], env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class CliTest(Base):
    def test_options_a_command_does_not_take(self):
        for args in (["inventory", "--app", "x"], ["plan", "--dry-run"],
                     ["validate", "--json"], ["once", "--revoke-now"], ["plan", "--json=1"]):
            r = self.k.run(*args)
            self.assertEqual(r.returncode, 64, args)
        r = subprocess.run([h.KEYROTD, "plan", "--config=" + self.k.config], capture_output=True,
                           text=True, cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_tables_and_plurals(self):
        r = self.k.run("validate")
        self.assertIn("valid, 1 policy\n", r.stdout)
        r = self.k.run("inventory")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        head = lines[0]
        rows = [l for l in lines[1:] if l.startswith("demo ")]
        self.assertTrue(any("日本アプリ" in l for l in rows))
        col = width(head[:head.index("POLICY")])
        for l in rows:
            app = l.split()[2]
            self.assertEqual(width(l[:l.index("  p  ") + 2]), col, l)
        self.assertIn("1 app not rotated: developer inactive", r.stdout)
        dormant = [l for l in rows if "dormant" in l][0]
        self.assertIn("developer", dormant.split("  ")[-1])
        r = self.k.run("plan")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stdout, r"\n1 action pending.* over \d+ matched apps\n")

    def test_yaml_hints(self):
        with open(os.path.join(self.dir, "policies", "00.json"), "w") as f:
            pass
        os.remove(os.path.join(self.dir, "policies", "00.json"))
        with open(os.path.join(self.dir, "policies", "p.yaml"), "w") as f:
            f.write("name: p\norganization: demo\nmatch:\n  developers: [*@x.example.com]\n")
        r = self.k.run("validate")
        self.assertEqual(r.returncode, 1)
        self.assertIn('quote it: "*@x.example.com"', r.stderr)
        with open(os.path.join(self.dir, "policies", "p.yaml"), "w") as f:
            f.write("name: p\norganization: demo\nmatch:\n\tapps: [a]\n")
        r = self.k.run("validate")
        self.assertEqual(r.returncode, 1)
        self.assertIn("p.yaml:4:1: error: tab character in indentation", r.stderr)


class LogTest(Base):
    def test_json_numbers_info_and_debug(self):
        with open(self.k.config, "a") as f:
            f.write("log: {format: json, level: debug}\n")
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
        done = [l for l in lines if l["message"] == "pass done"][0]
        self.assertIsInstance(done["apps_seen"], int)
        self.assertIsInstance(done["seconds"], float)
        start = [l for l in lines if l["message"] == "pass starting"][0]
        self.assertEqual(start["severity"], "INFO")
        self.assertEqual(start["policies"], "p")
        decided = [l for l in lines if l["message"] == "policy decided"][0]
        self.assertEqual(decided["severity"], "DEBUG")
        self.assertEqual(decided["apps"], 5)  # 4 of ben's, and dormant
        self.assertEqual(decided["skipped"], 1)  # dormant's key


class MetricsTest(Base):
    policies = [h.policy(overlap="1h"),
                h.policy(name="nobody", match={"developers": ["*@nowhere.example"]},
                         overlap="1h")]

    def test_gauges(self):
        p = self.k.start("run")
        try:
            log = open(p.log.name)
            port = wait_for("port", lambda: (re.search(r"port=(\d+)", open(p.log.name).read())
                                             or [None, None])[1])
            url = "http://127.0.0.1:%s/metrics" % port

            def scrape():
                body = urllib.request.urlopen(url, timeout=5).read().decode()
                return body if "keyrotd_policy_apps" in body else None
            body = wait_for("metrics after a pass", scrape)
            log.close()
        finally:
            rc, out = self.k.collect(p, signal.SIGTERM)
        self.assertIn('keyrotd_policy_apps{organization="demo",policy="nobody"} 0', body)
        self.assertRegex(body, r'keyrotd_policy_apps\{organization="demo",policy="p"\} [1-9]')
        self.assertIn('keyrotd_apps_skipped{organization="demo",reason="developer-inactive"} 1',
                      body)
        self.assertRegex(body, r'keyrotd_keys\{organization="demo",policy="p",state="skipped"\} 1')
        self.assertIn("policy matches no app", out)
        self.assertIn("nobody", out)


class DumpableTest(Base):
    def run_as_nobody(self, env):
        os.chmod(self.dir, 0o755)
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
        os.makedirs(self.k.state_dir, exist_ok=True)
        os.chown(self.k.state_dir, NOBODY, NOBODY)
        e = dict(os.environ)
        e.update(env)
        out = open(os.path.join(self.dir, "nobody.log"), "w+")
        p = subprocess.Popen([h.KEYROTD, "run", "-c", self.k.config], cwd=self.dir, env=e,
                             stdout=out, stderr=subprocess.STDOUT, user=NOBODY, group=NOBODY)
        try:
            wait_for("keyrotd running", lambda: "keyrotd running" in open(out.name).read()
                     or p.poll() is not None)
            self.assertIsNone(p.poll(), open(out.name).read())
            # A process that is not dumpable has its /proc files owned by root.
            return os.stat("/proc/%d/environ" % p.pid).st_uid
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
            out.close()

    @unittest.skipIf(os.geteuid() != 0, "needs root to run keyrotd as nobody")
    def test_not_dumpable(self):
        self.assertEqual(self.run_as_nobody({}), 0)
        # the switch for debugging, and proof that the check can fail
        self.assertEqual(self.run_as_nobody({"KEYROTD_ALLOW_CORE_DUMPS": "1"}), NOBODY)


class ForecastTest(Base):
    """plan --within: what falls due in the window, not only what is due now (issue 11)."""

    def test_within_tells_the_truth(self):
        shop = h.fp(key("shop", "+2d")["consumerKey"])
        dormant = h.fp(key("dormant", "+2d")["consumerKey"])
        r = self.k.run("plan", "--within", "3d")
        self.assertEqual(r.returncode, 2, r.stderr)  # the exit code is about now
        self.assertIn("within 3d:\n", r.stdout)
        ahead = r.stdout.split("within 3d:\n")[1]
        self.assertRegex(ahead, r"revoke +%s +overlap over" % shop)  # an overlap after now
        self.assertRegex(ahead, r"dormant .*expire +%s +expires; not rotated: developer is "
                         r"inactive" % dormant)
        self.assertIn("2 items falling due within 3d\n", ahead)
        # The Apigee requests: the revocation (the write alone: the successor as
        # listed, no read back after 204) and the re-read of the app when it
        # falls due; an expiry costs none.
        self.assertRegex(ahead, r"\nApigee requests for demo within 3d: 2 for these actions "
                         r"\(busiest day \d{4}-\d\d-\d\d: 2; busiest minute [0-9T:-]+Z: 2\), and "
                         r"about \d+ list reads for the passes \(\d+ a day, 2 each\)\. Apigee's "
                         r"quota is 6,000 a minute per organization")
        r = self.k.run("once")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Nothing is due now, but the old key is revoked within the hour.
        r = self.k.run("plan")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("nothing to do\n"), r.stdout)
        r = self.k.run("plan", "--within", "2h", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual([(x["action"], x["app"], x["key"], x["forecast"]) for x in rows],
                         [("revoke", "shop", shop, True)], rows)
        at = time.mktime(time.strptime(rows[0]["at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertAlmostEqual(at, time.time() + 3600, delta=120)
        self.assertEqual(rows[0]["developer"], BEN)
        self.assertEqual(rows[0]["apiCalls"], 1)  # the revoke itself (docs/performance.md)
        r = self.k.run("plan", "--within", "1m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("nothing to do now\n"), r.stdout)
        self.assertIn("\nnothing falls due within 1m\nApigee requests for demo within 1m: 0 "
                      "for these actions, and about ", r.stdout)
        for args in (["plan", "--within", "soon"], ["plan", "--within", "0"], ["plan", "--within"],
                     ["inventory", "--within", "7d"], ["once", "--within=7d"]):
            self.assertEqual(self.k.run(*args).returncode, 64, args)


if __name__ == "__main__":
    warnings.simplefilter("ignore", ResourceWarning)  # the harness leaves a file or two open
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2, warnings="ignore")
