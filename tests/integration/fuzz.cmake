# Smoke-runs the libFuzzer targets (apigee_json_fuzz, config_fuzz) for 10 s each,
# side by side, after building them with clang++ (tests/fuzz/build.sh skips the
# build when the binaries are newer than their sources). Exit 77 (skipped) only
# when clang++ is absent.
add_test(NAME fuzz_smoke
         COMMAND bash -c "${CMAKE_SOURCE_DIR}/tests/fuzz/build.sh && ${CMAKE_SOURCE_DIR}/tests/fuzz/smoke.sh 10"
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(fuzz_smoke PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
