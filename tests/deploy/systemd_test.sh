#!/usr/bin/env bash
# Checks systemd/keyrotd.service (and its optional credentials drop-in):
#   - the directives the daemon's contract relies on are there;
#   - `systemd-analyze verify` prints nothing (it exits 0 even on warnings);
#   - `systemd-analyze security --offline=true --threshold=20` passes
#     (exposure <= 2.0) and the score is printed.
# Usage: tests/deploy/systemd_test.sh [KEYROTD_BINARY]
# verify needs ExecStart='s binary to exist, so a copy of the unit points at
# KEYROTD_BINARY (the built keyrotd), or /bin/true when none is given/built.
# Exit 77 (skip) only when systemd-analyze is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
unit=$here/systemd/keyrotd.service
dropin=$here/systemd/keyrotd.service.d/credentials.conf

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not installed"
    exit 77
fi

binary=${1:-}
if [[ -z $binary || ! -x $binary ]]; then
    [[ -n $binary ]] && echo "note: $binary not built; verifying with /bin/true"
    binary=/bin/true
fi

fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. The contract (design.md, deployment brief).
required=(
    'Type=notify' 'NotifyAccess=main' 'WatchdogSec=60' 'Restart=on-failure'
    'RestartPreventExitStatus=78' 'ExecReload=/bin/kill -HUP $MAINPID'
    'DynamicUser=yes' 'StateDirectory=keyrotd' 'ConfigurationDirectory=keyrotd'
    'Environment=KEYROTD_CONFIG=/etc/keyrotd/keyrotd.yaml'
    'ExecStart=/usr/bin/keyrotd run -c ${KEYROTD_CONFIG}'
    'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'PrivateDevices=yes'
    'NoNewPrivileges=yes' 'CapabilityBoundingSet=' 'UMask=0077'
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service'
    'SystemCallArchitectures=native' 'MemoryDenyWriteExecute=yes' 'ProtectProc=invisible'
    'LimitCORE=0'
    'ProcSubset=pid'
)
for line in "${required[@]}"; do
    grep -qxF -- "$line" "$unit" || bad "keyrotd.service lacks the line: $line"
done
grep -qxF 'LoadCredential=sa-key.json:/etc/keyrotd/sa-key.json' "$dropin" ||
    bad "credentials.conf lacks LoadCredential=sa-key.json:/etc/keyrotd/sa-key.json"
# The service must be able to reach Apigee: no blanket IP deny, no private network.
grep -qE '^(IPAddressDeny|PrivateNetwork)=' "$unit" && bad "keyrotd.service blocks the network"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_copy() { # DIR: copy of the unit with ExecStart pointing at $binary
    mkdir -p "$1"
    sed "s#^ExecStart=/usr/bin/keyrotd #ExecStart=$binary #" "$unit" >"$1/keyrotd.service"
}

# 2. verify: the unit alone, then with the drop-in (verify reads drop-ins
# from the directories in SYSTEMD_UNIT_PATH).
check_verify() { # DIR LABEL
    local out
    out=$(cd "$1" && SYSTEMD_UNIT_PATH="$1:" systemd-analyze verify "$1/keyrotd.service" 2>&1) ||
        { bad "systemd-analyze verify ($2) exited non-zero:"; echo "$out"; return; }
    if [[ -n $out ]]; then
        bad "systemd-analyze verify ($2) printed output:"
        echo "$out"
    else
        echo "ok: systemd-analyze verify ($2) is silent"
    fi
}
make_copy "$tmp/plain"
check_verify "$tmp/plain" "unit"
make_copy "$tmp/cred"
mkdir -p "$tmp/cred/keyrotd.service.d"
cp "$dropin" "$tmp/cred/keyrotd.service.d/"
check_verify "$tmp/cred" "unit + credentials.conf"

# 3. security exposure, both variants.
check_security() { # DIR LABEL
    local out rc=0
    out=$(cd "$1" && SYSTEMD_UNIT_PATH="$1:" systemd-analyze security --offline=true \
        --threshold=20 "$1/keyrotd.service" 2>&1) || rc=$?
    score=$(grep -oE 'Overall exposure level for [^:]*: [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$' || true)
    if ((rc != 0)) || [[ -z $score ]]; then
        bad "systemd-analyze security ($2) failed (rc=$rc, exposure ${score:-?}):"
        echo "$out" | grep -E '^✗' || echo "$out"
    else
        echo "ok: exposure ($2) = $score (threshold 2.0)"
    fi
}
check_security "$tmp/plain" "unit"
check_security "$tmp/cred" "unit + credentials.conf"

if ((fail)); then
    echo "systemd unit: FAILED"
    exit 1
fi
echo "systemd unit: OK"
