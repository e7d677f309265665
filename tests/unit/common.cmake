keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/common_test.cpp LIBS keyrot::common)
