# Webhooks end to end (issue 11, docs/notifications.md): keyrotd `once` and
# `run` against the Apigee emulator and a loopback receiver that verifies
# Standard Webhooks signatures; retries, 410, SIGKILL and restart; app.stranded;
# events re-derived after a failover. Email (Email*): a real SMTP server on
# loopback (smtp_server.py, Debian's python3-aiosmtpd) with STARTTLS and AUTH.
set(_notify_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case OnceTest Ed25519Test RetryTest GoneTest KillTest StrandedTest FailoverTest
              UnmatchedExpiringTest TeamRotatedTest ConfigTest EmailTest EmailUnknownStatusTest
              EmailUnmatchedTest EmailFilterTest EmailRefusedTest EmailRetryTest
              EmailStarttlsTest EmailTemplateTest)
    add_test(NAME notify_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/notify_test.py ${_case})
    set_tests_properties(notify_${_case} PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "${_notify_env}")
endforeach()
# The notifications that follow a rotation, against the strict profile too.
foreach(_case StrandedTest TeamRotatedTest)
    add_test(NAME notify_${_case}_strict
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/notify_test.py ${_case})
    set_tests_properties(notify_${_case}_strict PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "${_notify_env};KEYROT_EMULATOR_PROFILE=strict")
endforeach()
