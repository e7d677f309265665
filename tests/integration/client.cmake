# keyrotd's HTTP client against the emulator: rate limit, TLS with a test CA.
foreach(_case RateLimitTest TlsTest)
    add_test(NAME client_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/client_test.py ${_case})
    set_tests_properties(client_${_case} PROPERTIES LABELS integration TIMEOUT 300
                         ENVIRONMENT "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
endforeach()
