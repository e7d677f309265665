#!/usr/bin/python3
"""Leader election end to end: leader_driver processes against lease_server.py.

  leader_test.py LEADER_DRIVER CASE
  leader_test.py                       every case, $KEYROT_BUILD_DIR/tests/leader_driver
    CASE: two three kill release unreachable hang tls
          skew rbac outside_write lost_answer microtime

Durations: lease 3 s, renew deadline 2 s, retry period 0.5 s. Every driver
prints LEADER/FOLLOWER/RENEW lines with epoch-millisecond times of the real
clock (one machine), from which each driver's "may write" intervals are
rebuilt; the clock a driver writes into the Lease may be skewed and stepped
(LEADER_DRIVER_CLOCK_*). The checks that matter everywhere: intervals of
different drivers never overlap, no takeover happens before the previous
holder's lease could expire, and leaseTransitions counts each change of holder
exactly once.
"""
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
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LEASE_MS, DEADLINE_MS, RETRY_MS = 3000, 2000, 500
JITTERED_RETRY_MS = int((1 + 1.2) * RETRY_MS)  # a candidate's longest wait (JitterFactor 1.2)
# Worst case from a holder's death to a successor writing: the successor saw the
# last renewal up to one jittered retry later, waits the lease duration from
# then, and polls once more: lease + 2 x 2.2 x retry, plus request time.
TAKEOVER_MAX_MS = LEASE_MS + 2 * JITTERED_RETRY_MS + 400
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
TIMER_SLACK_MS = 150  # the deadline timer fires this close to the deadline


