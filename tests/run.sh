#!/usr/bin/env bash
# Installs what is missing (Debian 12), checks the formatting, builds, runs
# every test with ctest, clang-tidy on lib/ and daemon/ (tests/tidy.sh), then the
# unit tests and keyrotd under AddressSanitizer + UBSan. clang-tidy runs at
# low priority from the start, the sanitizer build while the release tests
# run (they mostly wait on sockets); their logs: build/logs/.
#   tests/run.sh            everything
#   tests/run.sh --no-asan  skip the sanitizer build (quicker while developing)
#   tests/run.sh --deps-only  install the Debian packages and stop
set -euo pipefail
cd "$(dirname "$0")/.."

asan=1
deps_only=0
for arg in "$@"; do
    case "$arg" in
        --no-asan) asan=0 ;;
        --deps-only) deps_only=1 ;;  # used by deploy/try-it.sh
        *) echo "usage: tests/run.sh [--no-asan] [--deps-only]" >&2; exit 2 ;;
    esac
done

# Keep in step with deploy/Dockerfile's build stage.
packages=(
    build-essential cmake ninja-build mold pkg-config git ca-certificates
    libboost-dev libssl-dev openssl nlohmann-json3-dev libspdlog-dev libfmt-dev
    prometheus-cpp-dev libyaml-cpp-dev libcurl4-openssl-dev libhowardhinnant-date-dev tzdata libcli11-dev
    libgtest-dev libgmock-dev
    libbenchmark-dev python3 python3-yaml python3-jsonschema python3-aiosmtpd python3-cryptography
    prometheus curl
    clang libclang-rt-14-dev clang-format clang-tidy
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

((deps_only)) && exit 0

start=$(date +%s)
stage() { echo "== $* (at $(( $(date +%s) - start ))s)"; }

stage "format: clang-format --dry-run --Werror on every C++ file"
git ls-files -z -- '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run --Werror

# A build directory made here (a clean clone: CI) is a unity build: merged
# sources share their Boost parses and template instantiations, a full build
# takes ~30 % less. An existing directory keeps its own setting (incremental
# builds of one file are quicker without unity).
unity=()
[[ -f build/release/CMakeCache.txt ]] || unity=(-DCMAKE_UNITY_BUILD=ON)
stage "configure + build (release${unity:+, unity}); clang-tidy in the background (build/logs/tidy.log)"
cmake --preset release "${unity[@]}" >/dev/null
# Background jobs write to build/logs/NAME.log; finish NAME waits for one and
# shows its log (the whole log when it failed, its end otherwise).
mkdir -p build/logs
declare -A bg_pids=()
trap 'kill "${bg_pids[@]}" 2>/dev/null || true' EXIT  # a failed stage stops the rest
background() {
    local name=$1
    shift
    "$@" > "build/logs/$name.log" 2>&1 &
    bg_pids[$name]=$!
}
finish() {
    local name=$1
    if wait "${bg_pids[$name]}"; then
        tail -n 4 "build/logs/$name.log"
        return 0
    fi
    cat "build/logs/$name.log"
    echo "$name failed (build/logs/$name.log)" >&2
    exit 1
}

# clang-tidy needs the compile commands, not the build: it starts now, at
# low priority, and takes the CPU the build and the tests leave (they mostly
# wait on sockets), so that it never ends last.
background tidy nice -n 10 tests/tidy.sh build/release
cmake --build --preset release

# The sanitizers are set per target (cmake/target.cmake): prove they reached
# a binary, or every run under "ASan" would pass uninstrumented.
check_sanitized() {
    local syms
    syms=$(nm -D --undefined-only "$1")
    grep -q '__asan_init' <<<"$syms" && grep -q '__ubsan_handle_' <<<"$syms" ||
        { echo "$1 is not built with ASan + UBSan" >&2; return 1; }
}
# keyrotd itself under ASan+UBSan (leaks included) against the release
# emulator: the rotation suite (the strict profile: it takes more paths; the
# release run has both), the daemon and hostile-input suites. They mostly wait
# on sockets (~56 CPU-s in ~120 s), so they run beside the rest of the build.
asan_suites() {
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export KEYROTD="$PWD/build/asan/daemon/keyrotd" KEYROT_BUILD_DIR="$PWD/build/release"
    KEYROT_EMULATOR_PROFILE=strict timeout 600 /usr/bin/python3 tests/integration/rotation_test.py &&
        timeout 600 /usr/bin/python3 tests/integration/daemon_test.py &&
        timeout 300 /usr/bin/python3 tests/chaos/hostile_test.py
}
# The ASan build: keyrotd first, then its suites start
# while the unit tests build.
asan_build() {
    # keyrotd at normal priority: its suites, mostly waiting on sockets, then
    # run beside ctest rather than after it (the run's critical path).
    cmake --build --preset asan --target keyrotd || return 1
    check_sanitized build/asan/daemon/keyrotd || return 1
    stage "keyrotd under ASan + UBSan built; its suites start (build/logs/asan-suites.log)"
    asan_suites > build/logs/asan-suites.log 2>&1 &
    local suites=$!
    nice -n 10 cmake --build --preset asan --target unit-tests || { kill $suites; return 1; }
    check_sanitized build/asan/tests/unit_core || { kill $suites; return 1; }
    # Each binary whole, in two shards side by side (ctest's process per test
    # costs ~120 s under ASan, this ~35 s), as soon as they are built: beside
    # the suites and clang-tidy, not after them.
    stage "unit tests under ASan + UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        KEYROT_SIM_SEEDS=1 KEYROT_SIM_DAYS=365 tests/unit_binaries.sh build/asan 2 ||
        { kill $suites; return 1; }
    if ! wait $suites; then
        cat build/logs/asan-suites.log
        echo "keyrotd under ASan + UBSan: a suite failed" >&2
        return 1
    fi
    stage "keyrotd's suites under ASan + UBSan passed"
}

if ((asan)); then
    # A unity build (CMAKE_UNITY_BUILD in the preset): -O0 compiles are mostly
    # front end, so merging sources saves a third of the time (703 s -> ~480 s).
    stage "configure + build (asan, unity) in the background (the unit tests at low priority); keyrotd's suites as soon as it is built"
    cmake --preset asan >/dev/null
    background asan-build asan_build
fi
stage "ctest (release: unit + integration)"
ctest --preset release -j2 --timeout 600

stage "clang-tidy (lib/ and daemon/, the static analyzer included)"
finish tidy

if ((asan)); then
    stage "waiting for the asan build, the unit tests and keyrotd's suites under ASan + UBSan (build/logs/asan-build.log)"
    finish asan-build
    grep -E '^(== |[0-9]+ unit test binaries)' build/logs/asan-build.log
    tail -n 3 build/logs/asan-suites.log
fi
echo "== all tests passed in $(( $(date +%s) - start ))s"
