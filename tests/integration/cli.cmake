# Every keyrotd command tells the truth (issue 16), against the Apigee emulator
# over real HTTP: stateDir lock, signals in once, rotate's exit code, failed
# passes, credentials, CLI manners, tables, YAML hints, JSON logs, gauges, and
# a keyrotd that is not dumpable; plan --within.
set(_cli_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case LockTest SignalTest RotateTest FailedPassTest CredentialsTest CliTest LogTest
              MetricsTest DumpableTest ForecastTest)
    add_test(NAME cli_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/cli_test.py ${_case})
    set_tests_properties(cli_${_case} PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "${_cli_env}")
endforeach()
