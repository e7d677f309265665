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

bool journal::write(const journal_entry& e) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    const nlohmann::json j = {
        {"organization", e.organization}, {"developer", e.developer}, {"app", e.app},
        {"replaces", e.replaces},         {"known", e.known},         {"ts", e.ts}};
    const auto final_path = path(e.organization, e.developer, e.app);
    const auto tmp = final_path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const bool ok = write_all(fd, j.dump() + "\n") && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return false;
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0) return false;
    return fsync_dir(dir_);
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

void journal::remove(const std::string& org, const std::string& developer, const std::string& app) {
    std::error_code ec;
    std::filesystem::remove(path(org, developer, app), ec);
    fsync_dir(dir_);
}

}  // namespace keyrot::exec
