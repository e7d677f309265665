# http_bench: requests/s and client CPU per request through keyrot::http::client
# against a loopback server (built in, or --url to point it at the emulator).
if(NOT TARGET keyrot_http_test_server)
    add_library(keyrot_http_test_server STATIC
                ${PROJECT_SOURCE_DIR}/tests/integration/http_test_server.cpp)
    keyrot_target(keyrot_http_test_server)
    target_include_directories(keyrot_http_test_server PUBLIC ${PROJECT_SOURCE_DIR}/lib
                               ${PROJECT_SOURCE_DIR}/tests/integration)
    target_link_libraries(keyrot_http_test_server PUBLIC Boost::headers Threads::Threads
                          PRIVATE OpenSSL::SSL OpenSSL::Crypto)
endif()
add_executable(http_bench ${CMAKE_CURRENT_LIST_DIR}/http_bench.cpp)
keyrot_target(http_bench)
target_link_libraries(http_bench PRIVATE keyrot::http keyrot_http_test_server)
