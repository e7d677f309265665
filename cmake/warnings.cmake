# Per-target warnings, spdlog-style: every first-party target calls this.
function(keyrot_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
endfunction()
