#!/usr/bin/env python3
"""Chaos suite: keyrotd against a faulty emulator, killed with SIGKILL at random
moments, and several daemons racing on one organisation. Everything asserted
here is read from the emulator's state and availability history and from
keyrotd's audit logs (docs/reliability.md explains each assertion).

  ChaosTest  500 apps, 3 policies, both methods; 20% 503, 10% 429, 5% of writes
             answered by a dropped connection after they took effect, 50 ms
             latency; `keyrotd run` SIGKILLed >= 10 times and restarted; then
             it must converge.
  RaceTest   2 and 3 `keyrotd once` at the same time on one org (separate state
             dirs, no leader election), repeated; then one more pass.

Each case leaves its outputs (stdout/stderr, audit logs) and the secrets the
emulator issued in $KEYROT_ARTIFACTS/<case>/ (default
$KEYROT_BUILD_DIR/test-artifacts) for secrets_test.py.

With KEYROT_FLAVOR=edge both run against the emulator's Apigee Edge flavor
(docs/flavors.md): the org app list pages by startKey (50 rows), team apps are
company apps, and imports make keys that never expire (rotated by maxAge).

Environment: KEYROT_BUILD_DIR (required), CHAOS_SEED (default: random, printed),
CHAOS_KILLS (default 12), CHAOS_APPS (default 500), KEYROT_FLAVOR (x or edge)."""
import collections
import json
import os
import random
import secrets as pysecrets
import shutil
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

ORG = "demo"
MARKER = "keyrotd_replaces"
EDGE = os.environ.get("KEYROT_FLAVOR", "x") == "edge"
ARTIFACTS = os.environ.get("KEYROT_ARTIFACTS", os.path.join(h.BUILD, "test-artifacts"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))
KILLS = int(os.environ.get("CHAOS_KILLS", "12"))
APPS = int(os.environ.get("CHAOS_APPS", "500"))
TOKEN_ENV = "KEYROT_CHAOS_TOKEN"

PRODUCTS = [{"name": "payments", "approvalType": "auto"},
            {"name": "reports", "approvalType": "auto"},
            {"name": "search", "approvalType": "auto"},
            {"name": "admin", "approvalType": "manual"}]

# keyLifetime 1h / rotateBefore 50m: a key expiring in 30 minutes is due now and
# its successor (expiring in 1 h) is not due again within the run. Overlap of a
# few seconds: revocations happen during the run.
POLICIES = [
    {"name": "imports", "organization": ORG, "match": {"apps": ["imp-*"]},
     "rotation": {"keyLifetime": "1h", "rotateBefore": "50m", "overlap": "4s",
                  "method": "import"}},
    # Team (AppGroup) apps among the imp-* ones: only a policy with appGroups
    # matches them, and it must import.
    {"name": "teams", "organization": ORG, "match": {"appGroups": ["team-*"]},
     "rotation": {"keyLifetime": "1h", "rotateBefore": "50m", "overlap": "4s",
                  "method": "import"}},
    {"name": "generates", "organization": ORG, "match": {"apps": ["gen-*"]},
     "rotation": {"keyLifetime": "1h", "rotateBefore": "50m", "overlap": "4s",
                  "method": "generate"}},
    # Gold apps of either kind: higher priority, longer lifetime, import.
    {"name": "gold", "organization": ORG, "priority": 10,
     "match": {"apps": ["*"], "attributes": {"tier": "gold"}, "exclude": {"apps": ["keep-*"]}},
     "rotation": {"keyLifetime": "2h", "rotateBefore": "100m", "overlap": "6s",
                  "method": "import"}},
]
if EDGE:
    # Edge cannot set an expiry on an imported key: imports make keys that
    # never expire, rotated by age (seeded due keys are 30 days old, keys not
    # due one day old). Generate keeps its lifetime.
    for _p in POLICIES:
        if _p["rotation"]["method"] == "import":
            _p["rotation"]["keyLifetime"] = "never"
            _p["rotation"]["maxAge"] = "20d"


