keyrot_unit_test(auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_test.cpp LIBS keyrot::auth)
