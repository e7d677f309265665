#!/usr/bin/env bash
# clang-tidy with the checks of .clang-tidy (bugs and performance, every
# warning an error) over every file of lib/ and daemon/, in two passes:
#  1. the pure core (lib/common, lib/plan, lib/policy, lib/sched/schedule.cpp)
#     file by file with every check, the clang static analyzer included;
#  2. every file of lib/ and daemon/ with the bugprone-* and performance-*
#     checks, read as CMake's unity sources (preset `tidy`, build/tidy): a few
#     sources share one parse of Boost, which makes the pass ~6x cheaper
#     (~3 CPU-minutes instead of ~18). The analyzer reports only on a unity
#     file itself, so it stays with pass 1 there; --all runs it on each file.
# Findings in the included .cpp files are reported under their own names.
#   tests/tidy.sh [--all] [BUILD_DIR]    (BUILD_DIR: default build/release,
#                                         needs its compile_commands.json)
#   --all: every check (the analyzer too) on each file of lib/ and daemon/
#          separately, ~20 s a file: a deeper read, not run by tests/run.sh.
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

findings=0
# run_tidy BUILD_DIR [run-clang-tidy options...] -- FILE...: prints findings.
run_tidy() {
    local dir=$1
    shift
    local opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    local regex out rc
    regex="($(printf '%s|' "$@" | sed 's/|$//'))\$"
    set +e
    out=$(run-clang-tidy -quiet -j "$(nproc)" -p "$dir" "${opts[@]}" "$regex" 2>&1)
    rc=$?
    set -e
    # Keep the findings (with their notes and code lines), drop the chatter.
    grep -v -E '^(Running clang-tidy|clang-tidy-[0-9]+ |[0-9]+ warnings? (and [0-9]+ errors? )?generated|Suppressed [0-9]+ warnings|Use -header-filter|$)' <<<"$out" || true
    if ((rc != 0)) || grep -q -E '(warning|error):' <<<"$out"; then findings=1; fi
}

lib_files=$(git ls-files -- 'lib/*.cpp' 'daemon/*.cpp')
if ((all)); then
    run_tidy "$build" -- $lib_files
    ((findings)) && { echo "clang-tidy --all: findings above" >&2; exit 1; }
    echo "clang-tidy --all: $(wc -w <<<"$lib_files") files clean"
    exit 0
fi

core=$(git ls-files -- 'lib/common/*.cpp' 'lib/plan/*.cpp' 'lib/policy/*.cpp' lib/sched/schedule.cpp)
run_tidy "$build" -- $core

# Pass 2: the unity sources of lib/ and daemon/ (configure only: nothing is built).
cmake --preset tidy >/dev/null
# (lib/common, lib/plan and lib/policy had every check in pass 1.)
mapfile -t unity < <(ls build/tidy/lib/*/CMakeFiles/*/Unity/*.cxx build/tidy/daemon/CMakeFiles/*/Unity/*.cxx |
                     grep -v -E '/keyrot_(common|plan|policy)\.dir/')
# A source CMake left out of the unity files is read on its own, never skipped.
covered=$(grep -h -o '#include "[^"]*"' "${unity[@]}" | sed -E "s|#include \"$PWD/||; s|\"$||" | sort -u)
alone=$(comm -23 <(tr ' ' '\n' <<<"$lib_files" | grep -v -E '^lib/(common|plan|policy)/' | sort -u) \
             <(echo "$covered"))
# (bugprone-suspicious-include: a unity source includes .cpp files by design.)
run_tidy build/tidy -checks=-clang-analyzer-*,-bugprone-suspicious-include -- "${unity[@]}" $alone
if ((findings)); then
    echo "clang-tidy: findings above" >&2
    exit 1
fi
rest=$(tr ' ' '\n' <<<"$lib_files" | grep -c -v -E '^lib/(common|plan|policy)/')
echo "clang-tidy: $(wc -w <<<"$core") core files with every check, the analyzer included; the other $rest files of lib/ and daemon/ in ${#unity[@]} unity sources$([[ -n $alone ]] && echo " + $(wc -w <<<"$alone") alone"): clean"
