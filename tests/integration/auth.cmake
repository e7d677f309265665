# Auth methods end to end against the emulator's token and metadata endpoints
# (issue: production HTTP client and authentication). Needs the `openssl` CLI.
set(_auth_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case GoogleTest StaticMethodsTest ExpiryTest EmulatorOAuthTest)
    add_test(NAME auth_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/auth_test.py ${_case})
    set_tests_properties(auth_${_case} PROPERTIES LABELS integration TIMEOUT 300
                         ENVIRONMENT "${_auth_env}")
endforeach()
