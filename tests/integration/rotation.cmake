# keyrotd against the Apigee emulator over real HTTP (issue: rotation engine).
set(_rot_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
# Every case against both emulator profiles: lenient, and strict (the
# pessimistic reading of each ambiguity in Apigee's reference: docs/apigee-fidelity.md).
foreach(_case RotationTest GenerateRotationTest TeamRotationTest WakeTest ConfigTest PagingTest FaultTest)
    add_test(NAME rotation_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/rotation_test.py ${_case})
    set_tests_properties(rotation_${_case} PROPERTIES LABELS integration TIMEOUT 600
                         ENVIRONMENT "${_rot_env}")
    add_test(NAME rotation_${_case}_strict
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/rotation_test.py ${_case})
    set_tests_properties(rotation_${_case}_strict PROPERTIES LABELS integration TIMEOUT 600
                         ENVIRONMENT "${_rot_env};KEYROT_EMULATOR_PROFILE=strict")
endforeach()
# Apigee Edge (apigee.flavor: edge) against the emulator's Edge flavor: Public
# and Private Cloud, Basic and OAuth+MFA; both profiles.
foreach(_case EdgePublicBasicTest EdgePublicOAuthTest EdgePrivateBasicTest EdgePrivateOAuthTest)
    add_test(NAME rotation_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/edge_rotation_test.py ${_case})
    set_tests_properties(rotation_${_case} PROPERTIES LABELS integration TIMEOUT 600
                         ENVIRONMENT "${_rot_env}")
    add_test(NAME rotation_${_case}_strict
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/edge_rotation_test.py ${_case})
    set_tests_properties(rotation_${_case}_strict PROPERTIES LABELS integration TIMEOUT 600
                         ENVIRONMENT "${_rot_env};KEYROT_EMULATOR_PROFILE=strict")
endforeach()
