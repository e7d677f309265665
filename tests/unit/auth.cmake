keyrot_unit_test(auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_test.cpp LIBS keyrot::auth)
keyrot_unit_test(auth_edge_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_edge_test.cpp
                 LIBS keyrot::auth nlohmann_json::nlohmann_json)
