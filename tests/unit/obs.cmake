keyrot_unit_test(unit_io
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/obs_audit_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/obs_log_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/obs_metrics_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/obs_http_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/obs_notifier_test.cpp
    LIBS keyrot::obs nlohmann_json::nlohmann_json Boost::headers Threads::Threads)
