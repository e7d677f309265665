#!/usr/bin/python3
"""PromQL expressions of the keyrotd Grafana dashboard.

  grafana_exprs.py [--org ORG] [DASHBOARD]
      print every expression, one a line, with Grafana's variables replaced:
      $organization by ORG (default: the regex .*), $__rate_interval by 5m,
      $__interval by 1m, $__range by 1h. For running each against a real
      Prometheus that scraped keyrotd.
  grafana_exprs.py --check [DASHBOARD]
      the test: the JSON parses, every panel has an expression, each parses as
      PromQL (promtool check rules on a generated rules file) and uses only
      metrics (and labels in matchers) of design.md's "Metrics", plus
      keyrotd_leader and keyrotd_interval_seconds; the alerting rules of
      deploy/prometheus/keyrotd-rules.yaml are held to the same list.

DASHBOARD defaults to deploy/grafana/keyrotd.json.
"""
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT = os.path.join(ROOT, "deploy", "grafana", "keyrotd.json")

# design.md "Metrics" (prefix keyrotd_), with labels; plus the gauges added
# since (keyrotd_leader, keyrotd_interval_seconds, keyrotd_policy_apps,
# keyrotd_apps_skipped; docs/metrics.md).
METRICS = {
    "build_info": {"version"},
    "rotations_total": {"organization", "policy", "outcome"},
    "revocations_total": {"organization", "policy", "outcome"},
    "deletions_total": {"organization", "policy", "outcome"},
    "keys": {"organization", "policy", "state"},
    "apps_without_valid_key": {"organization", "policy"},
    "key_expiry_timestamp_seconds": {"organization", "developer", "app", "key"},
    "next_action_timestamp_seconds": set(),
    "pass_duration_seconds": set(),
    "last_successful_pass_timestamp_seconds": {"organization"},
    "apigee_requests_total": {"method", "code"},
    "apigee_request_duration_seconds": {"method"},
    "config_reloads_total": {"outcome"},
}
ADDED = {"leader": set(), "interval_seconds": set(),
         "policy_apps": {"organization", "policy"}, "apps_skipped": {"organization", "reason"},
         # notifications (docs/notifications.md)
         "notify_outbox_depth": set(), "notify_outbox_oldest_seconds": set(),
         "notify_deliveries_total": {"sink", "outcome"}, "notify_sink_disabled": {"sink"},
         "notify_dropped_total": {"sink"}, "notify_events_total": {"type", "result"},
         # delivery (docs/delivery.md)
         "key_deliveries_total": {"organization", "policy", "stage", "outcome"},
         "revocations_held": {"organization", "policy"},
         "revocation_held_expiry_timestamp_seconds": {"organization", "policy"}}
