# Delivery end to end (issue 12, docs/delivery.md): keyrotd `once` delivers new
# keys to a Kubernetes Secret stand-in and revokes the old key only after.
add_test(NAME delivery_test COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/delivery_test.py)
set_tests_properties(delivery_test PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
