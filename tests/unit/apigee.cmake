keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/apigee_json_test.cpp
                 LIBS keyrot::apigee nlohmann_json::nlohmann_json)
keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/apigee_edge_test.cpp
                 LIBS keyrot::apigee keyrot::auth nlohmann_json::nlohmann_json)
