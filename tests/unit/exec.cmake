# exec: every crash window of a rotation, the executor against the emulator's
# request handler in-process (http::transport seam), both methods and profiles.
keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/crash_window_test.cpp
                 LIBS keyrot::exec keyrot::apigee keyrot::auth keyrot::http keyrot::obs
                      apigee-emulator-core nlohmann_json::nlohmann_json)
