// The source of keyrot_pch, the target that holds the build's precompiled
// header (cmake/target.cmake, keyrot_precompile_headers): nothing of its own.
