#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ directly (no CMake, so the g++ build
# is never affected). Output: build/fuzz/<target>.
#   tests/fuzz/build.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/build/fuzz"
mkdir -p "$out"
CXX="${CXX_FUZZ:-clang++-14}"
command -v "$CXX" >/dev/null || CXX=clang++
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/lib")
"$CXX" "${flags[@]}" -o "$out/apigee_json_fuzz" \
    "$root/tests/fuzz/apigee_json_fuzz.cpp" "$root/lib/apigee/json.cpp" \
    "$root/lib/common/fingerprint.cpp" "$root/lib/common/secret.cpp" -lcrypto
echo "built $out/apigee_json_fuzz"
