# Every first-party target calls keyrot_target(<target>), spdlog-style: its
# warnings and, in a sanitizer build, its sanitizers. Nothing is set for the
# whole directory, so imported targets and anything else keep their own flags.

# The sanitizers of a KEYROT_SANITIZE build (the asan preset), as -fsanitize takes
# them; one target can differ: set_target_properties(T PROPERTIES KEYROT_SANITIZERS thread)
# before keyrot_target(T), or "" to leave it uninstrumented.
set(KEYROT_SANITIZERS "address,undefined" CACHE STRING
    "Sanitizers of a KEYROT_SANITIZE build (-fsanitize=...)")

function(keyrot_target target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Werror -Wno-missing-field-initializers)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        # g++ 12 at -O2 flags Asio 1.18's coroutine frames (its own operator
        # new/delete pair) as mismatched: a known false positive (GCC PR 109224).
        target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete)
    endif()
    if(KEYROT_SANITIZE)
        get_target_property(sanitizers ${target} KEYROT_SANITIZERS)
        if(NOT sanitizers AND NOT sanitizers STREQUAL "")
            set(sanitizers "${KEYROT_SANITIZERS}")  # property not set
        endif()
        if(sanitizers)
            # PUBLIC: whatever links a sanitized library links the runtime too.
            target_compile_options(${target} PRIVATE -fsanitize=${sanitizers}
                                   -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
            target_link_options(${target} PUBLIC -fsanitize=${sanitizers})
        endif()
    endif()
endfunction()
