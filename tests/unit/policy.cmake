# Config and policy loader (lib/policy).
keyrot_unit_test(unit_core
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_test.cpp
    LIBS keyrot::policy nlohmann_json::nlohmann_json)
target_compile_definitions(unit_core PRIVATE
    KEYROT_FIXTURES="${KEYROT_FIXTURES}"
    KEYROT_POLICIES_DIR="${PROJECT_SOURCE_DIR}/policies")

# The JSON Schemas in policies/ accept every example and fixture (Debian's
# python3-jsonschema + python3-yaml). policy_test checks the other direction:
# every field the loader knows is in the schema, and nothing else.
add_test(NAME policy_schema
         COMMAND ${KEYROT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/policy_schema_test.py
                 ${PROJECT_SOURCE_DIR}/policies ${KEYROT_FIXTURES}/config)
set_tests_properties(policy_schema PROPERTIES LABELS unit)
