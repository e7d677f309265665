#!/usr/bin/env bash
# Builds (when stale) and runs both fuzz targets side by side for SECONDS each
# (default 60, at most 60) from their seed corpora: apigee_json_fuzz from
# tests/fuzz/corpus/apigee_json, config_fuzz from tests/fixtures/{config,bad-config}.
# Exit 0 when nothing was found; 77 when clang++ is absent.
#   tests/fuzz/smoke.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
secs="${1:-60}"
((secs > 60)) && secs=60
"$root/tests/fuzz/build.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apigee_json_fuzz" "$work/config_fuzz"
cp "$root"/tests/fuzz/corpus/apigee_json/* "$work/apigee_json_fuzz/" 2>/dev/null || true
# Inputs that once hung or blew up the config loader (regressions).
cp "$root"/tests/fuzz/corpus/config/* "$work/config_fuzz/" 2>/dev/null || true
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run NAME MAX_LEN EXTRA_CORPUS...: new inputs land in $work/NAME; crash-* files
# in $work (printed on failure).
run() {
    local name="$1" max_len="$2"
    shift 2
    # libFuzzer's out-of-memory report walks the whole heap (minutes at 1 GB):
    # a hard deadline keeps a finding from hanging the test suite.
    (cd "$work" && timeout -s KILL $((secs + 30)) "$root/build/fuzz/$name" \
        -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 \
        "$work/$name" "$@" >"$work/$name.log" 2>&1)
}
run apigee_json_fuzz 65536 &
p1=$!
run config_fuzz 16384 "$root/tests/fixtures/config" "$root/tests/fixtures/bad-config" &
p2=$!
rc=0
for t in apigee_json_fuzz:$p1 config_fuzz:$p2; do
    name="${t%%:*}"
    if wait "${t##*:}"; then
        echo "fuzz smoke: $name ran ${secs}s without findings ($(grep -c '^#' "$work/$name.log" || true) status lines)"
    else
        rc=1
        echo "fuzz smoke: $name FAILED:"
        grep -m1 -A3 -E "ERROR|out-of-memory|SUMMARY" "$work/$name.log" || tail -n 20 "$work/$name.log"
        # Keep the reproducer: build/fuzz/findings/<name>-{crash,leak,timeout,oom}-*.
        mkdir -p "$root/build/fuzz/findings"
        for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
            [[ -e "$f" ]] || continue
            cp "$f" "$root/build/fuzz/findings/$name-$(basename "$f")"
            echo "reproducer: build/fuzz/findings/$name-$(basename "$f")"
        done
    fi
done
exit "$rc"
