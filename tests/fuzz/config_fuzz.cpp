// libFuzzer target for the config and policy loader (lib/policy): any bytes as
// a config file (YAML or JSON) pointing at a policy file that holds the same
// bytes, and as a policy file alone; plus glob_match on the input split in two.
// The loader must never crash, leak or trip UBSan; it returns diagnostics.
//   tests/fuzz/build_config.sh && build/fuzz/config_fuzz tests/fixtures/bad-config
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "policy/config.hpp"

namespace {

const std::filesystem::path& dir() {
    static const std::filesystem::path d = [] {
        auto p = std::filesystem::temp_directory_path() /
                 ("keyrot-config-fuzz-" + std::to_string(::getpid()));
        std::filesystem::create_directories(p);
        return p;
    }();
    return d;
}

void put(const std::filesystem::path& p, std::string_view data) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const bool json = size > 0 && data[0] == '{';
    const auto cfg = dir() / (json ? "keyrotd.json" : "keyrotd.yaml");
    const auto pol = dir() / "policies" / (json ? "p.json" : "p.yaml");
    std::filesystem::create_directories(pol.parent_path());
    // The input as a config; a config that names ./policies reads the same bytes as a policy.
    put(cfg, in);
    put(pol, in);
    auto r = keyrot::policy::load_config(cfg);
    for (const auto& d : r.diagnostics) (void)keyrot::policy::to_string(d);
    auto p = keyrot::policy::load_policies(pol);
    for (const auto& d : p.diagnostics) (void)keyrot::policy::to_string(d);
    // Globs: pattern before the first newline, text after it.
    const auto nl = in.find('\n');
    if (nl != std::string_view::npos) {
        const auto pat = in.substr(0, nl);
        (void)keyrot::policy::glob_valid(pat);
        (void)keyrot::policy::glob_match(pat, in.substr(nl + 1));
        (void)keyrot::policy::glob_match_icase(pat, in.substr(nl + 1));
    }
    std::filesystem::remove(cfg);
    return 0;
}
