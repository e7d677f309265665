# apigee-emulator benchmark: `cmake --build <dir> --target bench-emulator` runs
# bench/emulator-bench.sh (wrk + a generated 100k-app seed) against this
# build's emulator. Release builds give the numbers that count.
add_custom_target(bench-emulator
    COMMAND ${CMAKE_COMMAND} -E env EMULATOR=$<TARGET_FILE:apigee-emulator>
            ${CMAKE_CURRENT_SOURCE_DIR}/emulator-bench.sh
    DEPENDS apigee-emulator
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    USES_TERMINAL)
