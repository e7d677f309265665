#!/usr/bin/env bash
# Builds and runs each fuzz target for a short while (default 60 s in total,
# at most 60) from the seed corpus. Exit 0 when nothing was found.
#   tests/fuzz/smoke.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
secs="${1:-60}"
((secs > 60)) && secs=60
"$root/tests/fuzz/build.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root"/tests/fuzz/corpus/apigee_json/* "$work/" 2>/dev/null || true
cd "$work"  # crash-* files land here; a failure prints the path
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build/fuzz/apigee_json_fuzz" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" 2>&1 | tail -n 20
echo "fuzz smoke: apigee_json_fuzz ran ${secs}s without findings"
