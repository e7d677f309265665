#include "exec/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fingerprint.hpp"

namespace keyrot::exec {
namespace {

bool write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n < 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool fsync_dir(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

std::filesystem::path journal::path(const std::string& org, const std::string& developer,
                                    const std::string& app) const {
    // Names may hold any character: the file name is a digest of them.
    return dir_ / ("generate-" + fingerprint(org + "\n" + developer + "\n" + app) + ".json");
}

// Writes `j` to `final_path` durably: temp file, fsync, rename, fsync of the directory.
bool write_durable(const std::filesystem::path& dir, const std::filesystem::path& final_path,
                   const nlohmann::json& j) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto tmp = final_path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const bool ok = write_all(fd, j.dump() + "\n") && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return false;
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0) return false;
    return fsync_dir(dir);
}

bool journal::write(const journal_entry& e) {
    const nlohmann::json j = {
        {"organization", e.organization}, {"developer", e.developer}, {"app", e.app},
        {"replaces", e.replaces},         {"known", e.known},         {"ts", e.ts}};
    return write_durable(dir_, path(e.organization, e.developer, e.app), j);
}

std::optional<journal_entry> journal::read(const std::string& org, const std::string& developer,
                                           const std::string& app) const {
    std::ifstream in(path(org, developer, app));
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    journal_entry e;
    e.organization = j.value("organization", "");
    e.developer = j.value("developer", "");
    e.app = j.value("app", "");
    e.replaces = j.value("replaces", "");
    e.ts = j.value("ts", millis{0});
    if (j.contains("known") && j["known"].is_array())
        for (const auto& k : j["known"])
            if (k.is_string()) e.known.push_back(k.get<std::string>());
    return e;
}

bool journal::exists(const std::string& org, const std::string& developer,
                     const std::string& app) const {
    std::error_code ec;
    return std::filesystem::exists(path(org, developer, app), ec);
}

void journal::remove(const std::string& org, const std::string& developer, const std::string& app) {
    std::error_code ec;
    std::filesystem::remove(path(org, developer, app), ec);
    fsync_dir(dir_);
}

}  // namespace keyrot::exec

namespace keyrot::exec {

std::filesystem::path intent_log::path(const intent& i) const {
    return dir_ / ("intent-" +
                   fingerprint(i.organization + "\n" + i.developer + "\n" + i.app + "\n" +
                               i.action + "\n" + i.key) +
                   ".json");
}

bool intent_log::write(const intent& i) {
    const nlohmann::json j = {{"organization", i.organization},
                              {"developer", i.developer},
                              {"app", i.app},
                              {"policy", i.policy},
                              {"action", i.action},
                              {"key", i.key},
                              {"replaces", i.replaces},
                              {"detail", i.detail},
                              {"late", i.late},
                              {"ts", i.ts}};
    return write_durable(dir_, path(i), j);
}

void intent_log::remove(const intent& i) {
    std::error_code ec;
    std::filesystem::remove(path(i), ec);
}

std::vector<intent> intent_log::load(const std::string& organization) const {
    std::vector<intent> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
        const auto name = entry.path().filename().string();
        if (name.rfind("intent-", 0) != 0 || entry.path().extension() != ".json") continue;
        std::ifstream in(entry.path());
        std::stringstream ss;
        ss << in.rdbuf();
        const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        intent i;
        i.organization = j.value("organization", "");
        if (i.organization != organization) continue;
        i.developer = j.value("developer", "");
        i.app = j.value("app", "");
        i.policy = j.value("policy", "");
        i.action = j.value("action", "");
        i.key = j.value("key", "");
        i.replaces = j.value("replaces", "");
        i.detail = j.value("detail", "");
        i.late = j.value("late", false);
        i.ts = j.value("ts", millis{0});
        out.push_back(std::move(i));
    }
    return out;
}

}  // namespace keyrot::exec
