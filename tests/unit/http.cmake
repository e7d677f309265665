keyrot_unit_test(http_rules_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_rules_test.cpp
                 LIBS keyrot::http)
