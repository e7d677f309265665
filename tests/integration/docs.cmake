# Every command and config block in README.md and docs/*.md works as written
# (issue "Every command tells the truth", items 12 and 13): links resolve, the
# YAML blocks and the example configs pass `keyrotd validate`, the commands use
# programs, scripts, presets, build directories, targets and options that
# exist, the JSON blocks parse; SelfTest shows each check failing on the broken
# documents of tests/fixtures/docs/. No emulator, no network: a few seconds.
set(_docs_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case LinkTest YamlTest ExampleConfigTest CommandTest JsonTest SelfTest)
    add_test(NAME docs_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/docs_test.py ${_case})
    set_tests_properties(docs_${_case} PROPERTIES LABELS integration TIMEOUT 60
                         ENVIRONMENT "${_docs_env}")
endforeach()
