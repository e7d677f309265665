#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ directly (no CMake, so the g++ build
# is never affected), side by side. Output: build/fuzz/<target>. A target whose
# binary is newer than every source it is built from (its .cpp, lib/) is left
# alone. Exit 77 when no clang++ is installed (ctest reports a skip).
#   tests/fuzz/build.sh [apigee_json_fuzz] [config_fuzz]   (default: both)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/build/fuzz"
mkdir -p "$out"
CXX="${CXX_FUZZ:-clang++-14}"
command -v "$CXX" >/dev/null || CXX=clang++
if ! command -v "$CXX" >/dev/null; then
    echo "fuzz: no clang++ (install clang and libclang-rt-14-dev): skipped" >&2
    exit 77
fi
# (Line tables only: stack traces keep file and line, the build takes ~10 % less.)
flags=(-std=c++20 -gline-tables-only -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/lib")

# unity NAME SOURCE...: one source that includes them all, $out/NAME.unity.cpp:
# the headers are parsed once, not once a file (53 CPU-s instead of 81, and
# half the wall time, for both targets).
unity() {
    local name=$1
    shift
    printf '#include "%s"\n' "$@" >"$out/$name.unity.cpp"
    echo "$out/$name.unity.cpp"
}

# up_to_date BINARY SOURCE...: the binary exists and no source (nor any file of
# the lib/ modules the targets use) is newer.
up_to_date() {
    local bin="$1"
    shift
    [[ -x "$bin" ]] || return 1
    [[ -z "$(find "$@" "$root"/lib/{common,apigee,policy} -newer "$bin" \( -name '*.cpp' -o -name '*.hpp' \) -print -quit)" ]]
}

build_apigee_json() {
    local srcs=("$root/tests/fuzz/apigee_json_fuzz.cpp" "$root/lib/apigee/json.cpp"
                "$root/lib/common/fingerprint.cpp" "$root/lib/common/secret.cpp")
    if up_to_date "$out/apigee_json_fuzz" "${srcs[@]}"; then
        echo "up to date: $out/apigee_json_fuzz"
        return
    fi
    "$CXX" "${flags[@]}" -o "$out/apigee_json_fuzz.tmp" "$(unity apigee_json_fuzz "${srcs[@]}")" -lcrypto
    mv "$out/apigee_json_fuzz.tmp" "$out/apigee_json_fuzz"
    echo "built $out/apigee_json_fuzz"
}

build_config() {
    # (the loader checks a policy's deliver section with lib/deliver's parser)
    local srcs=("$root/tests/fuzz/config_fuzz.cpp" "$root"/lib/policy/config.cpp
                "$root"/lib/policy/policy_reader.cpp "$root"/lib/policy/loading.cpp
                "$root"/lib/policy/glob.cpp "$root"/lib/common/*.cpp
                "$root"/lib/deliver/config.cpp "$root"/lib/deliver/naming.cpp
                "$root"/lib/http/rules.cpp)
    if up_to_date "$out/config_fuzz" "${srcs[@]}"; then
        echo "up to date: $out/config_fuzz"
        return
    fi
    # (named time zones: Howard Hinnant's date, as its CMake package defines it)
    "$CXX" "${flags[@]}" -DUSE_OS_TZDB=1 -DONLY_C_LOCALE=1 -DHAS_STRING_VIEW=1 \
        -o "$out/config_fuzz.tmp" "$(unity config_fuzz "${srcs[@]}")" -lyaml-cpp -ldate-tz -lcrypto
    mv "$out/config_fuzz.tmp" "$out/config_fuzz"
    echo "built $out/config_fuzz"
}

targets=("$@")
((${#targets[@]})) || targets=(apigee_json_fuzz config_fuzz)
pids=()
for t in "${targets[@]}"; do
    case "$t" in
        apigee_json_fuzz) build_apigee_json & ;;
        config_fuzz) build_config & ;;
        *) echo "unknown fuzz target $t" >&2; exit 2 ;;
    esac
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit "$rc"
