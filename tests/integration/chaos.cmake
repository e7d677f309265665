# Chaos suite (tests/chaos/, docs/reliability.md): keyrotd against a faulty
# emulator, SIGKILLed and restarted; several daemons racing; then a secrets
# audit over everything those runs printed. Each ctest case runs its own chaos
# run (~1 min on 2 cores), so the slow ones can be disabled one by one.
set(_chaos_py ${PROJECT_SOURCE_DIR}/tests/chaos/chaos_test.py)
set(_chaos_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}"
               "KEYROT_ARTIFACTS=${CMAKE_BINARY_DIR}/test-artifacts")

# Convergence, availability, one successor per key, nothing lost or widened,
# revocations only with a valid complete successor.
add_test(NAME chaos_sigkill
         COMMAND ${KEYROT_PYTHON} ${_chaos_py} ChaosTest.test_0_killed_and_converged
                 ChaosTest.test_1_never_zero_usable_keys
                 ChaosTest.test_2_one_successor_per_due_key_nothing_lost_or_widened
                 ChaosTest.test_3_revoked_only_with_a_valid_complete_successor)
# Two and three daemons at once, no leader election.
add_test(NAME chaos_race COMMAND ${KEYROT_PYTHON} ${_chaos_py} RaceTest)

# DISABLED until lib/exec is fixed: "generate orphan" bug (docs/reliability.md,
# "Known failures"): when the journal recovery's marker write fails, apply_app
# goes on and generates a second key; the first stays unmarked and approved.
add_test(NAME chaos_sigkill_no_orphan_keys
         COMMAND ${KEYROT_PYTHON} ${_chaos_py} ChaosTest.test_5_no_orphan_keys)
# DISABLED until lib/exec is fixed: "audit gaps" bug (docs/reliability.md,
# "Known failures"): a lost reply to the final-marker or revoke write is not
# read back, and a SIGKILL between a write and its audit record loses the
# record; created/completed/revoked records go missing.
add_test(NAME chaos_sigkill_audit_exactly_once
         COMMAND ${KEYROT_PYTHON} ${_chaos_py} ChaosTest.test_4_audit_exactly_once)
set_tests_properties(chaos_sigkill_no_orphan_keys chaos_sigkill_audit_exactly_once
                     PROPERTIES DISABLED TRUE)

set_tests_properties(chaos_sigkill chaos_race chaos_sigkill_no_orphan_keys
                     chaos_sigkill_audit_exactly_once
                     PROPERTIES LABELS integration TIMEOUT 400 ENVIRONMENT "${_chaos_env}"
                                RESOURCE_LOCK chaos)

# Secrets audit over the outputs the cases above left in test-artifacts/.
add_test(NAME chaos_secrets_audit
         COMMAND ${KEYROT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/chaos/secrets_test.py)
set_tests_properties(chaos_secrets_audit PROPERTIES LABELS integration TIMEOUT 300
                     ENVIRONMENT "${_chaos_env}" DEPENDS "chaos_sigkill;chaos_race"
                     RESOURCE_LOCK chaos)
