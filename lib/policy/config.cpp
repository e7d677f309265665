#include "policy/config.hpp"

// Placeholder until the loader lands: fails loudly.
namespace keyrot::policy {
std::string to_string(const diagnostic& d) {
    return d.file + ":" + std::to_string(d.line) + ":" + std::to_string(d.column) + ": " +
           (d.level == diagnostic::severity::error ? "error" : "warning") + ": " + d.field +
           ": " + d.message;
}
load_result load_config(const std::filesystem::path& file) {
    return {std::nullopt, {{diagnostic::severity::error, file.string(), 0, 0, "", "loader not implemented"}}};
}
policies_result load_policies(const std::filesystem::path& path) {
    return {{}, {{diagnostic::severity::error, path.string(), 0, 0, "", "loader not implemented"}}};
}
bool glob_match(std::string_view, std::string_view) { return false; }
bool glob_valid(std::string_view) { return false; }
}  // namespace keyrot::policy
