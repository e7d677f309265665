# Leader election (lib/sched/leader.*) against a stand-in for the Kubernetes
# Lease API (lease_server.py): 2 and 3 replicas, kill -9, graceful release,
# an unreachable API, TLS with a CA file; skewed and stepped replica clocks,
# RBAC 403, outside writes to the Lease, writes whose answers are lost, MicroTime
# with exactly 6 fractional digits, NO_PROXY in CIDR form (tls). Label integration.
add_executable(leader_driver ${CMAKE_CURRENT_LIST_DIR}/leader_driver.cpp)
keyrot_target(leader_driver)
target_link_libraries(leader_driver PRIVATE keyrot::sched spdlog::spdlog)

foreach(_case two three kill release unreachable hang tls skew rbac outside_write lost_answer
              microtime)
    add_test(NAME leader_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/leader_test.py
                     $<TARGET_FILE:leader_driver> ${_case})
    set_tests_properties(leader_${_case} PROPERTIES LABELS integration TIMEOUT 120
                                                    SKIP_RETURN_CODE 77)
endforeach()
