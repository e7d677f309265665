#!/usr/bin/env bash
# keyrotd daemon benchmark (issue: daemon). Prints:
#   idle   RSS and CPU of `keyrotd run` between passes (demo seed), over IDLE_SECONDS
#          (default 20): targets <= 15 MB and no polling (CPU ~0, few wake-ups)
#   peak   VmHWM of a pass over an APPS-app organisation (default 100,000) with
#          metrics: {perKey: false}: target <= 64 MB
#   due    time from a key becoming due to its successor existing (audit
#          `created`) and being complete (`completed`), interval 10m, in an
#          organisation of APPS apps: target <= 5 s (the daemon re-reads just
#          the apps whose action falls due, not the organisation)
# The emulator's org app list costs LIST_US microseconds per app it returns
# (default 500: a page of 1,000 apps with credentials takes 0.5 s), as real
# list pages cost far more than one GET.
# usage: bench/daemon-bench.sh [APPS]
# KEYROTD=path and EMULATOR=path override the binaries (default: a release
# build in build/daemon-bench, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
apps=${1:-100000}
if [[ -z "${KEYROTD:-}" || -z "${EMULATOR:-}" ]]; then
    [[ -f build/daemon-bench/build.ninja ]] ||
        cmake -S . -B build/daemon-bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DKEYROT_BUILD_TESTS=OFF -DKEYROT_BUILD_BENCH=OFF >/dev/null
    cmake --build build/daemon-bench --target keyrotd apigee-emulator >/dev/null
    KEYROTD=${KEYROTD:-build/daemon-bench/daemon/keyrotd}
    EMULATOR=${EMULATOR:-build/daemon-bench/emulator/apigee-emulator}
fi
export KEYROTD EMULATOR APPS=$apps IDLE_SECONDS=${IDLE_SECONDS:-20} LIST_US=${LIST_US:-500}
exec /usr/bin/python3 - <<'PY'
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

