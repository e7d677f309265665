#!/usr/bin/env bash
# Builds the config/policy loader fuzzer alone (build.sh builds both).
# Output: build/fuzz/config_fuzz. Longer runs by hand:
#   build/fuzz/config_fuzz -max_total_time=3600 -max_len=16384 CORPUS_DIR tests/fixtures/bad-config tests/fixtures/config
exec "$(dirname "$0")/build.sh" config_fuzz
