#!/usr/bin/env bash
# clang-tidy with the checks of .clang-tidy (bugs and performance, every
# warning an error) over the pure core: lib/common, lib/plan, lib/policy and
# lib/sched/schedule.cpp, about a minute. --all takes every file of lib/ and
# daemon/, but Debian 12's clang-tidy 14 cannot parse the coroutine code with
# GCC 12's standard library (no boost::asio::awaitable): those files end in
# clang-diagnostic-error, so --all is a reading aid, not a gate.
#   tests/tidy.sh [--all] [BUILD_DIR]    (BUILD_DIR: default build/release,
#                                         needs its compile_commands.json)
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
build=build/release
for arg in "$@"; do
    case "$arg" in
        --all) all=1 ;;
        -*) echo "usage: tests/tidy.sh [--all] [BUILD_DIR]" >&2; exit 2 ;;
        *) build="$arg" ;;
    esac
done
[[ -f "$build/compile_commands.json" ]] || { echo "no $build/compile_commands.json: build first" >&2; exit 2; }
if ((all)); then
    files=$(git ls-files -- 'lib/*.cpp' 'daemon/*.cpp')
else
    files=$(git ls-files -- 'lib/common/*.cpp' 'lib/plan/*.cpp' 'lib/policy/*.cpp' lib/sched/schedule.cpp)
fi
regex="($(echo $files | sed 's/ /|/g'))\$"
set +e
out=$(run-clang-tidy -quiet -j "$(nproc)" -p "$build" "$regex" 2>&1)
rc=$?
set -e
grep -v -E '^(Running clang-tidy|clang-tidy-[0-9]+ |[0-9]+ warnings? (and [0-9]+ errors? )?generated|Suppressed [0-9]+ warnings|Use -header-filter|$)' <<<"$out" || true
if ((rc != 0)) || grep -q -E '(warning|error):' <<<"$out"; then
    echo "clang-tidy: findings above (rc $rc)" >&2
    exit 1
fi
echo "clang-tidy: $(wc -w <<<"$files") files clean"
