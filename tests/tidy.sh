#!/usr/bin/env bash
# clang-tidy with every check of .clang-tidy (bugs, needless copies and the
# clang static analyzer; every warning an error) over every file of lib/ and
# daemon/, in two passes:
#  1. the pure core (lib/common, lib/plan, lib/policy, lib/sched/schedule.cpp)
#     file by file (as unity sources, the analyzer follows calls across
#     files, which costs more than the parses saved);
#  2. every other file of lib/ and daemon/, read as CMake's unity sources
#     (preset `tidy`, build/tidy): a few sources share one parse of Boost,
#     which makes the pass ~6x cheaper than file by file. Each unity source is
#     flattened first (its included .cpp files written in place, after a
#     #line marker): the analyzer analyses only the functions of the main
#     file, and a unity source that includes its .cpp files has none.
# Findings are reported under the names and lines of the files they are in.
#   tests/tidy.sh [--all] [BUILD_DIR]    (BUILD_DIR: default build/release,
#                                         needs its compile_commands.json)
#   --all: every file of lib/ and daemon/ separately, ~20 s a file: the
#          same checks without the unity sources (not run by tests/run.sh).
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
    out=$(sed -E 's/\x1b\[[0-9;]*m//g' <<<"$out")  # no colours: findings are mapped back to files
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
# A unity build's database names only the unity sources (clang-tidy would
# match none of these files, and say nothing): each core file gets the
# command of the unity source that includes it, in a database of its own.
core_db=$(mktemp -d)
trap 'rm -rf "$core_db"' EXIT
python3 - "$build" "$core_db" $core <<'PY'
import json, os, re, sys
build, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
db = json.load(open(os.path.join(build, "compile_commands.json")))
by_file = {os.path.realpath(e["file"]): e for e in db}
entries = []
for f in files:
    path = os.path.realpath(f)
    entry = by_file.get(path)
    if entry is None:  # inside a unity source: take its command
        for e in db:
            if e["file"].endswith(".cxx") and f'#include "{path}"' in open(e["file"]).read():
                entry = dict(e, file=path)
                entry["command"] = e["command"].replace(e["file"], path)
                break
    # GCC's precompiled header is not clang's: the sources include what they use.
    entry["command"] = re.sub(r" -Winvalid-pch| -include \S*cmake_pch\.hxx", "", entry["command"])
    if entry is None:
        sys.exit(f"clang-tidy: no compile command for {f} in {build}/compile_commands.json")
    entries.append(entry)
json.dump(entries, open(os.path.join(out, "compile_commands.json"), "w"), indent=1)
PY
run_tidy "$core_db" -- $core

# Pass 2: the unity sources of lib/ and daemon/ (configure only: nothing is
# built), written afresh (a flattened one from the last run is never read).
rm -f build/tidy/lib/*/CMakeFiles/*/Unity/*.cxx build/tidy/daemon/CMakeFiles/*/Unity/*.cxx
cmake --preset tidy >/dev/null
# (lib/common, lib/plan and lib/policy had every check in pass 1.)
mapfile -t unity < <(ls build/tidy/lib/*/CMakeFiles/*/Unity/*.cxx build/tidy/daemon/CMakeFiles/*/Unity/*.cxx |
                     grep -v -E '/keyrot_(common|plan|policy)\.dir/')
# A source CMake left out of the unity files is read on its own, never skipped.
covered=$(grep -h -o '#include "[^"]*"' "${unity[@]}" | sed -E "s|#include \"$PWD/||; s|\"$||" | sort -u)
alone=$(comm -23 <(tr ' ' '\n' <<<"$lib_files" | grep -v -E '^lib/(common|plan|policy)/' | sort -u) \
             <(echo "$covered"))
# Flatten each unity source in place (the next `cmake --preset tidy` writes
# it again), and note where each file starts: "unity<TAB>line<TAB>file".
markers=$(mktemp)
found=$(mktemp)
trap 'rm -rf "$core_db" "$markers" "$found"' EXIT
for u in "${unity[@]}"; do
    flat=$(mktemp)
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        if [[ $line =~ ^#include\ \"(/.*\.cpp)\"$ ]]; then
            inc=${BASH_REMATCH[1]}
            printf '#line 1 "%s"\n' "$inc" >>"$flat"
            printf '%s\t%d\t%s\n' "$PWD/$u" "$n" "${inc#"$PWD"/}" >>"$markers"
            cat "$inc" >>"$flat"
            n=$((n + $(wc -l <"$inc")))
            [[ -z $(tail -c 1 "$inc") ]] || { echo >>"$flat"; n=$((n + 1)); }
        else
            printf '%s\n' "$line" >>"$flat"
        fi
    done <"$u"
    mv "$flat" "$u"
done
# A finding at line N of a flattened unity source is at line N - start of
# the file that starts last before N.
unflatten() {
    awk -F'\t' 'NR == FNR { at[$1] = at[$1] " " $2; file[$1 SUBSEP $2] = $3; next }
        match($0, /^[^: ]+\.cxx:[0-9]+:/) {
            split(substr($0, 1, RLENGTH - 1), p, ":")
            n = split(at[p[1]], starts, " ")
            best = 0
            for (i = 1; i <= n; i++) if (starts[i] + 0 < p[2] + 0 && starts[i] + 0 > best) best = starts[i] + 0
            if (best) { print file[p[1] SUBSEP best] ":" (p[2] - best) substr($0, RLENGTH); next }
        }
        { print }' "$markers" -
}
run_tidy build/tidy -- "${unity[@]}" $alone >"$found"
unflatten <"$found"
if ((findings)); then
    echo "clang-tidy: findings above" >&2
    exit 1
fi
rest=$(tr ' ' '\n' <<<"$lib_files" | grep -c -v -E '^lib/(common|plan|policy)/')
echo "clang-tidy: every check, the analyzer included: $(wc -w <<<"$core") core files one by one; the other $rest files of lib/ and daemon/ in ${#unity[@]} flattened unity sources$([[ -n $alone ]] && echo " + $(wc -w <<<"$alone") alone"): clean"
