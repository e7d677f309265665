# sched: the pure parts of leader election (Lease JSON, expiry, MicroTime, env config).
keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/sched_test.cpp
                 LIBS keyrot::sched nlohmann_json::nlohmann_json)
# sched: the daemon's schedule as a pure function (schedule.hpp), a table.
keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/schedule_test.cpp
                 LIBS keyrot::sched)