def make_seed(n_apps, rng, prefixes=("imp", "gen", "keep")):
    """n_apps apps over 10 active developers and one inactive one. Returns
    (seed, due): due maps (developer, app) -> fingerprint of the key that must
    get exactly one successor."""
    devs = ["dev%02d@partner.example.com" % i for i in range(10)]
    inactive = "gone@partner.example.com"
    apps, due = [], {}
    for i in range(n_apps):
        kind = prefixes[i % len(prefixes)]
        dev = inactive if i % 37 == 5 else devs[i % len(devs)]
        name = "%s-%04d" % (kind, i)
        gold = i % 5 == 0
        attrs = [{"name": "DisplayName", "value": "App %d \u2014 \u00fcn\u00efcode \"q\"" % i},
                 {"name": "Notes", "value": "line one\nline two %d" % i},
                 {"name": "tier", "value": "gold" if gold else "silver"},
                 {"name": "costCenter", "value": "cc-%d" % (i % 7)}]
        prods = [{"apiproduct": "payments", "status": "approved"}]
        if i % 2:
            prods.append({"apiproduct": "reports", "status": rng.choice(["approved", "revoked"])})
        if i % 3 == 0:
            prods.append({"apiproduct": "admin", "status": rng.choice(["pending", "approved",
                                                                       "revoked"])})
        if i % 4 == 1:
            prods.append({"apiproduct": "search", "status": "approved"})
        key = "K%s%05d%s" % (kind.upper(), i, pysecrets.token_hex(12))
        # Due: expires within rotateBefore (50m, or 100m for gold).
        is_due = kind != "keep" and i % 10 != 3
        expires = ("+70m" if gold else "+30m") if is_due else "+5h"
        creds = [{"consumerKey": key, "consumerSecret": "S" + pysecrets.token_hex(20),
                  "status": "approved", "issuedAt": "-30d" if is_due else "-1d",
                  "expiresAt": expires,
                  "attributes": [{"name": "env", "value": "prod"},
                                 {"name": "owner", "value": "team-%d" % (i % 3)}],
                  "scopes": ["read", "write"] if i % 2 else ["read"],
                  "apiProducts": prods}]
        if i % 11 == 4:  # a second key, not due: the app always has one more usable key
            creds.append({"consumerKey": "X%05d%s" % (i, pysecrets.token_hex(12)),
                          "consumerSecret": "S" + pysecrets.token_hex(20), "status": "approved",
                          "issuedAt": "-1d", "expiresAt": "+20h",
                          "apiProducts": [{"apiproduct": "payments", "status": "approved"}]})
        app = {"developerEmail": dev, "name": name, "status": "approved",
               "attributes": attrs, "callbackUrl": "https://%s.example.com/cb?x=%d" % (name, i),
               "scopes": ["read", "write"], "appFamily": "default", "credentials": creds}
        # Some imp-* apps belong to a team (not gold: the teams policy rotates them).
        team = kind == "imp" and i % 7 == 2 and not gold and dev != inactive
        if team:
            del app["developerEmail"]
            app["appGroup"] = "team-%d" % (i % 3)
        apps.append(app)
        if is_due and dev != inactive:
            due[(None if team else dev, name)] = h.fp(key)
    seed = {"organization": ORG,
            "developers": [{"email": d, "firstName": "D", "lastName": str(j), "userName": "d%d" % j,
                            "status": "active"} for j, d in enumerate(devs)]
            + [{"email": inactive, "firstName": "Gone", "lastName": "Away", "userName": "gone",
                "status": "inactive"}],
            "apiProducts": PRODUCTS, "apps": apps}
    return seed, due


def attr(cred, name):
    for a in cred.get("attributes", []):
        if a["name"] == name:
            return a["value"]
    return None


def products(cred):
    return {p["apiproduct"]: p["status"] for p in cred.get("apiProducts", [])}


def successors(app, old_fp):
    return [c for c in app.get("credentials", [])
            if attr(c, MARKER) in (old_fp, "pending:" + old_fp)]


def app_map(state):
    # (a team app's developerEmail is null: its name is unique all the same)
    return {(a["developerEmail"], a["name"]): a for a in state["apps"]}


