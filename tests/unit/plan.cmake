keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/planner_test.cpp LIBS keyrot::plan date::date-tz)
keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/simulation_test.cpp LIBS keyrot::plan)
keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/steps_test.cpp LIBS keyrot::plan)
