#!/usr/bin/env bash
# clang-tidy with every check of .clang-tidy (bugs, needless copies and the
# clang static analyzer; every warning an error) over every file of lib/ and
# daemon/, read as one source per core: the files concatenated, each after a
# #line marker, so that they share one parse of Boost, the standard library
# and nlohmann/json and one walk of their ASTs by the checks (~415 CPU-s,
# against ~615-690 for the core file by file plus one CMake unity source per
# library, measured on this tree on 2026-12-04). The
# analyzer analyses the functions of the main file: every file's, since they
# are written in it, not included. Findings are reported under the names and
# lines of the files they are in. The sources are read with the union of
# the -D and -I flags of their compile commands (a macro defined two ways
# stops the run); files that clash when read together (two definitions of
# one name in one namespace) stop it with the compiler's error:
# tests/tidy.sh --all reads each file alone.
#   tests/tidy.sh [--all] [BUILD_DIR]    (BUILD_DIR: default build/release,
#                                         needs its compile_commands.json)
#   --all: every file of lib/ and daemon/ separately, ~20 s a file: the
#          same checks without the merged sources (not run by tests/run.sh).
#   KEYROT_TIDY_PARTS=N: N merged sources (default: one per core).
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
# The merged sources live under the tree (build/tidy-merged), where clang-tidy
# finds .clang-tidy; nothing else is written there.
out=build/tidy-merged
rm -rf "$out"
mkdir -p "$out"
parts=${KEYROT_TIDY_PARTS:-$(nproc)}
((all)) && parts=0  # each file alone, with its own command
python3 - "$build" "$out" "$parts" $lib_files <<'PY'
import json, os, re, shlex, sys
build, out, parts, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
root = os.getcwd()
db = json.load(open(os.path.join(build, "compile_commands.json")))
wanted = {os.path.realpath(f) for f in files}
# The commands of these files: their own, or (a unity build) the unity
# source's that includes them.
commands = []
for e in db:
    path = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if path in wanted:
        commands.append(e["command"])
    elif path.endswith(".cxx"):
        text = open(path).read()
        if any(f'#include "{f}"' in text for f in wanted):
            commands.append(e["command"])
if not commands:
    sys.exit(f"clang-tidy: no compile command for lib/ or daemon/ in {build}/compile_commands.json")
defines, includes = {}, []
for c in commands:
    args = shlex.split(c)
    for i, a in enumerate(args):
        if a in ("-I", "-isystem", "-D") and i + 1 < len(args):
            a = a + args[i + 1]
        if a.startswith("-D"):
            name, _, value = a[2:].partition("=")
            if name == "NDEBUG":
                continue  # asserts on: the analyzer takes them as facts, as the debug build does
            if defines.setdefault(name, value) != value:
                sys.exit(f"clang-tidy: {name} is defined as {defines[name]!r} and as {value!r}: "
                         "the files cannot be read as one source (tests/tidy.sh --all)")
        elif (a.startswith("-I") or a.startswith("-isystem")) and len(a) > 2 and a not in includes:
            includes.append(a)
std = "-std=c++20"
for c in commands:
    m = re.search(r"-std=\S+", c)
    if m:
        std = m.group(0)
flags = [f"-D{k}={v}" if v else f"-D{k}" for k, v in sorted(defines.items())] + includes
# Files in order (git's), cut into `parts` runs of about equal size.
sizes = [os.path.getsize(f) for f in files]
total, done, part = sum(sizes), 0, 0
chunks = [[] for _ in range(parts)]
for f, size in zip(files, sizes if parts else []):
    if done >= total * (part + 1) / parts and part + 1 < parts and chunks[part]:
        part += 1
    chunks[part].append(f)
    done += size
entries, markers = [], []
if parts == 0:
    for f in files:
        path = os.path.join(root, f)
        command = ["/usr/bin/c++", std, "-Wall", "-Wextra"] + flags + ["-c", path, "-o", "/dev/null"]
        entries.append({"directory": root, "file": path, "command": shlex.join(command)})
    chunks = []
for i, chunk in enumerate(c for c in chunks if c):
    merged = os.path.join(root, out, f"part{i}.cpp")
    n = 0
    with open(merged, "w") as m:
        for f in chunk:
            text = open(f).read()
            if not text.endswith("\n"):
                text += "\n"
            m.write(f'#line 1 "{os.path.join(root, f)}"\n')
            n += 1
            markers.append(f"{merged}\t{n}\t{f}")
            m.write(text)
            n += text.count("\n")
    command = ["/usr/bin/c++", std, "-Wall", "-Wextra"] + flags + ["-c", merged, "-o", merged + ".o"]
    entries.append({"directory": root, "file": merged, "command": shlex.join(command)})
json.dump(entries, open(os.path.join(out, "compile_commands.json"), "w"), indent=1)
open(os.path.join(out, "markers.tsv"), "w").write("".join(m + "\n" for m in markers))
PY
if ((all)); then
    run_tidy "$out" -- $lib_files
    ((findings)) && { echo "clang-tidy --all: findings above" >&2; exit 1; }
    echo "clang-tidy --all: $(wc -w <<<"$lib_files") files clean"
    exit 0
fi
# A finding at line N of a merged source is at line N - start of the file
# that starts last before N.
unflatten() {
    awk -F'\t' 'NR == FNR { at[$1] = at[$1] " " $2; file[$1 SUBSEP $2] = $3; next }
        match($0, /^[^: ]+\.cpp:[0-9]+:/) {
            split(substr($0, 1, RLENGTH - 1), p, ":")
            if (!(p[1] in at)) { print; next }
            n = split(at[p[1]], starts, " ")
            best = 0
            for (i = 1; i <= n; i++) if (starts[i] + 0 < p[2] + 0 && starts[i] + 0 > best) best = starts[i] + 0
            if (best) { print file[p[1] SUBSEP best] ":" (p[2] - best) substr($0, RLENGTH); next }
        }
        { print }' "$out/markers.tsv" -
}
found=$(mktemp)
trap 'rm -f "$found"' EXIT
mapfile -t merged < <(ls "$PWD/$out"/part*.cpp)
run_tidy "$out" -- "${merged[@]}" >"$found"
unflatten <"$found"
if ((findings)); then
    echo "clang-tidy: findings above" >&2
    exit 1
fi
echo "clang-tidy: every check, the analyzer included: the $(wc -w <<<"$lib_files") files of lib/ and daemon/ read as ${#merged[@]} merged sources: clean"
