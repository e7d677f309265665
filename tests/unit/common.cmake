keyrot_unit_test(common_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/common_test.cpp LIBS keyrot::common)
