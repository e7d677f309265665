#!/usr/bin/env bash
# Try keyrotd without an Apigee organisation: installs what is missing, builds,
# starts the Apigee emulator with a demo organisation (deploy/demo-seed.json)
# and `keyrotd run` against it with minute-scale policies, in the foreground.
# Ctrl-C stops both.
#
#   deploy/try-it.sh                  emulator on a free port, metrics on :9464
#   KEYROTD_LISTEN=127.0.0.1:0 deploy/try-it.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tests/run.sh --deps-only
echo "== building keyrotd and apigee-emulator (release preset)"
cmake --preset release >/dev/null
cmake --build --preset release --target keyrotd apigee-emulator

demo=$(mktemp -d "${TMPDIR:-/tmp}/keyrotd-demo.XXXXXX")
listen=${KEYROTD_LISTEN:-127.0.0.1:9464}
emulator_pid=""
cleanup() {
    [[ -n "$emulator_pid" ]] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
    echo "== stopped; the demo's files are in $demo"
}
trap cleanup EXIT

build/release/emulator/apigee-emulator --seed deploy/demo-seed.json --port 0 \
    --port-file "$demo/emulator.port" >"$demo/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do [[ -s "$demo/emulator.port" ]] && break; sleep 0.1; done
port=$(cat "$demo/emulator.port")

mkdir -p "$demo/policies"
cat >"$demo/keyrotd.yaml" <<YAML
# The demo's config: the emulator on loopback, no auth, minute-scale policies.
apigee:
  url: http://127.0.0.1:$port
  auth: {method: none}
  requestsPerSecond: 50
listen: $listen
interval: 2m
stateDir: $demo/state
policies: $demo/policies
log: {level: info, format: text}
YAML
cat >"$demo/policies/demo.yaml" <<'YAML'
# Keys live 30 minutes, get a successor 10 minutes before they expire, and
# are revoked 4 minutes after the successor exists. (A real overlap should be
# days: Apigee caches keys for up to 3 minutes; keyrotd warns about it.)
name: demo-minutes
organization: demo
match:
  developers: ["*"]
  exclude: {apps: ["*-sandbox"]}
rotation:
  keyLifetime: 30m
  rotateBefore: 10m
  overlap: 4m
  revoke: true
  method: import
YAML

cat <<MSG

== the demo is up
   emulator:   http://127.0.0.1:$port  (organization "demo": $(grep -c '"consumerKey"' deploy/demo-seed.json) keys in 32 apps)
   config:     $demo/keyrotd.yaml
   audit log:  $demo/state/audit.jsonl
   metrics:    curl -s http://$listen/metrics | grep ^keyrotd_
   health:     curl -s http://$listen/healthz ; curl -s http://$listen/readyz
   keys:       build/release/daemon/keyrotd inventory -c $demo/keyrotd.yaml
   pending:    build/release/daemon/keyrotd plan -c $demo/keyrotd.yaml
   emulator:   curl -s http://127.0.0.1:$port/__emulator/state | python3 -m json.tool | less
   Keys expiring within 10 minutes are rotated now; others as they fall due.
   Ctrl-C stops keyrotd and the emulator.

MSG
build/release/daemon/keyrotd run -c "$demo/keyrotd.yaml"
