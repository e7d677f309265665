keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_rules_test.cpp
                 LIBS keyrot::http)
