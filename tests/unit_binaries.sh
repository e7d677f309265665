#!/usr/bin/env bash
# tests/unit_binaries.sh BUILD_DIR [JOBS]: runs every unit test binary listed
# in BUILD_DIR/unit-tests.txt (written by tests/CMakeLists.txt) whole, split
# in JOBS GoogleTest shards run side by side (default 2).
#
# ctest runs each test in a process of its own; under ASan that start-up is
# most of the cost (553 processes: ~120 s, against ~35 s this way). tests/run.sh
# uses this for the sanitizer run; the release ctest keeps a process per test,
# so between them a test that depends on running alone, or on running after
# another, is caught too.
set -euo pipefail

build=${1:?usage: tests/unit_binaries.sh BUILD_DIR [JOBS]}
jobs=${2:-2}
list="$build/unit-tests.txt"
[[ -s $list ]] || { echo "$list is missing or empty: configure $build first" >&2; exit 1; }

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
mapfile -t bins < "$list"
for bin in "${bins[@]}"; do
    [[ -x $bin ]] || { echo "$bin is not built" >&2; exit 1; }
done

# One line per shard: binary, shard index. Each shard runs in the binary's own
# directory (ctest's working directory for gtest_discover_tests).
run_shard() {
    local bin=$1 index=$2 jobs=$3 logs=$4
    local log="$logs/$(basename "$bin").$index.log"
    if (cd "$(dirname "$bin")" &&
        GTEST_TOTAL_SHARDS=$jobs GTEST_SHARD_INDEX=$index timeout 600 "$bin" --gtest_brief=1) \
        > "$log" 2>&1; then
        return 0
    fi
    echo "FAILED: $(basename "$bin") shard $index of $jobs" >> "$logs/failed"
}
export -f run_shard
for bin in "${bins[@]}"; do
    for ((i = 0; i < jobs; i++)); do printf '%s\0%s\0' "$bin" "$i"; done
done | xargs -0 -n2 -P"$jobs" bash -c 'run_shard "$0" "$1" '"$jobs"' '"$logs"

if [[ -s $logs/failed ]]; then
    while read -r _ name _ index _; do
        echo "---- $name, shard $index"
        cat "$logs/$name.$index.log"
    done < "$logs/failed"
    cat "$logs/failed" >&2
    exit 1
fi
passed=$(cat "$logs"/*.log | awk '/^\[  PASSED  \]/ { n += $4 } END { print n + 0 }')
((passed > 0)) || { echo "no test ran" >&2; exit 1; }
echo "${#bins[@]} unit test binaries, $passed tests passed (in $jobs shards each)"
