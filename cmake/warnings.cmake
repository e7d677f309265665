# Per-target warnings, spdlog-style: every first-party target calls this.
function(keyrot_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Werror -Wno-missing-field-initializers)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        # g++ 12 at -O2 flags Asio 1.18's coroutine frames (its own operator
        # new/delete pair) as mismatched: a known false positive (GCC PR 109224).
        target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete)
    endif()
endfunction()