def save_artifacts(case, k_list, emu_state, token):
    if EDGE:
        case += "-edge"
    if h.PROFILE:
        case += "-" + h.PROFILE
    """Outputs and audit logs for secrets_test.py; the secrets themselves go to
    secrets.json, which that test reads and never searches."""
    d = os.path.join(ARTIFACTS, case)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, k in enumerate(k_list):
        with open(os.path.join(d, "outputs-%d.txt" % i), "w") as f:
            f.write("\n".join(k.outputs))
        if os.path.exists(k.audit_path()):
            shutil.copy(k.audit_path(), os.path.join(d, "audit-%d.jsonl" % i))
    found = []
    for a in emu_state["apps"]:
        for c in a.get("credentials", []):
            found += [c["consumerKey"], c["consumerSecret"]]
    with open(os.path.join(d, "secrets.json"), "w") as f:
        json.dump({"secrets": found + [token]}, f)


class Checks:
    """Assertions shared by the chaos and race cases, on final state `st`."""

    def check_apps_untouched(self, seed, st):
        """No attribute, callback URL, scope or family of any app lost or changed;
        no key of an app that was not due touched."""
        by = app_map(st)
        for a in seed["apps"]:
            now = by[(a.get("developerEmail"), a["name"])]
            key = (a.get("developerEmail"), a["name"])
            with self.subTest(app=a["name"]):
                self.assertEqual(now["attributes"], a["attributes"], key)
                self.assertEqual(now["callbackUrl"], a["callbackUrl"], key)
                self.assertEqual(now.get("scopes"), a["scopes"], key)
                self.assertEqual(now.get("appFamily"), a["appFamily"], key)
                self.assertEqual(now["status"], "approved", key)

    def check_successors(self, seed, due, st, expect_revoked=True):
        """Exactly one approved, complete successor per due key, nothing lost or
        widened; extras (races) revoked; old keys revoked once the overlap ended."""
        by = app_map(st)
        problems = []
        for a in seed["apps"]:
            key = (a.get("developerEmail"), a["name"])
            now = by[key]
            old_seed = a["credentials"][0]
            old_fp = h.fp(old_seed["consumerKey"])
            creds = {h.fp(c["consumerKey"]): c for c in now.get("credentials", [])}
            if key not in due:
                if len(creds) != len(a["credentials"]):
                    problems.append("%s: not due but has %d keys" % (key, len(creds)))
                if creds[old_fp]["status"] != "approved":
                    problems.append("%s: key not due but %s" % (key, creds[old_fp]["status"]))
                continue
            succ = successors(now, old_fp)
            approved = [c for c in succ if c["status"] == "approved"]
            if len(approved) != 1:
                problems.append("%s: %d approved successors of %s (of %d)" %
                                (key, len(approved), old_fp, len(succ)))
                continue
            s = approved[0]
            if attr(s, MARKER) != old_fp:
                problems.append("%s: successor marker %r" % (key, attr(s, MARKER)))
            for at in old_seed.get("attributes", []):
                if at not in s.get("attributes", []):
                    problems.append("%s: successor lost attribute %s" % (key, at["name"]))
            extra = {at["name"] for at in s.get("attributes", [])} - {
                at["name"] for at in old_seed.get("attributes", [])} - {MARKER}
            if extra:
                problems.append("%s: successor has extra attributes %s" % (key, extra))
            if sorted(s.get("scopes", [])) != sorted(old_seed.get("scopes", [])):
                problems.append("%s: scopes %s != %s" % (key, s.get("scopes"), old_seed["scopes"]))
            want, got = products(old_seed), products(s)
            if set(want) != set(got):
                problems.append("%s: products %s != %s" % (key, got, want))
            for p, w in want.items():
                g = got.get(p)
                ok = g == w if w != "pending" else g in ("pending", "revoked")
                if not ok:
                    problems.append("%s: product %s is %s on the successor, %s on the old key"
                                    % (key, p, g, w))
            old_now = creds[old_fp]
            if products(old_now) != want:
                problems.append("%s: old key's products changed: %s" % (key, products(old_now)))
            if expect_revoked and old_now["status"] != "revoked":
                problems.append("%s: old key still %s after the overlap" % (key, old_now["status"]))
            if expiry(s["expiresAt"]) <= expiry(old_seed_expiry(old_now)):
                problems.append("%s: successor expires before the old key" % (key,))
            for c in succ:
                if c is not s and c["status"] != "revoked":
                    problems.append("%s: extra successor not revoked" % (key,))
        self.assertEqual(problems, [], "\n".join(problems[:40]))

    def check_markers_kept(self, lost):
        """No write of keyrotd's, under either reading of "replaces the existing
        attributes", ever left a key it made without its lineage marker (the
        emulator records every write that removed one)."""
        self.assertEqual(lost, [], "writes that removed a keyrotd_replaces marker")

    def check_no_orphans(self, seed, st):
        """Every key that was not in the seed carries the lineage marker: no
        unmarked (so never revoked, never rotated) key was left behind."""
        by = app_map(st)
        problems = []
        for a in seed["apps"]:
            key = (a.get("developerEmail"), a["name"])
            known = {h.fp(c["consumerKey"]) for c in a["credentials"]}
            unmarked = [h.fp(c["consumerKey"]) for c in by[key].get("credentials", [])
                        if attr(c, MARKER) is None and h.fp(c["consumerKey"]) not in known]
            if unmarked:
                problems.append("%s: new keys without a marker: %s" % (key, unmarked))
        self.assertEqual(problems, [], "\n".join(problems[:40]))

    def check_availability(self, emu):
        av = emu.hook("availability")
        self.assertEqual(av["dropped"], 0)
        self.assertEqual(av["everLostLast"], [], "writes that took an app to zero usable keys")
        zero = [r for r in av["records"] if r["usableKeys"] == 0 and r["usableBefore"] > 0]
        self.assertEqual(zero, [])
        return av["records"]


