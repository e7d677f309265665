# Delivery end to end (issue 12, docs/delivery.md): keyrotd `once` against the
# Apigee emulator delivers new keys to stand-ins of a Kubernetes Secret, Vault
# KV v2 and Secret Manager (targets_server.py) and revokes the old key only
# after every target holds the new one; ChaosTest SIGKILLs keyrotd and injects
# faults across create -> deliver -> revoke. Every case against both emulator
# profiles (lenient, and strict: docs/apigee-fidelity.md).
set(_deliv_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case DeliveryTest VaultTest SecretManagerTest AllKindsTest InventoryTest ChaosTest)
    add_test(NAME delivery_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/delivery_test.py ${_case})
    set_tests_properties(delivery_${_case} PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "${_deliv_env}")
    add_test(NAME delivery_${_case}_strict
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/delivery_test.py ${_case})
    set_tests_properties(delivery_${_case}_strict PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "${_deliv_env};KEYROT_EMULATOR_PROFILE=strict")
endforeach()
