#!/usr/bin/python3
"""Leader election end to end: leader_driver processes against lease_server.py.

  leader_test.py LEADER_DRIVER CASE     CASE: two three kill release unreachable hang tls

Durations: lease 3 s, renew deadline 2 s, retry period 0.5 s. Every driver
prints LEADER/FOLLOWER/RENEW lines with epoch-millisecond times (one machine,
one clock), from which each driver's "may write" intervals are rebuilt; the
check that matters everywhere: intervals of different drivers never overlap,
and no takeover happens before the previous holder's lease could expire.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LEASE_MS, DEADLINE_MS, RETRY_MS = 3000, 2000, 500
# Worst case from a holder's death to a successor writing: the successor saw the
# last renewal up to one (jittered) retry later, waits the lease duration, and
# polls once more: lease + 2 x 1.2 x retry, plus request time.
TAKEOVER_MAX_MS = LEASE_MS + int(2 * 1.2 * RETRY_MS) + 400
TIMER_SLACK_MS = 150  # the deadline timer fires this close to the deadline


def now_ms():
    return int(time.time() * 1000)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class StandIn:
    def __init__(self, workdir, tokens, tls=None):
        args = [sys.executable, os.path.join(HERE, "lease_server.py")]
        for t in tokens:
            args += ["--token", t]
        if tls:
            args += ["--tls", *tls]
        self.log = open(os.path.join(workdir, "lease_server.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        check(line.isdigit(), "lease_server did not print its port: %r" % line)
        self.port = int(line)
        self.url = ("https" if tls else "http") + "://127.0.0.1:%d" % self.port
        self.ctx = None
        if tls:
            import ssl
            self.ctx = ssl.create_default_context(cafile=tls[0])

    def hook(self, name, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/__lease/" + name, data=data,
                                     method="GET" if data is None else "POST")
        with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class Driver:
    def __init__(self, binary, workdir, ident, url, token, env_extra=None):
        self.id = ident
        self.token_file = os.path.join(workdir, "token-" + ident)
        self.write_token(token)
        env = dict(os.environ)
        for k in ("KUBERNETES_SERVICE_HOST", "KEYROTD_LEADER_ELECTION"):
            env.pop(k, None)
        env.update({
            "KEYROTD_LEASE_URL": url, "POD_NAME": ident, "POD_NAMESPACE": "keyrotd",
            "KEYROTD_LEASE_TOKEN_FILE": self.token_file, "KEYROTD_LEASE_CA_FILE": "",
            "KEYROTD_LEASE_DURATION": "%dms" % LEASE_MS,
            "KEYROTD_LEASE_RENEW_DEADLINE": "%dms" % DEADLINE_MS,
            "KEYROTD_LEASE_RETRY_PERIOD": "%dms" % RETRY_MS,
            "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        env.update(env_extra or {})
        self.err = open(os.path.join(workdir, "driver-%s.log" % ident), "w")
        self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env)
        self.events = []  # (kind, ts, deadline)
        self.lock = threading.Lock()
        self.killed_at = None
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def write_token(self, token):
        with open(self.token_file + ".tmp", "w") as f:
            f.write(token + "\n")
        os.replace(self.token_file + ".tmp", self.token_file)

    def read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == self.id:
                deadline = int(parts[3]) if len(parts) > 3 else 0
                with self.lock:
                    self.events.append((parts[0], int(parts[2]), deadline))

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def is_leader(self):
        state = False
        for kind, _, _ in self.snapshot():
            if kind in ("LEADER", "FOLLOWER"):
                state = kind == "LEADER"
        return state and self.proc.poll() is None

    def last_deadline(self):
        ds = [d for k, _, d in self.snapshot() if k == "RENEW"]
        return ds[-1] if ds else 0

    def intervals(self, end_of_test):
        """[(start, end)] of "may write", ends as the elector saw them."""
        out, start, deadline = [], None, 0
        for kind, ts, d in self.snapshot():
            if kind == "RENEW":
                deadline = d
            elif kind == "LEADER":
                start, deadline = ts, d
            elif kind == "FOLLOWER" and start is not None:
                out.append((start, min(ts, d or ts)))
                start = None
        if start is not None:
            if self.killed_at is not None:
                out.append((start, min(self.killed_at, deadline)))
            elif self.proc.poll() is not None:
                out.append((start, deadline))
            else:
                out.append((start, end_of_test))
        return out

    def kill9(self):
        self.killed_at = now_ms()
        self.proc.kill()
        self.proc.wait(10)

    def term(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise Failure("%s did not exit on SIGTERM" % self.id)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(5)
        self.err.close()


class Scenario:
    def __init__(self, binary, workdir, tls=None):
        self.binary, self.dir = binary, workdir
        self.tokens = {}
        self.standin = None
        self.tls = tls
        self.drivers = []
        self.retired = []

    def start(self, ids):
        self.tokens = {i: "tok-" + i for i in ids}
        self.standin = StandIn(self.dir, self.tokens.values(), self.tls)
        env = {"KEYROTD_LEASE_CA_FILE": self.tls[0]} if self.tls else None
        for i in ids:
            self.drivers.append(Driver(self.binary, self.dir, i, self.standin.url, self.tokens[i], env))

    def driver(self, ident):
        return next(d for d in self.drivers if d.id == ident)

    def leaders(self):
        return [d for d in self.drivers if d.is_leader()]

    def wait_leader(self, timeout_s, exclude=()):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            ls = [d for d in self.leaders() if d.id not in exclude]
            if ls:
                return ls[0]
            time.sleep(0.02)
        raise Failure("no leader within %.1f s; events: %s" % (
            timeout_s, {d.id: d.snapshot()[-4:] for d in self.drivers}))

    def hold(self, seconds):
        """Sleeps, checking every 50 ms that at most one driver is leader."""
        end = time.time() + seconds
        while time.time() < end:
            ls = self.leaders()
            check(len(ls) <= 1, "two leaders at once: %s" % [d.id for d in ls])
            time.sleep(0.05)

    def check_no_overlap(self):
        end = now_ms()
        ivs = sorted((s, e, d.id) for d in self.drivers for s, e in d.intervals(end))
        for (s1, e1, a), (s2, e2, b) in zip(ivs, ivs[1:]):
            check(e1 <= s2 or a == b and e1 <= s2,
                  "overlapping may-write intervals: %s [%d, %d] and %s [%d, %d]" % (a, s1, e1, b, s2, e2))
        for s, e, who in ivs:
            check(s <= e, "bad interval %s %d %d" % (who, s, e))
        print("ok: %d may-write intervals, none overlapping: %s" % (
            len(ivs), ", ".join("%s %.1fs" % (w, (e - s) / 1000) for s, e, w in ivs)))
        # The API's own record: every successful write by a new holder came after
        # the previous holder stopped writing.
        hist = self.standin.hook("history")
        holders = [h["holder"] for h in hist]
        for h in hist:
            if h["holder"] == "":
                continue
            t = int(h["t"] * 1000)
            for s, e, who in ivs:
                if who != h["holder"]:
                    check(not (s < t < e), "%s wrote the lease at %d while %s could write [%d, %d]"
                          % (h["holder"], t, who, s, e))
        return holders

    def close(self):
        for d in self.drivers:
            d.stop()
        if self.standin:
            self.standin.stop()


def takeover(sc, old, how):
    """Stops `old` (kill9 / term), returns (new leader, ms from the stop to its LEADER)."""
    last_renew_sent = old.last_deadline() - DEADLINE_MS
    t0 = now_ms()
    if how == "kill9":
        old.kill9()
    else:
        old.term()
    new = sc.wait_leader(10, exclude=(old.id,))
    start = [ts for k, ts, _ in new.snapshot() if k == "LEADER"][-1]
    ms = start - t0
    if how == "kill9":
        # Not before the old lease could expire (renewTime + lease duration) ...
        check(start >= last_renew_sent + LEASE_MS,
              "%s took over at %d, before %s's lease expired (%d)" % (new.id, start, old.id,
                                                                  last_renew_sent + LEASE_MS))
        # ... and soon after.
        check(ms <= TAKEOVER_MAX_MS, "takeover took %d ms (max %d)" % (ms, TAKEOVER_MAX_MS))
    else:
        check(ms <= int(1.2 * RETRY_MS) + 500, "takeover after release took %d ms" % ms)
    print("ok: %s %s -> %s leader after %d ms (lease %d ms, retry %d ms)"
          % (how, old.id, new.id, ms, LEASE_MS, RETRY_MS))
    return new, ms


# ---------------------------------------------------------------- cases

def case_two(sc):
    sc.start(["a", "b"])
    leader = sc.wait_leader(5)
    sc.hold(4)
    check(len(sc.leaders()) == 1, "not exactly one leader")
    other = next(d for d in sc.drivers if d is not leader)
    check(not any(k == "LEADER" for k, _, _ in other.snapshot()), "the follower led at some point")
    # The token file rotates (projected tokens): the holder re-reads it and keeps renewing.
    new_token = "tok-%s-rotated" % leader.id
    sc.standin.hook("tokens", {"tokens": list(sc.tokens.values()) + [new_token]})
    leader.write_token(new_token)
    time.sleep(2 * RETRY_MS / 1000)
    sc.standin.hook("tokens", {"tokens": [t for i, t in sc.tokens.items() if i != leader.id] + [new_token]})
    sc.hold(2)
    check(leader.is_leader(), "the leader lost the lease over a token rotation")
    check(not any(k == "FOLLOWER" for k, _, _ in leader.snapshot()), "the leader stopped writing")
    check(sc.standin.hook("history")[-1]["token"] == new_token, "the new token was not used")
    holders = sc.check_no_overlap()
    check(set(holders) == {leader.id}, "lease holders: %s" % set(holders))
    print("ok: two replicas, one leader (%s), token rotation survived" % leader.id)


def case_three(sc):
    sc.start(["a", "b", "c"])
    first = sc.wait_leader(5)
    sc.hold(2)
    second, ms1 = takeover(sc, first, "kill9")
    sc.hold(2)
    third, ms2 = takeover(sc, second, "kill9")
    sc.hold(2)
    check(len(sc.leaders()) == 1, "not exactly one leader at the end")
    sc.check_no_overlap()
    hist = sc.standin.hook("history")
    check(hist[-1]["transitions"] == 2, "leaseTransitions %s, want 2" % hist[-1]["transitions"])
    print("ok: three replicas; takeovers after kill -9: %d ms, %d ms" % (ms1, ms2))


def case_kill(sc):
    ids = ["a", "b"]
    sc.start(ids)
    times = []
    leader = sc.wait_leader(5)
    for round_ in range(3):
        sc.hold(1.5)
        new, ms = takeover(sc, leader, "kill9")
        times.append(ms)
        # Restart the killed replica under a new name (a new pod).
        sc.check_no_overlap()
        ident = "%s-r%d" % (leader.id.split("-")[0], round_)
        sc.tokens[ident] = "tok-" + ident
        sc.standin.hook("tokens", {"tokens": list(sc.tokens.values())})
        sc.drivers.append(Driver(sc.binary, sc.dir, ident, sc.standin.url, sc.tokens[ident]))
        leader = new
    sc.hold(1)
    sc.check_no_overlap()
    print("ok: kill -9 takeovers (ms): %s; bound %d" % (times, TAKEOVER_MAX_MS))


def case_release(sc):
    sc.start(["a", "b", "c"])
    leader = sc.wait_leader(5)
    sc.hold(1.5)
    new, ms = takeover(sc, leader, "term")
    check(leader.proc.returncode == 0, "SIGTERM exit code %s" % leader.proc.returncode)
    kinds = [k for k, _, _ in leader.snapshot()]
    check(kinds[-1] == "EXIT" and kinds[-2] == "FOLLOWER", "no FOLLOWER before exit: %s" % kinds[-3:])
    sc.hold(1.5)
    sc.check_no_overlap()
    hist = sc.standin.hook("history")
    check(any(h["holder"] == "" for h in hist), "the lease was not released")
    print("ok: SIGTERM releases the lease; %s took over after %d ms" % (new.id, ms))


def partition(sc, mode):
    """The leader's API calls fail (`mode`): it stops writing before its lease can
    expire; another replica takes over after expiry; when the API is back the old
    leader follows. Then the whole API fails: nobody writes; back: a leader again."""
    sc.start(["a", "b", "c"])
    leader = sc.wait_leader(5)
    sc.hold(1.5)
    t_cut = now_ms()
    sc.standin.hook("fail", {"mode": mode, "tokens": [sc.tokens[leader.id]], "seconds": 20})
    deadline = time.time() + 10
    while time.time() < deadline and leader.is_leader():
        time.sleep(0.01)
    check(not leader.is_leader(), "the cut-off leader still writes")
    last_deadline = leader.last_deadline()
    renew_sent = last_deadline - DEADLINE_MS
    stop_ts = [ts for k, ts, _ in leader.snapshot() if k == "FOLLOWER"][-1]
    check(stop_ts <= last_deadline + TIMER_SLACK_MS,
          "stopped writing at %d, %d ms after its renew deadline" % (stop_ts, stop_ts - last_deadline))
    check(stop_ts < renew_sent + LEASE_MS,
          "stopped writing at %d, not before its lease expired (%d)" % (stop_ts, renew_sent + LEASE_MS))
    print("ok: %s (%s) stopped writing %d ms after the cut, %d ms before its lease expired"
          % (leader.id, mode, stop_ts - t_cut, renew_sent + LEASE_MS - stop_ts))
    new = sc.wait_leader(TAKEOVER_MAX_MS / 1000 + 2, exclude=(leader.id,))
    start = [ts for k, ts, _ in new.snapshot() if k == "LEADER"][-1]
    check(start >= renew_sent + LEASE_MS, "%s took over before the lease expired" % new.id)
    print("ok: %s took over %d ms after the cut" % (new.id, start - t_cut))
    sc.standin.hook("fail", {"mode": "off"})
    sc.hold(2.5)
    check(sc.leaders() == [new], "after the API came back: leaders %s" % [d.id for d in sc.leaders()])

    # The whole API down: the leader stops writing and nobody else starts.
    t_cut = now_ms()
    sc.standin.hook("fail", {"mode": mode, "seconds": 20})
    deadline = time.time() + 10
    while time.time() < deadline and new.is_leader():
        time.sleep(0.01)
    check(not new.is_leader(), "the leader still writes with the API down")
    stop_ts = [ts for k, ts, _ in new.snapshot() if k == "FOLLOWER"][-1]
    check(stop_ts <= new.last_deadline() + TIMER_SLACK_MS, "stopped late with the API down")
    sc.hold(LEASE_MS / 1000 + 1)
    check(not sc.leaders(), "a leader while the API is down")
    sc.standin.hook("fail", {"mode": "off"})
    back = sc.wait_leader(TAKEOVER_MAX_MS / 1000 + 2)
    print("ok: API down: %s stopped writing %d ms after the cut; nobody led; back: %s leads"
          % (new.id, stop_ts - t_cut, back.id))
    sc.hold(1)
    sc.check_no_overlap()


def case_unreachable(sc):
    partition(sc, "500")


def case_hang(sc):
    partition(sc, "hang")


def case_tls(sc):
    if not shutil.which("openssl"):
        print("SKIP: openssl not installed")
        return 77
    cert, key = os.path.join(sc.dir, "cert.pem"), os.path.join(sc.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=kubernetes",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    sc.tls = (cert, key)
    sc.start(["a", "b"])
    leader = sc.wait_leader(5)
    sc.hold(1.5)
    # A replica that does not trust the API server's CA never becomes leader.
    sc.tokens["x"] = "tok-x"
    sc.standin.hook("tokens", {"tokens": list(sc.tokens.values())})
    x = Driver(sc.binary, sc.dir, "x", sc.standin.url, "tok-x")  # KEYROTD_LEASE_CA_FILE=""
    sc.drivers.append(x)
    new, ms = takeover(sc, leader, "kill9")
    sc.hold(LEASE_MS / 1000 + 1)
    check(not any(k == "LEADER" for k, _, _ in x.snapshot()), "a replica without the CA led")
    x.stop()
    log = open(os.path.join(sc.dir, "driver-x.log")).read()
    check("verif" in log.lower() or "certificate" in log.lower(),
          "the untrusting replica did not log a TLS verification error:\n" + log[-2000:])
    sc.check_no_overlap()
    print("ok: over TLS with caFile: %s led, %s took over after %d ms; no CA: refused" %
          (leader.id, new.id, ms))


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    binary, case = argv
    fn = globals().get("case_" + case)
    if fn is None:
        print("unknown case " + case)
        return 2
    workdir = tempfile.mkdtemp(prefix="keyrot-leader-")
    sc = Scenario(binary, workdir)
    rc = 1
    try:
        rc = fn(sc) or 0
    except Failure as e:
        print("FAIL: %s" % e)
        for d in sc.drivers:
            print("--- %s events: %s" % (d.id, d.snapshot()[-12:]))
    finally:
        sc.close()
        if rc != 0:
            for f in sorted(os.listdir(workdir)):
                if f.endswith(".log"):
                    print("--- %s (tail)" % f)
                    print("".join(open(os.path.join(workdir, f)).readlines()[-15:]))
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASS" if rc == 0 else ("SKIP" if rc == 77 else "FAILED"))
    return rc


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
