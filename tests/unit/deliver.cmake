# keyrot::deliver (lib/deliver): the pure parts (naming and the attribute
# allow-list, CRC32C vectors, config errors, request bodies) in deliver_test;
# every target against tests/integration/targets_server.py (a stand-in for the
# Kubernetes Secret API, Vault KV v2 and Secret Manager on 127.0.0.1, started
# per test) in deliver_loopback_test. Both are "unit" (they run under ASan too).
keyrot_unit_test(unit_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/deliver_test.cpp
                 LIBS keyrot::deliver nlohmann_json::nlohmann_json)
keyrot_unit_test(unit_io
                 SOURCES ${CMAKE_CURRENT_LIST_DIR}/deliver_loopback_test.cpp
                 LIBS keyrot::deliver nlohmann_json::nlohmann_json Threads::Threads)
target_compile_definitions(unit_io PRIVATE
    KEYROT_PYTHON="${KEYROT_PYTHON}"
    KEYROT_TARGETS_SERVER="${PROJECT_SOURCE_DIR}/tests/integration/targets_server.py")
