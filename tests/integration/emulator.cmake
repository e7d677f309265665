# apigee-emulator black-box tests: the binary on port 0 over HTTP and HTTPS,
# and gcloud (a client nobody here wrote) against it when gcloud is installed.
set(_emu_bin $<TARGET_FILE:apigee-emulator>)
set(_emu_py ${CMAKE_CURRENT_LIST_DIR}/emulator_test.py)
set(_emu_seed ${KEYROT_FIXTURES}/emulator/seed.json)
foreach(mode http https gcloud)
    add_test(NAME emulator_${mode} COMMAND ${KEYROT_PYTHON} ${_emu_py} ${_emu_bin} ${_emu_seed} ${mode})
    set_tests_properties(emulator_${mode} PROPERTIES LABELS integration TIMEOUT 180
                                                     SKIP_RETURN_CODE 77)
endforeach()
# The Edge flavor (--flavor edge), under both profiles.
set(_emu_edge_py ${CMAKE_CURRENT_LIST_DIR}/emulator_edge_test.py)
foreach(profile lenient strict)
    add_test(NAME emulator_edge_${profile} COMMAND ${KEYROT_PYTHON} ${_emu_edge_py} ${_emu_bin} ${profile})
    set_tests_properties(emulator_edge_${profile} PROPERTIES LABELS integration TIMEOUT 180)
endforeach()
