# HTTP client and Apigee API tests over real loopback sockets (label integration).
# The scripted server is a library so the HTTP benchmark can use it too.
# (bench/http.cmake defines the same target when tests are off.)
if(NOT TARGET keyrot_http_test_server)
    add_library(keyrot_http_test_server STATIC ${CMAKE_CURRENT_LIST_DIR}/http_test_server.cpp)
    keyrot_target(keyrot_http_test_server)
    target_include_directories(keyrot_http_test_server PUBLIC ${PROJECT_SOURCE_DIR}/lib
                               ${CMAKE_CURRENT_LIST_DIR})
    target_link_libraries(keyrot_http_test_server PUBLIC Boost::headers Threads::Threads
                          PRIVATE OpenSSL::SSL OpenSSL::Crypto)
endif()

# One binary for both sources (each in a namespace named after its file): in a
# unity build they share one parse of GoogleTest, Beast and lib/apigee.
add_executable(http_test ${CMAKE_CURRENT_LIST_DIR}/http_client_test.cpp
                         ${CMAKE_CURRENT_LIST_DIR}/http_api_test.cpp)
keyrot_target(http_test)
target_include_directories(http_test PRIVATE ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(http_test PRIVATE keyrot::apigee keyrot_http_test_server GTest::gtest_main
                      OpenSSL::Crypto nlohmann_json::nlohmann_json)
gtest_discover_tests(http_test PROPERTIES LABELS integration TIMEOUT 120 DISCOVERY_TIMEOUT 60)
