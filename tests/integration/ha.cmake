# Two (three) keyrotd replicas with leader election against the Lease stand-in.
add_test(NAME ha_leader_failover COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/ha_test.py HaTest)
add_test(NAME ha_notify_failover
         COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/ha_test.py NotifyFailoverTest)
add_test(NAME ha_rolling_update
         COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/ha_test.py RollingUpdateTest)
# The generate journal and audit intents in the ConfigMap, read by the next leader.
add_test(NAME ha_failover_state
         COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/ha_test.py FailoverStateTest)
set_tests_properties(ha_leader_failover ha_notify_failover ha_rolling_update ha_failover_state
                     PROPERTIES LABELS integration TIMEOUT 120 ENVIRONMENT "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