def all_done(due, st):
    """Every due key revoked, with an approved complete successor."""
    by = app_map(st)
    for key, old_fp in due.items():
        a = by[key]
        old = [c for c in a["credentials"] if h.fp(c["consumerKey"]) == old_fp][0]
        if old["status"] != "revoked":
            return False
        if not any(attr(c, MARKER) == old_fp and c["status"] == "approved"
                   for c in a["credentials"]):
            return False
    return True


def old_seed_expiry(cred):
    return cred["expiresAt"]


def expiry(value):
    """expiresAt as a number; -1 (never: an Edge import) as infinity."""
    v = int(value)
    return float("inf") if v == -1 else v


def emulator_args(token):
    return ("--token", token) + (("--flavor", "edge") if EDGE else ())


def auth_config():
    edge = "\n  flavor: edge\n  edge: {appListRows: 50}" if EDGE else ""
    return "{method: token-env, env: %s}%s" % (TOKEN_ENV, edge)


class ChaosTest(unittest.TestCase, Checks):
    """One chaos run (setUpClass), then one test per promise."""

    @classmethod
    def setUpClass(cls):
        cls.rng = random.Random(SEED)
        print("chaos: CHAOS_SEED=%d apps=%d kills=%d flavor=%s"
              % (SEED, APPS, KILLS, "edge" if EDGE else "x"), file=sys.stderr)
        cls.dir = h.tmpdir()
        cls.token = pysecrets.token_urlsafe(30)
        os.environ[TOKEN_ENV] = cls.token
        cls.seed, cls.due = make_seed(APPS, cls.rng)
        cls.emu = h.Emulator(cls.dir, cls.seed, extra=emulator_args(cls.token))
        cls.k = h.Keyrotd(cls.dir, cls.emu.url, POLICIES, interval="5s", auth=auth_config())
        cls.emu.hook("faults", {"p503": 0.2, "p429": 0.1, "retryAfterSeconds": 0,
                                "pDropAfterWrite": 0.05, "latencyMs": 50, "seed": SEED})
        t0 = time.time()
        cls.kill_log = []
        try:
            for i in range(KILLS):
                p = cls.k.start("run")
                delay = cls.rng.uniform(0.3, 5.0)
                time.sleep(delay)
                alive = p.poll() is None
                rc, _ = cls.k.collect(p, signal.SIGKILL)
                cls.kill_log.append((round(delay, 2), alive, rc))
            # Then let one daemon run, faults still on, until everything is done.
            p = cls.k.start("run")
            deadline = time.time() + 150
            cls.converged_after = None
            while time.time() < deadline:
                time.sleep(2)
                if cls.done(cls.emu.state()):
                    cls.converged_after = time.time() - t0
                    break
            cls.run_rc, _ = cls.k.collect(p, signal.SIGTERM, timeout=60)
            cls.emu.hook("faults", {"p503": 0, "p429": 0, "pDropAfterWrite": 0, "latencyMs": 0})
            cls.final_once = cls.k.run("once", timeout=120)
            cls.final_plan = cls.k.run("plan", timeout=120)
            cls.state = cls.emu.state()
            cls.requests = cls.emu.hook("requests")
            cls.records = cls.emu.hook("availability")["records"]
            cls.markers_lost = cls.emu.hook("invariants")["markersLost"]
            cls.elapsed = time.time() - t0
            print("chaos: kills (delay s, alive, rc) %s; converged after %s s; total %.1f s; "
                  "%d requests" % (cls.kill_log, cls.converged_after and
                                   round(cls.converged_after, 1), cls.elapsed,
                                   cls.requests["total"]), file=sys.stderr)
        finally:
            try:
                save_artifacts("chaos", [cls.k], cls.emu.state(), cls.token)
            finally:
                cls.emu.stop()

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("CHAOS_KEEP"):
            h.rmtree(cls.dir)
        else:
            print("chaos: kept %s" % cls.dir, file=sys.stderr)

    @classmethod
    def done(cls, st):
        return all_done(cls.due, st)

    def test_6_no_marker_ever_lost(self):
        self.check_markers_kept(self.markers_lost)

    def test_0_killed_and_converged(self):
        self.assertGreaterEqual(sum(1 for _, alive, _ in self.kill_log if alive), KILLS - 2,
                                "keyrotd run was alive when killed at least %d times" % (KILLS - 2))
        self.assertIsNotNone(self.converged_after, "converged under faults within 150 s")
        self.assertEqual(self.run_rc, 0, "SIGTERM: clean stop")
        self.assertEqual(self.final_once.returncode, 0,
                         self.final_once.stdout + self.final_once.stderr)
        self.assertEqual(self.final_plan.returncode, 0, self.final_plan.stdout)
        log = "\n".join(self.k.outputs)
        self.assertTrue("503" in log or "429" in log or "failed" in log, "the faults were felt")
        routes = self.requests["byRoute"]
        if EDGE:  # the Edge calls were the ones made
            self.assertTrue(any(r.endswith("/keys/create") for r in routes), routes)
            self.assertTrue(any("/companies/" in r for r in routes), routes)
        else:
            self.assertFalse(any(r.endswith("/keys/create") for r in routes), routes)

    def test_1_never_zero_usable_keys(self):
        av_zero = [r for r in self.records if r["usableKeys"] == 0 and r["usableBefore"] > 0]
        self.assertEqual(av_zero, [])
        self.assertEqual(self.emu_everlost(), [])

    def emu_everlost(self):
        return [r for r in self.records if r["usableBefore"] > 0 and r["usableKeys"] == 0]

    def test_2_one_successor_per_due_key_nothing_lost_or_widened(self):
        self.check_apps_untouched(self.seed, self.state)
        self.check_successors(self.seed, self.due, self.state)

    def test_3_revoked_only_with_a_valid_complete_successor(self):
        """From the availability history (each record names the key written, by
        fingerprint): the old key's revocation comes after the successor's last
        key update (the final marker is the last write of a completion; a
        complete successor is never written again), the app keeps >= 1 usable
        key after it, and the successor was issued before and expires after
        the moment of revocation."""
        by_app = collections.defaultdict(list)
        for r in self.records:
            by_app[(r["developer"] or None, r["app"])].append(r)
        final = app_map(self.state)
        problems = []
        for key, old_fp in self.due.items():
            recs = by_app.get(key, [])
            revokes = [i for i, r in enumerate(recs)
                       if r["request"].endswith("/keys/{key}?action") and r.get("key") == old_fp]
            if not revokes:
                problems.append("%s: no revoke of %s recorded" % (key, old_fp))
                continue
            first = recs[revokes[0]]
            s = [c for c in successors(final[key], old_fp) if c["status"] == "approved"]
            if not s:
                problems.append("%s: no successor" % (key,))
                continue
            sfp = h.fp(s[0]["consumerKey"])
            updates = [i for i, r in enumerate(recs) if r.get("key") == sfp
                       and r["request"].startswith("POST") and r["request"].endswith("/keys/{key}")]
            if not updates:
                problems.append("%s: successor %s never updated (no marker written?)" % (key, sfp))
            elif updates[-1] > revokes[0]:
                problems.append("%s: successor %s updated after the old key was revoked"
                                % (key, sfp))
            if first["usableKeys"] < 1:
                problems.append("%s: no usable key after the revocation" % (key,))
            if not int(s[0]["issuedAt"]) <= int(first["ts"]) < expiry(s[0]["expiresAt"]):
                problems.append("%s: successor not valid at the revocation" % (key,))
        self.assertEqual(problems, [], "\n".join(problems[:40]))

    def test_5_no_orphan_keys(self):
        self.check_no_orphans(self.seed, self.state)

    def test_4_audit_exactly_once(self):
        """Each (key, action) for created, completed and revoked appears exactly
        once in the audit log; nothing recorded for a key that does not exist."""
        audit = self.k.audit()
        counts = collections.Counter((a["action"], a["key"]) for a in audit
                                     if a["action"] in ("created", "completed", "revoked"))
        final = app_map(self.state)
        expected = []
        for key, old_fp in self.due.items():
            s = [c for c in successors(final[key], old_fp) if c["status"] == "approved"]
            if s:
                sfp = h.fp(s[0]["consumerKey"])
                expected += [("created", sfp), ("completed", sfp)]
            expected.append(("revoked", old_fp))
        missing = [e for e in expected if counts[e] == 0]
        dup = [(e, n) for e, n in counts.items() if n > 1]
        unexpected = [e for e in counts if e not in set(expected)]
        by_kind = collections.Counter(a for a, _ in missing)
        self.assertEqual((missing, dup, unexpected), ([], [], []),
                         "audit: %d missing (%s), %d duplicated, %d unexpected; first missing: %s"
                         % (len(missing), dict(by_kind), len(dup), len(unexpected), missing[:10]))


