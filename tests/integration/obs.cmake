# obs: `promtool check metrics` on the exposition of a populated registry, as
# served over HTTP by obs::http_server (a tiny program; obs_promtool_test.py drives it).
add_executable(obs_exposition ${CMAKE_CURRENT_LIST_DIR}/obs_exposition.cpp)
keyrot_target(obs_exposition)
target_link_libraries(obs_exposition PRIVATE keyrot::obs Boost::headers Threads::Threads)

# Debian's prometheus package; tests/run.sh installs it. Missing: the test fails and says so.
find_program(KEYROT_PROMTOOL promtool PATHS /usr/bin)
if(NOT KEYROT_PROMTOOL)
    set(KEYROT_PROMTOOL promtool)
endif()
add_test(NAME obs_promtool_check_metrics
         COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/obs_promtool_test.py
                 $<TARGET_FILE:obs_exposition> ${KEYROT_PROMTOOL})
set_tests_properties(obs_promtool_check_metrics PROPERTIES LABELS integration TIMEOUT 120)
