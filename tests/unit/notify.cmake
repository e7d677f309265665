# keyrot::notify: events, webhook signing, retry rules, outbox durability, config,
# and the dispatcher against a loopback HTTP receiver (Notify* tests).
keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/notify_test.cpp
                 LIBS keyrot::notify nlohmann_json::nlohmann_json OpenSSL::Crypto Boost::headers
                      Threads::Threads)
# Email: templates, recipients, the message, SMTP outcomes, the emails config.
keyrot_unit_test(unit_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/notify_email_test.cpp
                 LIBS keyrot::notify nlohmann_json::nlohmann_json Boost::headers Threads::Threads)
