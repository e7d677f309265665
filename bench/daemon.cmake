# keyrotd daemon benchmark: `cmake --build <dir> --target bench-daemon` runs
# bench/daemon-bench.sh (idle RSS/CPU, peak RSS over a 100k-app org with
# perKey: false, due -> successor latency) against this build's binaries.
# Release builds give the numbers that count.
add_custom_target(bench-daemon
    COMMAND ${CMAKE_COMMAND} -E env KEYROTD=$<TARGET_FILE:keyrotd>
            EMULATOR=$<TARGET_FILE:apigee-emulator> ${CMAKE_CURRENT_SOURCE_DIR}/daemon-bench.sh
    DEPENDS keyrotd apigee-emulator
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    USES_TERMINAL)
