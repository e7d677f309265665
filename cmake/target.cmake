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
        if(NOT sanitizers STREQUAL KEYROT_SANITIZERS)
            return()  # other flags than the precompiled header's: never given it
        endif()
    endif()
    if(NOT target STREQUAL "keyrot_pch")
        set_property(GLOBAL APPEND PROPERTY KEYROT_PCH_CANDIDATES ${target})
    endif()
endfunction()

# ---- One precompiled header per build (GCC), for the targets that use Asio.
# Boost.Asio and nlohmann/json take ~5 s to parse in each of ~27 unity
# sources, twice in tests/run.sh (release and ASan): parsed once per build
# instead. GCC takes a precompiled header only where the macros it depends on
# and the optimisation (-O0 or not) and sanitizers match: the targets that
# link Boost::headers (which defines BOOST_ALL_NO_LIB), directly or through a
# module, with the build's sanitizers. -Winvalid-pch is on and warnings are
# errors, so a mismatch fails the build rather than compiling slowly.
# KEYROT_PCH=OFF turns it off (tests/tidy.sh drops it: clang cannot read GCC's file).
# Measured (2026-12): a second header with GoogleTest and gmock for the unit
# tests gains nothing (loading its 229 MB costs what parsing them saves: a
# unit test source took 16.9 s with it, 13.2 s with none, 20.2 s with this
# one), and this one is about even for the libraries at -O2 (keyrot_exec
# 19.7 s with, 21.2 without; keyrot_http 38.1 against 36.3); not measured
# at -O0 (the ASan build), where parsing is a larger share of the time.
option(KEYROT_PCH "Precompile Boost.Asio and nlohmann/json once per build (GCC)" ON)

# Whether `target` sees Boost::headers' usage requirements: it links it, or a
# library that passes it on (PUBLIC / INTERFACE).
function(_keyrot_sees_boost target out)
    set(found FALSE)
    get_target_property(aliased ${target} ALIASED_TARGET)
    if(aliased)
        set(target ${aliased})
    endif()
    get_target_property(libs ${target} INTERFACE_LINK_LIBRARIES)
    if(ARGC GREATER 2)  # the target itself: what it links, PRIVATE included
        get_target_property(libs ${target} LINK_LIBRARIES)
    endif()
    foreach(lib IN LISTS libs)
        if(lib MATCHES "^\\$<LINK_ONLY:" OR NOT TARGET ${lib})
            continue()
        endif()
        if(lib STREQUAL "Boost::headers" OR lib STREQUAL "Boost::boost")
            set(found TRUE)
            break()
        endif()
        _keyrot_sees_boost(${lib} sub)
        if(sub)
            set(found TRUE)
            break()
        endif()
    endforeach()
    set(${out} ${found} PARENT_SCOPE)
endfunction()

# Called once every target exists (the end of the top-level CMakeLists.txt).
function(keyrot_precompile_headers)
    if(NOT KEYROT_PCH OR CMAKE_DISABLE_PRECOMPILE_HEADERS OR NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        return()
    endif()
    add_library(keyrot_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch.cpp)
    keyrot_target(keyrot_pch)
    target_link_libraries(keyrot_pch PRIVATE Boost::headers nlohmann_json::nlohmann_json)
    # (<utility> first: Boost 1.74's awaitable.hpp needs it; common/asio.hpp.)
    target_precompile_headers(keyrot_pch PRIVATE <utility> <algorithm> <chrono> <functional>
                              <map> <memory> <optional> <string> <string_view> <vector>
                              <boost/asio.hpp> <nlohmann/json.hpp>)
    get_property(candidates GLOBAL PROPERTY KEYROT_PCH_CANDIDATES)
    set(users "")
    foreach(t IN LISTS candidates)
        _keyrot_sees_boost(${t} sees TRUE)
        if(sees)
            target_precompile_headers(${t} REUSE_FROM keyrot_pch)
            list(APPEND users ${t})
        endif()
    endforeach()
    list(LENGTH users n)
    message(STATUS "Precompiled header (Boost.Asio, nlohmann/json): ${n} targets")
endfunction()
