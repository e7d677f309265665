#!/usr/bin/python3
"""Renders deploy/kubernetes (base and every overlay) with `kubectl kustomize`,
offline, and checks what the daemon and design.md rely on: the pod's security
settings, probes and Service on the config's `listen` port, the ConfigMap's
config and policies (fields of design.md "Config"), mounts that match the
config's paths, NetworkPolicy egress limited to 443 and DNS, least-privilege
RBAC for the Lease, and the PrometheusRule equal to
deploy/prometheus/keyrotd-rules.yaml. The component
components/deliver-secrets (Secrets delivery, docs/delivery.md) is rendered in
throwaway overlays, as docs/deployment.md tells to use it (alone, and with a
copy of its Role for a second namespace): it grants get/create/update on
Secrets in its namespace only, to keyrotd's ServiceAccount, and changes nothing
else the checks above look at.

  tests/deploy/kustomize_test.py                       run the checks
  tests/deploy/kustomize_test.py --write-prometheusrule
      regenerate deploy/kubernetes/base/prometheusrule.yaml from the rules file

Exit 77 (skipped) only when kubectl is not installed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
RULES = os.path.join(ROOT, "deploy", "prometheus", "keyrotd-rules.yaml")
PROMRULE = os.path.join(KDIR, "base", "prometheusrule.yaml")
TARGETS = ["base", "overlays/workload-identity", "overlays/key-file"]
DELIVER = os.path.join(KDIR, "components", "deliver-secrets")
DELIVER_VERBS = {"get", "create", "update"}  # no list, watch, patch, delete

# design.md "Config": the fields, nested.
CONFIG_FIELDS = {
    "apigee": {"url", "auth", "caFile", "timeout", "maxConcurrency", "requestsPerSecond"},
    "listen": None, "interval": None, "stateDir": None, "policies": None,
    "log": {"level", "format"},
}
AUTH_METHODS = {"google", "token-file", "token-env", "basic", "none"}
POLICY_FIELDS = {"name", "organization", "priority", "match", "rotation", "dryRun"}
MATCH_FIELDS = {"developers", "apps", "apiProducts", "attributes", "exclude"}
ROTATION_FIELDS = {"keyLifetime", "rotateBefore", "maxAge", "overlap", "revoke",
                   "deleteRevokedAfter", "method", "window"}
DURATION = re.compile(r"^(\d+(s|m|h|d|w)|P(?!$)(\d+[YMWD])*(T(?=\d)(\d+[HMS])*)?)$")
ALLOWED_EGRESS = {(443, "TCP"), (53, "UDP"), (53, "TCP")}
# workload-identity only: the GKE metadata server, by exact address.
METADATA_EGRESS = {("169.254.169.254/32", 80), ("169.254.169.252/32", 988)}

failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL: {what}")
    return cond


class _Literal(str):
    pass


def _literal_repr(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def prometheusrule_text():
    yaml.SafeDumper.add_representer(str, _literal_repr)
    rules = yaml.safe_load(open(RULES))
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "keyrotd"}, "spec": rules}
    return ("# Generated from deploy/prometheus/keyrotd-rules.yaml: do not edit; run\n"
            "#   tests/deploy/kustomize_test.py --write-prometheusrule\n"
            + yaml.safe_dump(doc, sort_keys=False, width=1000))


def render(target, path=None):
    out = subprocess.run(["kubectl", "kustomize", path or os.path.join(KDIR, target)],
                         capture_output=True, text=True)
    if not check(out.returncode == 0, f"{target}: kubectl kustomize failed: {out.stderr.strip()}"):
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs, kind, target):
    found = [d for d in docs if d["kind"] == kind]
    check(len(found) == 1, f"{target}: expected exactly one {kind}, got {len(found)}")
    return found[0] if found else {}


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_config(cfg, target):
    check(isinstance(cfg, dict), f"{target}: keyrotd.yaml is not a mapping")
    if not isinstance(cfg, dict):
        return
    check(set(cfg) <= set(CONFIG_FIELDS), f"{target}: unknown config fields {set(cfg) - set(CONFIG_FIELDS)}")
    for field, sub in CONFIG_FIELDS.items():
        check(field in cfg, f"{target}: config lacks {field}")
        if sub and field in cfg:
            check(set(cfg[field]) == sub, f"{target}: config {field} has {sorted(cfg[field])}, want {sorted(sub)}")
    apigee = cfg.get("apigee", {})
    check(str(apigee.get("url", "")).startswith("https://"), f"{target}: apigee.url must be https")
    check(apigee.get("auth", {}).get("method") in AUTH_METHODS, f"{target}: bad apigee.auth.method")
    for d in (apigee.get("timeout"), cfg.get("interval")):
        check(DURATION.match(str(d)) is not None, f"{target}: bad duration {d!r}")
    check(cfg.get("listen") == "0.0.0.0:9464", f"{target}: listen is {cfg.get('listen')!r}")
    check(cfg.get("stateDir") == "/var/lib/keyrotd", f"{target}: stateDir is {cfg.get('stateDir')!r}")
    check(cfg.get("policies") == "/etc/keyrotd/policies.d", f"{target}: policies is {cfg.get('policies')!r}")
    check(cfg.get("log", {}).get("format") in ("text", "json"), f"{target}: bad log.format")


def check_policy(name, pol, target):
    where = f"{target}: policy {name}"
    check(isinstance(pol, dict) and set(pol) <= POLICY_FIELDS, f"{where}: unknown fields")
    for f in ("name", "organization", "match", "rotation"):
        check(f in pol, f"{where}: lacks {f}")
    check(set(pol.get("match", {})) <= MATCH_FIELDS, f"{where}: unknown match fields")
    rot = pol.get("rotation", {})
    check(set(rot) <= ROTATION_FIELDS, f"{where}: unknown rotation fields {set(rot) - ROTATION_FIELDS}")
    for f in ("keyLifetime", "rotateBefore", "overlap"):
        v = str(rot.get(f))
        ok = (f == "keyLifetime" and v == "never") or DURATION.match(v) is not None
        check(ok, f"{where}: bad {f} {v!r}")
    check(rot.get("method", "import") in ("import", "generate"), f"{where}: bad method")


def check_target(target, docs, rules, flavour=None):
    flavour = flavour or target  # which overlay's credentials to expect
    ns = one(docs, "Namespace", target)
    check(ns.get("metadata", {}).get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted",
          f"{target}: namespace does not enforce the restricted Pod Security Standard")
    for d in docs:
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "keyrotd", f"{target}: {d['kind']} not in namespace keyrotd")

    dep = one(docs, "Deployment", target)
    spec = dep.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    check(spec.get("replicas", 1) >= 2, f"{target}: at least 2 replicas (they elect a leader)")
    strategy = spec.get("strategy", {})
    check(strategy.get("type") == "RollingUpdate"
          and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0,
          f"{target}: RollingUpdate that never takes the last ready pod away")
    check(labels_match(spec.get("selector", {}).get("matchLabels"), pod_labels), f"{target}: Deployment selector")
    # The replicas never share a node.
    spread = [c for c in pod.get("topologySpreadConstraints", [])
              if c.get("topologyKey") == "kubernetes.io/hostname"]
    check(len(spread) == 1 and spread[0].get("maxSkew") == 1
          and spread[0].get("whenUnsatisfiable") == "DoNotSchedule"
          and labels_match(spread[0].get("labelSelector", {}).get("matchLabels"), pod_labels),
          f"{target}: topology spread by hostname over the keyrotd pods")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, f"{target}: pod runAsNonRoot")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{target}: pod seccomp")
    check(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), f"{target}: host namespaces")
    containers = pod.get("containers", [])
    check(len(containers) == 1, f"{target}: one container")
    c = containers[0] if containers else {}
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False, f"{target}: allowPrivilegeEscalation")
    check(sc.get("readOnlyRootFilesystem") is True, f"{target}: readOnlyRootFilesystem")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{target}: capabilities drop ALL")
    check(not sc.get("capabilities", {}).get("add"), f"{target}: no capabilities added")
    check(sc.get("privileged") in (None, False), f"{target}: not privileged")
    check(sc.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault", f"{target}: container seccomp")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        check({"cpu", "memory"} <= set(res.get(kind, {})), f"{target}: resources.{kind} cpu+memory")
    check(c.get("args") == ["run", "-c", "/etc/keyrotd/keyrotd.yaml"], f"{target}: args {c.get('args')}")
    check(c.get("image", "").startswith("keyrotd"), f"{target}: image {c.get('image')}")

    # Config: the ConfigMap mounted at /etc/keyrotd holds keyrotd.yaml.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}

    def configmap_at(path):
        m = mounts.get(path)
        if not check(m is not None, f"{target}: nothing mounted at {path}"):
            return {}
        check(m.get("readOnly") is True, f"{target}: {path} not read-only")
        name = volumes.get(m["name"], {}).get("configMap", {}).get("name")
        check(name in cms, f"{target}: {path} is not a ConfigMap of this kustomization")
        return cms.get(name, {}).get("data", {})

    data = configmap_at("/etc/keyrotd")
    check("keyrotd.yaml" in data, f"{target}: ConfigMap lacks keyrotd.yaml")
    cfg = yaml.safe_load(data.get("keyrotd.yaml", "{}"))
    check_config(cfg, target)
    cfg = cfg if isinstance(cfg, dict) else {}
    policies = configmap_at(cfg.get("policies", "/etc/keyrotd/policies.d"))
    check(len(policies) >= 1, f"{target}: no policy in the policies ConfigMap")
    for name, text in policies.items():
        check(name.endswith((".yaml", ".yml", ".json")), f"{target}: policy file {name} extension")
        check_policy(name, yaml.safe_load(text), target)
    state = mounts.get(cfg.get("stateDir"))
    check(state is not None and not state.get("readOnly"), f"{target}: stateDir not mounted writable")

    # Probes and Service on the listen port.
    listen_port = int(str(cfg.get("listen", ":0")).rsplit(":", 1)[1])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path, f"{target}: {probe} path {get.get('path')}")
        check(port_number(c, get.get("port")) == listen_port, f"{target}: {probe} port != listen port {listen_port}")
    metrics_ports = [p for p in c.get("ports", []) if p.get("name") == "metrics"]
    check(len(metrics_ports) == 1 and metrics_ports[0]["containerPort"] == listen_port, f"{target}: port 'metrics'")
    svc = one(docs, "Service", target)
    check(labels_match(svc.get("spec", {}).get("selector"), pod_labels), f"{target}: Service selector")
    sports = svc.get("spec", {}).get("ports", [])
    check(any(p.get("name") == "metrics" and port_number(c, p.get("targetPort")) == listen_port for p in sports),
          f"{target}: Service port 'metrics' does not reach {listen_port}")
    sm = one(docs, "ServiceMonitor", target)
    check(sm.get("apiVersion") == "monitoring.coreos.com/v1", f"{target}: ServiceMonitor apiVersion")
    check(labels_match(sm.get("spec", {}).get("selector", {}).get("matchLabels"), svc["metadata"].get("labels", {})),
          f"{target}: ServiceMonitor selects no Service")
    eps = sm.get("spec", {}).get("endpoints", [])
    check(eps and all(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in eps),
          f"{target}: ServiceMonitor endpoints")

    # PrometheusRule = the rules file.
    pr = one(docs, "PrometheusRule", target)
    check(pr.get("spec") == rules, f"{target}: PrometheusRule differs from deploy/prometheus/keyrotd-rules.yaml "
          "(run tests/deploy/kustomize_test.py --write-prometheusrule)")

    # PodDisruptionBudget selects the pod and allows a drain.
    pdb = one(docs, "PodDisruptionBudget", target)
    check(labels_match(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), pod_labels), f"{target}: PDB selector")
    check(pdb.get("spec", {}).get("maxUnavailable") == 1, f"{target}: PDB must let a drain evict the only replica")

    # RBAC: the Lease and the state ConfigMap and nothing else, bound to the pod's ServiceAccount.
    sa = one(docs, "ServiceAccount", target)
    check(pod.get("serviceAccountName") == sa.get("metadata", {}).get("name"), f"{target}: pod ServiceAccount")
    role = one(docs, "Role", target)
    check(not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")], f"{target}: no cluster-wide RBAC")
    allowed = {("coordination.k8s.io", "leases"): ("keyrotd", {"get", "create", "update", "patch"}),
               ("", "configmaps"): ("keyrotd-state", {"get", "create", "patch"})}
    granted = set()
    for rule in role.get("rules", []):
        groups, resources = rule.get("apiGroups", []), rule.get("resources", [])
        check(len(groups) == 1 and len(resources) == 1 and (groups[0], resources[0]) in allowed,
              f"{target}: Role grants more than the Lease and the state ConfigMap: {rule}")
        name, verbs = allowed.get((groups[0], resources[0]), ("", set())) if groups and resources else ("", set())
        check(set(rule.get("verbs", [])) <= verbs, f"{target}: Role verbs {rule.get('verbs')} on {resources}")
        if set(rule.get("verbs", [])) - {"create"}:
            check(rule.get("resourceNames") == [name], f"{target}: {resources} rule not limited to '{name}'")
        granted |= {(tuple(groups), tuple(resources), v) for v in rule.get("verbs", [])}
    for (g, r), (_, verbs) in allowed.items():
        for v in verbs - {"update"} if r == "configmaps" else verbs - {"patch"}:
            check(((g,), (r,), v) in granted, f"{target}: Role lacks {v} on {r}")
    rb = one(docs, "RoleBinding", target)
    check(rb.get("roleRef", {}).get("name") == role.get("metadata", {}).get("name"), f"{target}: RoleBinding roleRef")
    check(any(s.get("kind") == "ServiceAccount" and s.get("name") == sa["metadata"]["name"]
              for s in rb.get("subjects", [])), f"{target}: RoleBinding subject")

    # NetworkPolicy: ingress 9464 only; egress 443/TCP and 53 only (plus the
    # metadata server in the workload-identity overlay).
    np = one(docs, "NetworkPolicy", target)
    nps = np.get("spec", {})
    check(labels_match(nps.get("podSelector", {}).get("matchLabels"), pod_labels), f"{target}: NetworkPolicy podSelector")
    check(set(nps.get("policyTypes", [])) == {"Ingress", "Egress"}, f"{target}: NetworkPolicy policyTypes")
    ingress = nps.get("ingress", [])
    check(ingress and all(r.get("ports") for r in ingress), f"{target}: an ingress rule without ports allows all")
    check(all((p.get("port"), p.get("protocol", "TCP")) == (listen_port, "TCP") for r in ingress for p in r.get("ports", [])),
          f"{target}: ingress allows more than {listen_port}/TCP")
    egress = nps.get("egress", [])
    seen = set()
    for r in egress:
        ports = r.get("ports")
        if not check(bool(ports), f"{target}: an egress rule without ports allows every port: {r}"):
            continue
        for p in ports:
            check("endPort" not in p, f"{target}: egress port range {p}")
            key = (p.get("port"), p.get("protocol", "TCP"))
            if key in ALLOWED_EGRESS:
                seen.add(key)
                continue
            cidrs = [t.get("ipBlock", {}).get("cidr") for t in r.get("to", [])]
            ok = (flavour.endswith("workload-identity") and len(cidrs) == 1 and len(r.get("to")) == 1
                  and (cidrs[0], p.get("port")) in METADATA_EGRESS and key[1] == "TCP")
            check(ok, f"{target}: egress to {cidrs or 'anywhere'} port {key} is not allowed")
    check(seen == ALLOWED_EGRESS, f"{target}: egress lacks {ALLOWED_EGRESS - seen}")

    # Credentials.
    env = {e["name"]: e for e in c.get("env", [])}
    secret_vols = {n: v for n, v in volumes.items() if "secret" in v}
    if flavour.endswith("key-file"):
        path = env.get("GOOGLE_APPLICATION_CREDENTIALS", {}).get("value")
        check(path == "/var/run/secrets/keyrotd/sa-key.json", f"{target}: GOOGLE_APPLICATION_CREDENTIALS is {path}")
        m = mounts.get("/var/run/secrets/keyrotd", {})
        check(m.get("readOnly") is True and m.get("name") in secret_vols, f"{target}: key Secret not mounted read-only")
        sec = secret_vols.get(m.get("name"), {}).get("secret", {})
        check({"key": "sa-key.json", "path": "sa-key.json"} in sec.get("items", []), f"{target}: Secret item sa-key.json")
        check(sec.get("defaultMode", 0o644) & 0o007 == 0, f"{target}: key file readable by others")
    else:
        check("GOOGLE_APPLICATION_CREDENTIALS" not in env and not secret_vols, f"{target}: has a key file")
    if flavour.endswith("workload-identity"):
        ann = sa.get("metadata", {}).get("annotations", {})
        check(str(ann.get("iam.gke.io/gcp-service-account", "")).endswith(".iam.gserviceaccount.com"),
              f"{target}: ServiceAccount lacks iam.gke.io/gcp-service-account")
        check(pod.get("nodeSelector", {}).get("iam.gke.io/gke-metadata-server-enabled") == "true",
              f"{target}: nodeSelector for the GKE metadata server")


def check_deliver(target, docs, namespaces):
    """The delivery Roles: one Role and RoleBinding keyrotd-deliver in each of
    `namespaces`, secrets get/create/update only, bound to keyrotd's
    ServiceAccount; none anywhere else (not in keyrotd's own namespace, where
    the key-file Secret lives)."""
    roles = {d["metadata"].get("namespace"): d for d in docs
             if d["kind"] == "Role" and d["metadata"]["name"] == "keyrotd-deliver"}
    bindings = {d["metadata"].get("namespace"): d for d in docs
                if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "keyrotd-deliver"}
    check(set(roles) == set(namespaces), f"{target}: delivery Roles in {sorted(roles)}, want {namespaces}")
    check(set(bindings) == set(namespaces),
          f"{target}: delivery RoleBindings in {sorted(bindings)}, want {namespaces}")
    check("keyrotd" not in roles, f"{target}: a Secrets grant in keyrotd's own namespace")
    for ns, role in roles.items():
        rules = role.get("rules", [])
        check(len(rules) == 1, f"{target}: Role {ns}/keyrotd-deliver has {len(rules)} rules")
        for rule in rules:
            check(rule.get("apiGroups") == [""] and rule.get("resources") == ["secrets"],
                  f"{target}: Role {ns}/keyrotd-deliver grants on {rule.get('apiGroups')} {rule.get('resources')}")
            check(set(rule.get("verbs", [])) == DELIVER_VERBS,
                  f"{target}: Role {ns}/keyrotd-deliver verbs {rule.get('verbs')}, want {sorted(DELIVER_VERBS)}")
            check("*" not in rule.get("verbs", []) + rule.get("resources", []),
                  f"{target}: Role {ns}/keyrotd-deliver uses a wildcard")
    for ns, rb in bindings.items():
        ref = rb.get("roleRef", {})
        check(ref == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keyrotd-deliver"},
              f"{target}: RoleBinding {ns}/keyrotd-deliver roleRef {ref}")
        check(rb.get("subjects") == [{"kind": "ServiceAccount", "name": "keyrotd", "namespace": "keyrotd"}],
              f"{target}: RoleBinding {ns}/keyrotd-deliver subjects {rb.get('subjects')}")


def deliver_overlay(tmp, base, extra_namespaces):
    """An overlay in `tmp` as docs/deployment.md describes: `base` plus the
    component, plus a copy of its role.yaml per extra namespace."""
    os.makedirs(tmp)
    rel = os.path.relpath(KDIR, tmp)
    resources = [f"{rel}/{base}"]
    role = open(os.path.join(DELIVER, "role.yaml")).read()
    for ns in extra_namespaces:
        with open(os.path.join(tmp, f"deliver-{ns}.yaml"), "w") as f:
            f.write(role.replace("namespace: apigee-keys", f"namespace: {ns}"))
        resources.append(f"deliver-{ns}.yaml")
    with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                        "resources": resources,
                        "components": [f"{rel}/components/deliver-secrets"]}, f)
    return tmp


def check_deliver_component(rules):
    tmp = tempfile.mkdtemp(prefix="keyrot-kustomize-")
    try:
        for i, (base, extra) in enumerate((("base", []),
                                           ("overlays/workload-identity", ["team-b"]),
                                           ("overlays/key-file", ["team-b", "team-c"]))):
            target = f"{base} + components/deliver-secrets" + (f" + {extra}" if extra else "")
            docs = render(target, deliver_overlay(os.path.join(tmp, str(i)), base, extra))
            if docs is None:
                continue
            check_deliver(target, docs, ["apigee-keys", *extra])
            # Everything else is the base's (or the overlay's), unchanged.
            rest = [d for d in docs if d["metadata"]["name"] != "keyrotd-deliver"]
            check(len(rest) == len(docs) - 2 * (1 + len(extra)), f"{target}: unexpected objects")
            check_target(target, rest, rules, flavour=base)
            print(f"ok: rendered and checked {target} ({len(docs)} objects)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if "--write-prometheusrule" in sys.argv[1:]:
        with open(PROMRULE, "w") as f:
            f.write(prometheusrule_text())
        print(f"wrote {PROMRULE}")
        return 0
    if shutil.which("kubectl") is None:
        print("SKIP: kubectl not installed")
        return 77
    rules = yaml.safe_load(open(RULES))
    check(open(PROMRULE).read() == prometheusrule_text(),
          "base/prometheusrule.yaml is not what --write-prometheusrule generates")
    for target in TARGETS:
        docs = render(target)
        if docs is not None:
            check_target(target, docs, rules)
            print(f"ok: rendered and checked {target} ({len(docs)} objects)")
    check_deliver_component(rules)
    print(f"kustomize: {passed} checks passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