HISTOGRAMS = {"pass_duration_seconds", "apigee_request_duration_seconds"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "endpoint", "container"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool", "inf", "nan", "atan2",
            # aggregation operators: `sum by (x) (...)` has no "(" right after the name
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile"}

SUBST = {"$__rate_interval": "5m", "${__rate_interval}": "5m", "$__interval": "1m",
         "${__interval}": "1m", "$__range": "1h", "${__range}": "1h"}


def design_metrics():
    """The metric names of design.md's "Metrics", when design.md is at hand."""
    for path in (os.environ.get("KEYROTD_DESIGN", ""), os.path.join(ROOT, "..", "shared", "design.md"),
                 os.path.join(ROOT, "docs", "design.md")):
        if path and os.path.isfile(path):
            text = open(path).read()
            m = re.search(r"^## Metrics.*?$(.*?)^## ", text, re.S | re.M)
            if m:
                return path, {n: set(filter(None, (l or "").split(",")))
                              for n, l in re.findall(r"`([a-z_]+)(?:\{([a-z_,]+)\})?`", m.group(1))
                              if not n.startswith(("success", "failure"))}
    return None, None


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def expressions(dash):
    """(panel title, expr) for every target of every panel."""
    for p in panels_of(dash):
        for t in p.get("targets", []):
            yield p.get("title", "?"), t.get("expr", "")


def substitute(expr, org):
    for k, v in SUBST.items():
        expr = expr.replace(k, v)
    # A regex inside a PromQL string: each regex escape needs its backslash doubled.
    value = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\\\1", org) if org else ".*"
    return re.sub(r"\$\{organization(:[a-z]+)?\}|\[\[organization\]\]|\$organization\b", lambda _: value, expr)


def metric_uses(expr):
    """[(metric name, {label names in its matcher})] of a PromQL expression."""
    s = re.sub(r'"(\\.|[^"\\])*"', '""', expr)                    # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)                              # ranges
    uses = []
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", s):
        name, matcher = m.group(1), m.group(2) or ""
        before = s[:m.start()].rstrip()
        after = s[m.end():].lstrip()
        if name.lower() in KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        if after.startswith("(") and not matcher:                 # a function
            continue
        if re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue                                              # a label in a grouping clause
        if re.fullmatch(r"[0-9.e+-]+[smhdwy]?", name):
            continue
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", matcher))
        uses.append((name, {l for l, _ in labels}))
    return uses


def known(name):
    """The label set of a metric name (histogram series included), or None."""
    if not name.startswith("keyrotd_"):
        return None
    base = name[len("keyrotd_"):]
    table = {**METRICS, **ADDED}
    if base in table:
        return table[base]
    for suffix in ("_bucket", "_sum", "_count"):
        if base.endswith(suffix) and base[: -len(suffix)] in HISTOGRAMS:
            return table[base[: -len(suffix)]] | ({"le"} if suffix == "_bucket" else set())
    return None


def check(path):
    failures = []

    def fail(msg):
        failures.append(msg)
        print(f"FAIL: {msg}")

    try:
        dash = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"FAIL: {path} does not parse: {e}")
        return 1
    names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if "organization" not in names or not names & {"datasource", "DS_PROMETHEUS"}:
        fail("templating needs an 'organization' and a 'datasource' variable")
    ids = [p.get("id") for p in panels_of(dash)]
    if len(ids) != len(set(ids)):
        fail("panel ids are not unique")
    panels = [p for p in panels_of(dash) if p.get("type") != "row"]
    if not panels:
        fail("no panels")
    for p in panels:
        exprs = [t.get("expr", "").strip() for t in p.get("targets", [])]
        if not exprs or not all(exprs):
            fail(f"panel {p.get('title')!r} has a target without an expression")
    used = set()
    for title, expr in expressions(dash):
        uses = metric_uses(substitute(expr, None))
        if not any(n.startswith("keyrotd_") for n, _ in uses):
            fail(f"{title!r}: uses no keyrotd metric: {expr}")
        for name, labels in uses:
            allowed = known(name)
            if allowed is None:
                fail(f"{title!r}: unknown metric {name} in: {expr}")
                continue
            used.add(name)
            extra = labels - allowed - TARGET_LABELS
            if extra:
                fail(f"{title!r}: {name} has no label(s) {sorted(extra)} in design.md")

    # The alerting rules use the same names (checked here so that one list rules both).
    try:
        import yaml
        rules = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus", "keyrotd-rules.yaml")))
        for g in rules["groups"]:
            for r in g["rules"]:
                for name, labels in metric_uses(r["expr"]):
                    allowed = known(name)
                    if allowed is None:
                        fail(f"rule {r.get('alert')}: unknown metric {name}")
                    elif labels - allowed - TARGET_LABELS:
                        fail(f"rule {r.get('alert')}: {name} has no label(s) {sorted(labels - allowed)}")
        print("ok: the alerting rules use only known metrics and labels")
    except ImportError:
        print("note: python3-yaml missing; alerting rules' metric names not checked")

    design_path, design = design_metrics()
    if design is not None:
        for name, labels in METRICS.items():
            if design.get(name) != labels:
                fail(f"{name}{sorted(labels)} differs from {design_path}: {sorted(design.get(name, []))}")
        print(f"ok: metric list agrees with {design_path}")

    # Syntax: every expression as a recording rule, through promtool.
    if shutil.which("promtool"):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            rules = [{"record": f"grafana:expr_{i}", "expr": substitute(e, None)}
                     for i, (_, e) in enumerate(expressions(dash))]
            json.dump({"groups": [{"name": "grafana", "rules": rules}]}, f)
        out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if out.returncode != 0:
            fail(f"promtool rejects an expression:\n{out.stdout}{out.stderr}")
        else:
            print(f"ok: promtool parses all {len(rules)} expressions")
    else:
        print("note: promtool not installed; PromQL syntax not checked")

    n = sum(1 for _ in expressions(dash))
    print(f"dashboard: {len(panels)} panels, {n} expressions, {len(used)} metrics: "
          + ("FAILED" if failures else "OK"))
    return 1 if failures else 0


def main(argv):
    org, path, do_check = None, DEFAULT, False
    args = iter(argv)
    for a in args:
        if a == "--check":
            do_check = True
        elif a == "--org":
            org = next(args, None)
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            path = a
    if do_check:
        return check(path)
    for _, expr in expressions(json.load(open(path))):
        print(" ".join(substitute(expr, org).split()))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
