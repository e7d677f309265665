#!/usr/bin/env python3
"""The obvious rotator, for comparison with keyrotd in bench/scale.sh: list the
developers, list each developer's app names, GET every app, then for each key
expiring within ROTATE_BEFORE create a successor (import), add its products,
mirror their statuses and write the marker. One request at a time, urllib,
no retries. Prints a JSON summary on stdout.
  naive_rotator.py URL ORG [--rotate-before-days 14] [--lifetime-days 90]"""
import argparse
import hashlib
import json
import secrets
import sys
import time
import urllib.parse
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("org")
    ap.add_argument("--rotate-before-days", type=float, default=14)
    ap.add_argument("--lifetime-days", type=float, default=90)
    a = ap.parse_args()
    base = "%s/v1/organizations/%s" % (a.url, a.org)
    counts = {"GET": 0, "POST": 0, "PUT": 0}

    def call(method, path, body=None):
        counts[method] = counts.get(method, 0) + 1
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    t0 = time.time()
    now_ms = int(time.time() * 1000)
    horizon = now_ms + int(a.rotate_before_days * 86400000)
    devs, start = [], ""
    while True:  # count/startKey paging; startKey is inclusive
        q = "/developers?count=1000" + ("&startKey=" + urllib.parse.quote(start) if start else "")
        page = call("GET", q).get("developer", [])
        page = [d for d in page if d["email"] != start]
        if not page:
            break
        devs += page
        start = page[-1]["email"]
    apps = []
    for d in devs:
        email = urllib.parse.quote(d["email"], safe="")
        for name in call("GET", "/developers/%s/apps" % email).get("app", []):
            apps.append((email, name if isinstance(name, str) else name["name"]))
    due = []
    for email, name in apps:  # one GET per app
        app = call("GET", "/developers/%s/apps/%s" % (email, urllib.parse.quote(name, safe="")))
        for c in app.get("credentials", []):
            exp = int(c.get("expiresAt", -1))
            if c.get("status") == "approved" and 0 < exp <= horizon and exp > now_ms:
                due.append((email, name, c))
    rotated = 0
    for email, name, c in due:  # then the writes, one app at a time
        path = "/developers/%s/apps/%s/keys" % (email, urllib.parse.quote(name, safe=""))
        fp = hashlib.sha256(c["consumerKey"].encode()).hexdigest()[:16]
        key = secrets.token_urlsafe(36).replace("-", "a").replace("_", "b")
        attrs = [x for x in c.get("attributes", []) if x["name"] != "keyrotd_replaces"]
        call("POST", path, {"consumerKey": key, "consumerSecret": secrets.token_hex(24),
                            "expiresInSeconds": int(a.lifetime_days * 86400),
                            "attributes": attrs + [{"name": "keyrotd_replaces",
                                                    "value": "pending:" + fp}],
                            "scopes": c.get("scopes", [])})
        prods = c.get("apiProducts", [])
        if prods:
            call("POST", "%s/%s" % (path, key), {"apiProducts": [p["apiproduct"] for p in prods]})
        for p in prods:
            if p["status"] != "approved":
                call("POST", "%s/%s/apiproducts/%s?action=revoke" % (path, key, p["apiproduct"]))
        call("POST", "%s/%s" % (path, key),
             {"attributes": attrs + [{"name": "keyrotd_replaces", "value": fp}]})
        rotated += 1
    print(json.dumps({"apps": len(apps), "due": len(due), "rotated": rotated,
                      "requests": counts, "seconds": round(time.time() - t0, 3)}))


if __name__ == "__main__":
    sys.exit(main())
