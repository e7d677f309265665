keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_test.cpp LIBS keyrot::auth)
keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_edge_test.cpp
                 LIBS keyrot::auth nlohmann_json::nlohmann_json)
