# Hostile emulator mode (tests/chaos/hostile_test.py, docs/emulator.md): the
# emulator corrupts the answers about one app (wrong types, missing fields,
# huge arrays, duplicate keys) or loops the app list's nextPageToken; keyrotd
# must exit by itself, say what was wrong, and write nothing to that app.
# One ctest entry per mode, so a failure names the mode.
set(_hostile_py ${PROJECT_SOURCE_DIR}/tests/chaos/hostile_test.py)
foreach(_case control wrong_types missing_fields huge_array duplicate_keys page_loop)
    add_test(NAME hostile_${_case}
             COMMAND ${KEYROT_PYTHON} ${_hostile_py} HostileTest.test_${_case})
    set_tests_properties(hostile_${_case} PROPERTIES LABELS integration TIMEOUT 300
                         ENVIRONMENT "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
endforeach()
