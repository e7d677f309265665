# `keyrotd run` against the Apigee emulator (and a real Prometheus server) over
# real HTTP: scheduling, signals, systemd notify, metrics, logs (issue: daemon).
set(_daemon_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case ScheduleTest ReloadTest ReloadDuringPassTest StopTest NotifyTest PrometheusTest
              JsonLogTest ReadyzTest PerKeyTest)
    add_test(NAME daemon_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/daemon_test.py ${_case})
    set_tests_properties(daemon_${_case} PROPERTIES LABELS integration TIMEOUT 300
                         ENVIRONMENT "${_daemon_env}")
endforeach()