class RaceTest(unittest.TestCase, Checks):
    """2 and 3 daemons at once (`keyrotd once`, separate state dirs), repeated;
    then one more pass: one approved successor per key, extras revoked."""

    def race(self, n_apps, latency):
        rng = random.Random(SEED + 1)
        d = h.tmpdir()
        token = pysecrets.token_urlsafe(30)
        os.environ[TOKEN_ENV] = token
        seed, due = make_seed(n_apps, rng)
        emu = h.Emulator(d, seed, extra=emulator_args(token))
        ks = []
        try:
            for i in range(3):
                kd = os.path.join(d, "k%d" % i)
                os.makedirs(kd)
                ks.append(h.Keyrotd(kd, emu.url, POLICIES, auth=auth_config()))
            emu.hook("faults", {"latencyMs": latency, "seed": SEED})
            rounds = [2, 3, 2, 3]
            for n in rounds:
                procs = [k.start("once") for k in ks[:n]]
                for k, p in zip(ks, procs):
                    k.collect(p, timeout=300)
                time.sleep(2.5)  # let some overlaps end, so revocations race too
            time.sleep(4)
            emu.hook("faults", {"latencyMs": 0})
            r = ks[0].run("once", timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(ks[1].run("plan").returncode, 0)
            st = emu.state()
            self.check_apps_untouched(seed, st)
            self.check_successors(seed, due, st)
            self.check_no_orphans(seed, st)
            self.check_availability(emu)
            self.check_markers_kept(emu.hook("invariants")["markersLost"])
            extras = sum(1 for a in st["apps"] for c in a.get("credentials", [])
                         if attr(c, MARKER) and c["status"] == "revoked")
            print("race: %d apps, %d due, %d extra successors made by races (revoked)"
                  % (n_apps, len(due), extras), file=sys.stderr)
        finally:
            save_artifacts("race-%d" % n_apps, ks, emu.state(), token)
            emu.stop()
            h.rmtree(d)

    def test_race_2_and_3_daemons(self):
        self.race(120, 20)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
