# keyrotd against the Apigee emulator over real HTTP (issue: rotation engine).
set(_rot_env "KEYROT_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(_case RotationTest GenerateRotationTest ConfigTest PagingTest FaultTest)
    add_test(NAME rotation_${_case}
             COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/rotation_test.py ${_case})
    set_tests_properties(rotation_${_case} PROPERTIES LABELS integration TIMEOUT 600
                         ENVIRONMENT "${_rot_env}")
endforeach()
