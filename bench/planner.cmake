# planner_bench: plan_app()/match_policy() throughput over synthetic apps (keys/s).
add_executable(planner_bench ${CMAKE_CURRENT_LIST_DIR}/planner_bench.cpp)
keyrot_target(planner_bench)
target_include_directories(planner_bench PRIVATE ${PROJECT_SOURCE_DIR}/lib)
target_link_libraries(planner_bench PRIVATE keyrot::plan benchmark::benchmark)