KEYROTD, EMULATOR = os.path.abspath(os.environ["KEYROTD"]), os.path.abspath(os.environ["EMULATOR"])
APPS, IDLE = int(os.environ["APPS"]), int(os.environ["IDLE_SECONDS"])
LIST_US = int(os.environ["LIST_US"])
TICK = os.sysconf("SC_CLK_TCK")
procs = []


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def wait(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    sys.exit("timed out waiting for " + what)


def status(pid):
    out = {}
    for line in open("/proc/%d/status" % pid):
        k, _, v = line.partition(":")
        out[k] = v.split()[0] if v.split() else ""
    return out


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK  # utime + stime


def emulator(work, seed):
    path = os.path.join(work, "seed.json")
    json.dump(seed, open(path, "w"))
    pf = os.path.join(work, "emu.port")
    p = subprocess.Popen([EMULATOR, "--port", "0", "--port-file", pf, "--seed", path,
                          "--list-latency-per-app-us", str(LIST_US)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs.append(p)
    wait("emulator", lambda: os.path.exists(pf) and open(pf).read().strip(), 120)
    return p, int(open(pf).read())


def keyrotd(work, port, policy, extra=""):
    os.makedirs(os.path.join(work, "policies"), exist_ok=True)
    json.dump(policy, open(os.path.join(work, "policies", "p.json"), "w"))
    cfg = os.path.join(work, "keyrotd.yaml")
    open(cfg, "w").write(
        "apigee: {url: 'http://127.0.0.1:%d', auth: {method: none}, timeout: 30s,"
        " requestsPerSecond: 500, maxConcurrency: 8}\n"
        "listen: 127.0.0.1:0\ninterval: 10m\nstateDir: ./state\npolicies: ./policies\n%s"
        % (port, extra))
    log = open(os.path.join(work, "keyrotd.log"), "w+")
    p = subprocess.Popen([KEYROTD, "run", "-c", cfg], cwd=work, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    mport = int(wait("keyrotd port", lambda: (re.search(r"port=(\d+)", open(log.name).read())
                                              or [None, None])[1], 30))
    return p, "http://127.0.0.1:%d" % mport


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def metric(url, name):
    _, body = get(url + "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def policy(before, overlap):
    return {"name": "bench", "organization": None, "match": {"apps": ["*"]},
            "rotation": {"keyLifetime": "30d", "rotateBefore": before, "overlap": overlap}}


results = {}
try:
    # --- idle ---------------------------------------------------------------------
    work = tempfile.mkdtemp(prefix="keyrotd-bench-")
    demo = json.load(open("deploy/demo-seed.json"))
    emu, port = emulator(work, demo)
    pol = policy("10m", "1h")
    pol["organization"] = demo["organization"]
    kd, url = keyrotd(work, port, pol)
    wait("first pass (/readyz)", lambda: metric(url, "keyrotd_last_successful_pass_timestamp_seconds") is not None, 60)
    time.sleep(2)
    s0, c0 = status(kd.pid), cpu_seconds(kd.pid)
    time.sleep(IDLE)
    s1, c1 = status(kd.pid), cpu_seconds(kd.pid)
    wakeups = (int(s1["voluntary_ctxt_switches"]) + int(s1["nonvoluntary_ctxt_switches"])
               - int(s0["voluntary_ctxt_switches"]) - int(s0["nonvoluntary_ctxt_switches"]))
    results["idle_rss_mb"] = int(s1["VmRSS"]) / 1024
    results["idle_cpu_seconds"] = c1 - c0
    results["idle_context_switches"] = wakeups
    print("idle (demo seed, %d s after the first pass): RSS %.1f MB, CPU %.2f s, "
          "%d context switches" % (IDLE, results["idle_rss_mb"], c1 - c0, wakeups))
    stop(kd); stop(emu); shutil.rmtree(work)

    # --- peak over a large org, perKey: false --------------------------------------
    work = tempfile.mkdtemp(prefix="keyrotd-bench-")
    devs = max(1, APPS // 20)
    seed = {"organization": "bench",
            "developers": [{"email": "dev%06d@bench.example" % d, "firstName": "Dev",
                            "lastName": str(d), "userName": "dev%d" % d} for d in range(devs)],
            "apiProducts": [{"name": "payments"}, {"name": "reports"}],
            "apps": []}
    for i in range(APPS):
        seed["apps"].append({
            "developerEmail": "dev%06d@bench.example" % (i % devs), "name": "app-%06d" % i,
            "attributes": [{"name": "DisplayName", "value": "Bench App %d" % i},
                           {"name": "Notes", "value": "generated by daemon-bench.sh"}],
            "callbackUrl": "https://app-%06d.bench.example/cb" % i,
            "credentials": [{"consumerKey": "benchKey%08dA%s" % (i, "x" * 20),
                             "consumerSecret": "benchSecret%08d%s" % (i, "y" * 40),
                             "issuedAt": "-30d", "expiresAt": "+60d",
                             "attributes": [{"name": "owner", "value": "bench"}],
                             "apiProducts": ["payments", "reports"]}]})
    t0 = time.time()
    emu, port = emulator(work, seed)
    del seed
    print("emulator loaded %d apps in %.1f s" % (APPS, time.time() - t0))
    pol = policy("14d", "7d")
    pol["organization"] = "bench"
    t0 = time.time()
    kd, url = keyrotd(work, port, pol, "metrics: {perKey: false}\n")
    wait("first pass over the large org", lambda: metric(url, "keyrotd_last_successful_pass_timestamp_seconds") is not None, 600)
    took = time.time() - t0
    st = status(kd.pid)
    results["peak_rss_mb"] = int(st["VmHWM"]) / 1024
    results["after_pass_rss_mb"] = int(st["VmRSS"]) / 1024
    results["large_pass_seconds"] = metric(url, "keyrotd_pass_duration_seconds_sum")
    print("%d apps, perKey false: peak RSS (VmHWM) %.1f MB, RSS after the pass %.1f MB, "
          "pass %.1f s (start to ready %.1f s)" % (APPS, results["peak_rss_mb"],
                                                   results["after_pass_rss_mb"],
                                                   results["large_pass_seconds"], took))
    stop(kd); stop(emu); shutil.rmtree(work)

    # --- due -> successor, in the large org ------------------------------------------
    # The keys fall due well after the first full pass (which lists all APPS apps):
    # what is measured is the wake-up between full passes.
    work = tempfile.mkdtemp(prefix="keyrotd-bench-")
    n = 20
    lead = int(took * 1.5) + 40  # seconds from the seed load to the first expiry
    seed = {"organization": "due",
            "developers": [{"email": "dev%06d@bench.example" % d, "firstName": "Dev",
                            "lastName": str(d), "userName": "dev%d" % d} for d in range(devs)],
            "apiProducts": [{"name": "payments"}], "apps": []}
    for i in range(APPS):
        seed["apps"].append({
            "developerEmail": "dev%06d@bench.example" % (i % devs), "name": "app-%06d" % i,
            "credentials": [{"consumerKey": "benchKey%08dA%s" % (i, "x" * 20), "issuedAt": "-30d",
                             "expiresAt": "+60d", "apiProducts": ["payments"]}]})
    for i in range(n):
        seed["apps"].append({
            "developerEmail": "dev%06d@bench.example" % (i % devs), "name": "due-%02d" % i,
            "credentials": [{"consumerKey": "dueKey%026d" % i, "issuedAt": "-1d",
                             "expiresAt": "+%ds" % (lead + 15 + 3 * (i // 5)),
                             "apiProducts": ["payments"]}]})
    emu, port = emulator(work, seed)
    del seed
    state = json.loads(get("http://127.0.0.1:%d/__emulator/state" % port, 120)[1])
    expires = {a["name"]: int(a["credentials"][0]["expiresAt"])
               for a in state["organizations"][0]["apps"] if a["name"].startswith("due-")}
    del state
    pol = policy("15s", "1h")
    pol["organization"] = "due"
    kd, url = keyrotd(work, port, pol, "metrics: {perKey: false}\n")
    audit = os.path.join(work, "state", "audit.jsonl")
    emu_url = "http://127.0.0.1:%d" % port

    def done():
        if not os.path.exists(audit):
            return False
        return sum(1 for l in open(audit) if '"completed"' in l) >= n
    wait("first pass over the org", lambda: metric(url, "keyrotd_last_successful_pass_timestamp_seconds") is not None, 600)
    lists_after_first = json.loads(get(emu_url + "/__emulator/requests")[1])["byRoute"].get(
        "GET /v1/organizations/{org}/apps", 0)
    wait("all successors", done, lead + 120)
    lists = json.loads(get(emu_url + "/__emulator/requests")[1])["byRoute"].get(
        "GET /v1/organizations/{org}/apps", 0)
    recs = [json.loads(l) for l in open(audit)]

    def ms(ts):
        return int(time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 + int(ts[20:23])
    created = sorted(ms(r["ts"]) - (expires[r["app"]] - 15000) for r in recs if r["action"] == "created")
    completed = sorted(ms(r["ts"]) - (expires[r["app"]] - 15000) for r in recs if r["action"] == "completed")
    results["due_to_created_ms"] = {"median": created[len(created) // 2], "max": created[-1]}
    results["due_to_completed_ms"] = {"median": completed[len(completed) // 2], "max": completed[-1]}
    results["due_org_apps"] = APPS + n
    results["list_pages_while_due"] = lists - lists_after_first
    print("due -> successor created: median %d ms, max %d ms; complete: median %d ms, max %d ms "
          "(%d keys falling due at 4 moments in an org of %d apps, interval 10m, list cost %d us/app; "
          "org list pages read after the first pass: %d)"
          % (created[len(created) // 2], created[-1], completed[len(completed) // 2], completed[-1], n,
             APPS + n, LIST_US, lists - lists_after_first))
    stop(kd); stop(emu); shutil.rmtree(work)
    print("RESULT " + json.dumps(results))
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
PY