def now_ms():
    return int(time.time() * 1000)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class StandIn:
    def __init__(self, workdir, tokens, tls=None, extra_args=()):
        args = [sys.executable, os.path.join(HERE, "lease_server.py"), *extra_args]
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

    def api(self, method, path, body, token):
        """(status, JSON body) of a Lease API call, as a client other than the drivers."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method=method,
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stat(self, key):
        return self.hook("stats").get(key, 0)

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

    def kinds(self):
        return [k for k, _, _ in self.snapshot()]

    def led_since(self):
        """The events since the last LEADER (kinds)."""
        ks = self.kinds()
        i = len(ks) - 1 - ks[::-1].index("LEADER") if "LEADER" in ks else len(ks)
        return ks[i:]

    def step_clock(self, sig):
        """SIGUSR1/SIGUSR2 (LEADER_DRIVER_CLOCK_STEP_MS forward/back), waiting for
        the STEP line: signals of one kind do not queue."""
        n = self.kinds().count("STEP")
        self.proc.send_signal(sig)
        wait_for("%s's clock step" % self.id, lambda: self.kinds().count("STEP") > n, 5)

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
        self.envs = {}

    def start(self, ids, envs=None, launch=None, standin_args=()):
        """A stand-in accepting a token for each of `ids`; drivers for `launch` (default all)."""
        self.tokens = {i: "tok-" + i for i in ids}
        self.standin = StandIn(self.dir, self.tokens.values(), self.tls, standin_args)
        self.envs = envs or {}
        for i in (ids if launch is None else launch):
            self.launch(i)

    def launch(self, ident):
        env = {"KEYROTD_LEASE_CA_FILE": self.tls[0]} if self.tls else {}
        env.update(self.envs.get(ident, {}))
        d = Driver(self.binary, self.dir, ident, self.standin.url, self.tokens[ident], env)
        self.drivers.append(d)
        return d

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
        hist = [h for h in self.standin.hook("history")
                if h["method"] != "LABEL" and h["lease"] == "keyrotd/keyrotd"]
        holders = [h["holder"] for h in hist]
        check_transitions(hist)
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


def check_transitions(hist):
    """leaseTransitions goes up by exactly one when the holder changes (a release,
    holder "", keeps it), never otherwise: no takeover is counted twice, e.g.
    after a write whose answer was lost."""
    for prev, h in zip(hist, hist[1:]):
        same = h["holder"] == "" or h["holder"] == prev["holder"]
        want = prev["transitions"] + (0 if same else 1)
        check(h["transitions"] == want, "leaseTransitions %d after %s -> %s (rv %s), want %d"
              % (h["transitions"], prev["holder"] or '""', h["holder"] or '""', h["rv"], want))


def wait_for(what, cond, timeout_s):
    end = time.time() + timeout_s
    while time.time() < end:
        if cond():
            return
        time.sleep(0.02)
    raise Failure("timed out waiting for " + what)


def cut_off(sc, leader, mode="500", then=None):
    """The leader's API calls fail (and `then()` runs): it stops writing by its renew
    deadline, before its lease can expire, and another takes over after expiry.
    Returns the new leader."""
    t_cut = now_ms()
    sc.standin.hook("fail", {"mode": mode, "tokens": [sc.tokens[leader.id]], "seconds": 20})
    if then:
        then()
    deadline = time.time() + 10
    while time.time() < deadline and leader.is_leader():
        check(len(sc.leaders()) <= 1, "two leaders at once: %s" % [d.id for d in sc.leaders()])
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
    return new


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
        check(ms <= JITTERED_RETRY_MS + 500, "takeover after release took %d ms" % ms)
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
    new = cut_off(sc, leader, mode)
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
    # HTTPS_PROXY is set (for Apigee); NO_PROXY names the API server by CIDR
    # only, as clusters do: the Lease traffic must not reach the proxy.
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(16)
    proxied = []

    def refuse():
        while True:
            try:
                conn, _ = proxy.accept()
            except OSError:
                return
            proxied.append(1)
            conn.close()
    threading.Thread(target=refuse, daemon=True).start()
    purl = "http://127.0.0.1:%d" % proxy.getsockname()[1]
    via = {"HTTPS_PROXY": purl, "https_proxy": purl,
           "NO_PROXY": "apigee.googleapis.com,10.0.0.0/8,127.0.0.0/8", "no_proxy": ""}
    sc.start(["a", "b"], envs={"a": via, "b": via})
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
    proxy.close()
    check(not proxied, "%d connections went to HTTPS_PROXY despite NO_PROXY 127.0.0.0/8" % len(proxied))
    print("ok: over TLS with caFile: %s led, %s took over after %d ms; no CA: refused; "
          "NO_PROXY CIDR kept the proxy out" % (leader.id, new.id, ms))

def case_skew(sc):
    """Each replica writes its own clock into the Lease: a +45 s, b -45 s, c +7 s,
    and b and c step theirs by 30 s on a signal. Takeover timing and the renew
    deadline must depend on none of it (client-go: expiry counts from when a
    follower observed the record change, on a monotonic clock)."""
    step = {"LEADER_DRIVER_CLOCK_STEP_MS": "30000"}
    sc.start(["a", "b", "c"], launch=["a"], envs={
        "a": {"LEADER_DRIVER_CLOCK_OFFSET_MS": "45000"},
        "b": {"LEADER_DRIVER_CLOCK_OFFSET_MS": "-45000", **step},
        "c": {"LEADER_DRIVER_CLOCK_OFFSET_MS": "7000", **step}})
    a = sc.wait_leader(5)
    sc.launch("b")
    sc.launch("c")
    sc.hold(2)
    hist = sc.standin.hook("history")
    ahead = [parse_micro(h["renewTime"]) - int(h["t"] * 1000) for h in hist if h["holder"] == "a"]
    check(ahead and all(44000 <= d <= 46000 for d in ahead),
          "a's renewTime is not 45 s ahead of the API server: %s" % ahead[-3:])
    # a's renewTime is 45 s in b's and c's future: they must not wait for it.
    new, _ = takeover(sc, a, "kill9")
    other = next(d for d in sc.drivers if d.id not in (a.id, new.id))
    # The leader's clock jumps forward, then back past where it was: no flap.
    new.step_clock(signal.SIGUSR1)
    sc.hold(1.5)
    new.step_clock(signal.SIGUSR2)
    new.step_clock(signal.SIGUSR2)
    sc.hold(1.5)
    check(new.is_leader() and "FOLLOWER" not in new.led_since(),
          "%s stopped writing when its clock stepped: %s" % (new.id, new.kinds()[-8:]))
    # Cut off from the API, its clock then stepped back another 30 s (NTP while
    # partitioned): it still stops writing at its renew deadline, and the other
    # takes over after the lease expires.
    back = cut_off(sc, new, then=lambda: new.step_clock(signal.SIGUSR2))
    check(back is other, "leader %s, expected %s" % (back.id, other.id))
    sc.hold(1.5)
    sc.check_no_overlap()
    print("ok: skewed (+45 s, -45 s, +7 s) and stepped (+-30 s) clocks: takeovers on time, no flap")


def parse_micro(text):
    """MicroTime to epoch milliseconds (UTC "Z" only, which is what keyrotd writes)."""
    import calendar
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z", text or "")
    check(m, "not a MicroTime in UTC: %r" % text)
    y, mo, d, h, mi, se, us = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, se)) * 1000 + us // 1000


def case_rbac(sc):
    """RBAC allows get/update only on the Lease "keyrotd": a replica configured for
    another name gets 403 on every read, logs it, keeps trying, never leads."""
    sc.start(["a", "b", "x"], envs={"x": {"KEYROTD_LEASE_NAME": "keyrotd-other"}},
             standin_args=["--rbac", "keyrotd"])
    leader = sc.wait_leader(5)
    check(leader.id != "x", "x leads")
    forbidden0 = sc.standin.stat("GET 403")
    sc.hold(4)
    x = sc.driver("x")
    check("LEADER" not in x.kinds(), "the forbidden replica led: %s" % x.kinds())
    n = sc.standin.stat("GET 403") - forbidden0
    check(n >= 3, "the forbidden replica stopped trying: %d reads in 4 s" % n)
    check(sc.standin.stat("POST 201") == 1, "a second lease was created: %s" % sc.standin.hook("stats"))
    check(set(sc.standin.hook("leases")) == {"keyrotd/keyrotd"},
          "leases: %s" % list(sc.standin.hook("leases")))
    x.stop()
    log = open(os.path.join(sc.dir, "driver-x.log")).read()
    check("403" in log and "forbidden" in log,
          "the forbidden replica did not log the 403:\n" + log[-2000:])
    check(leader.is_leader() and "FOLLOWER" not in leader.kinds(), "the leader was disturbed")
    sc.check_no_overlap()
    print("ok: outside resourceNames: %d x 403 in 4 s, logged, never led; %s led throughout"
          % (n, leader.id))


def case_outside_write(sc):
    """Another writer (GitOps, a policy controller) adds labels to the Lease while
    it is held: the holder's renewals meet 409, re-read and renew with the fresh
    resourceVersion in the same attempt; it never stops writing, and the labels stay."""
    sc.start(["a", "b"])
    leader = sc.wait_leader(5)
    sc.hold(1)
    for i in range(10):
        sc.standin.hook("label", {"namespace": "keyrotd", "name": "keyrotd",
                                  "labels": {"policy.example.com/n": str(i)}})
        sc.hold(0.35)
    sc.hold(1)
    conflicts = sc.standin.stat("PUT 409")
    check(conflicts >= 2, "the outside writes caused %d conflicts; the test tests nothing" % conflicts)
    check(leader.is_leader() and "FOLLOWER" not in leader.kinds(),
          "the leader flapped over outside writes: %s" % leader.kinds()[-10:])
    check(all("LEADER" not in d.kinds() for d in sc.drivers if d is not leader), "another led")
    lease = sc.standin.hook("leases")["keyrotd/keyrotd"]
    check(lease["metadata"].get("labels", {}).get("policy.example.com/n") == "9",
          "the outside writer's label was lost: %s" % lease["metadata"])
    check(lease["spec"]["holderIdentity"] == leader.id, "holder %s" % lease["spec"])
    holders = sc.check_no_overlap()
    check(set(holders) == {leader.id}, "lease holders: %s" % set(holders))
    print("ok: 10 outside label writes, %d renewal conflicts, %s led throughout" % (conflicts, leader.id))
    # An outside write just before SIGTERM: the release meets 409, re-reads and
    # still releases, so the other replica takes over at once, not after expiry.
    # Right after a renewal, so that no renewal comes between label and release.
    renewals = leader.kinds().count("RENEW")
    wait_for("a renewal", lambda: leader.kinds().count("RENEW") > renewals, 3)
    sc.standin.hook("label", {"namespace": "keyrotd", "name": "keyrotd",
                              "labels": {"policy.example.com/last": "yes"}})
    new, ms = takeover(sc, leader, "term")
    check(sc.standin.stat("PUT 409") > conflicts, "the release met no conflict; the test tests nothing")
    check(any(h["holder"] == "" for h in sc.standin.hook("history")), "the lease was not released")
    sc.hold(1)
    sc.check_no_overlap()
    print("ok: release after an outside write: re-read, released, %s led after %d ms" % (new.id, ms))


def case_lost_answer(sc):
    """Writes commit but their answers are lost (connection closed), late, or held
    back past the client's timeout. The elector re-reads, finds its own write, completes
    it without counting a new transition, and nobody else writes meanwhile."""
    sc.start(["a", "b", "c"])
    leader = sc.wait_leader(5)
    sc.hold(1.5)
    tok = sc.tokens[leader.id]
    # Two renewals in a row commit without an answer.
    sc.standin.hook("fail", {"mode": "commit-close", "tokens": [tok], "methods": ["PUT"], "count": 2})
    wait_for("two lost renewals", lambda: sc.standin.stat("PUT lost") >= 2, 5)
    sc.hold(1.5)
    check(leader.is_leader() and "FOLLOWER" not in leader.kinds(),
          "%s stopped writing over lost renewal answers: %s" % (leader.id, leader.kinds()[-8:]))
    # A renewal's answer comes 0.8 s late (inside the client's 1 s timeout): the
    # renew deadline counts from when it was sent, not from the answer.
    renewals = len(leader.snapshot())
    sc.standin.hook("fail", {"mode": "commit-delay", "tokens": [tok], "methods": ["PUT"],
                             "count": 1, "seconds": 0.8})
    wait_for("a late answer", lambda: sc.standin.stat("PUT lost") >= 3, 5)
    sc.hold(1.5)
    left = min(d - ts for k, ts, d in leader.snapshot()[renewals:] if k == "RENEW")
    check(left <= DEADLINE_MS - 700,
          "after an answer 800 ms late the deadline was %d ms away: counted from the answer" % left)
    check(leader.is_leader() and "FOLLOWER" not in leader.kinds(),
          "%s stopped writing over a late answer: %s" % (leader.id, leader.kinds()[-8:]))
    # A renewal's answer hangs past the client's timeout.
    sc.standin.hook("fail", {"mode": "commit-hang", "tokens": [tok], "methods": ["PUT"], "count": 1,
                             "seconds": 3})
    wait_for("a hung renewal", lambda: sc.standin.stat("PUT lost") >= 4, 5)
    sc.hold(2.5)
    check(leader.is_leader(), "%s lost the lease over a hung answer: %s" % (leader.id, leader.kinds()[-8:]))
    check(all("LEADER" not in d.kinds() for d in sc.drivers if d is not leader), "another led")
    # A takeover whose answer is lost: the new holder must find its own write.
    sc.standin.hook("fail", {"mode": "commit-close", "methods": ["PUT"], "count": 1})
    leader.kill9()
    new = sc.wait_leader(TAKEOVER_MAX_MS / 1000 + 3, exclude=(leader.id,))
    check(sc.standin.stat("PUT lost") == 5, "the takeover's answer was not withheld")
    hist = [h for h in sc.standin.hook("history") if h["method"] == "PUT"]
    after = [h for h in hist if h["holder"] != leader.id]
    check(after and all(h["holder"] == new.id for h in after),
          "writes after the kill: %s" % [(h["holder"], h["rv"]) for h in after])
    start = [ts for k, ts, _ in new.snapshot() if k == "LEADER"][-1]
    lost_at = int(after[0]["t"] * 1000)
    check(start - lost_at <= JITTERED_RETRY_MS + 400,
          "%s took %d ms to complete its own takeover" % (new.id, start - lost_at))
    sc.hold(2)
    sc.check_no_overlap()  # includes leaseTransitions: the takeover counted once
    print("ok: lost and hung answers: %s kept leading; %s's lost takeover completed %d ms later"
          % (leader.id, new.id, start - lost_at))


def case_microtime(sc):
    """The API server decodes acquireTime/renewTime with exactly 6 fractional digits
    (metav1.MicroTime): anything else is 400. The stand-in does so too, and the
    elector's writes (create, renew, takeover, release) always pass."""
    sc.start(["a", "b", "probe"], launch=[])
    coll = "/apis/coordination.k8s.io/v1/namespaces/keyrotd/leases"

    def lease(t, rv=None):
        md = {"name": "probe", "namespace": "keyrotd"}
        if rv:
            md["resourceVersion"] = rv
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": md,
                "spec": {"holderIdentity": "p", "leaseDurationSeconds": 3, "renewTime": t}}
    for t in ("2026-11-25T12:00:00Z", "2026-11-25T12:00:00.123Z", "2026-11-25T12:00:00.123456789Z",
              "2026-11-25T12:00:00.1234567Z", "2026-11-25 12:00:00.123456Z"):
        code, body = sc.standin.api("POST", coll, lease(t), "tok-probe")
        check(code == 400 and body.get("reason") == "BadRequest", "POST %s: %d %s" % (t, code, body))
    code, body = sc.standin.api("POST", coll, lease("2026-11-25T12:00:00.123456Z"), "tok-probe")
    check(code == 201, "POST with 6 digits: %d %s" % (code, body))
    rv = body["metadata"]["resourceVersion"]
    code, _ = sc.standin.api("PUT", coll + "/probe", lease("2026-11-25T12:00:01.5Z", rv), "tok-probe")
    check(code == 400, "PUT with 1 digit: %d" % code)
    code, _ = sc.standin.api("PUT", coll + "/probe", lease("2026-11-25T13:00:01.500000+01:00", rv),
                             "tok-probe")
    check(code == 200, "PUT with 6 digits and an offset: %d" % code)
    refused = sc.standin.stat("POST 400") + sc.standin.stat("PUT 400")

    sc.launch("a")
    sc.launch("b")
    first = sc.wait_leader(5)
    sc.hold(1.5)
    second, _ = takeover(sc, first, "term")  # a release, then a takeover
    sc.hold(1.5)
    check(sc.standin.stat("POST 400") + sc.standin.stat("PUT 400") == refused,
          "the elector's writes were refused: %s" % sc.standin.hook("stats"))
    writes = [h for h in sc.standin.hook("history") if h["lease"] == "keyrotd/keyrotd"]
    for h in writes:
        for f in ("renewTime", "acquireTime"):
            check(MICRO_TIME.fullmatch(h[f] or ""), "%s %s written as %r" % (h["method"], f, h[f]))
    check(any(h["holder"] == "" for h in writes), "no release was written")
    sc.check_no_overlap()
    print("ok: times with 0, 1, 3, 7, 9 digits refused (400); %d elector writes, all with 6 digits"
          % len(writes))


CASES = ["two", "three", "kill", "release", "unreachable", "hang", "tls",
         "skew", "rbac", "outside_write", "lost_answer", "microtime"]


def main(argv):
    if not argv:
        # Every case, one after another, with $KEYROT_BUILD_DIR/tests/leader_driver.
        build = os.environ.get("KEYROT_BUILD_DIR", os.path.join(HERE, "..", "..", "build", "release"))
        binary = os.path.join(build, "tests", "leader_driver")
        results = {c: run_case(binary, c) for c in CASES}
        print("summary: " + ", ".join("%s %s" % (c, {0: "ok", 77: "skip"}.get(rc, "FAILED"))
                                      for c, rc in results.items()))
        return 0 if all(rc in (0, 77) for rc in results.values()) else 1
    if len(argv) != 2:
        print(__doc__)
        return 2
    return run_case(*argv)


def run_case(binary, case):
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
