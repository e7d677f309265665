#include "common/durable.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <system_error>

namespace keyrot {

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool fsync_dir(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return ok;
}

bool write_durable(const std::filesystem::path& path, std::string_view text, std::string* why) {
    auto fail = [why](const std::string& step) {
        if (why) *why = step + ": " + std::error_code(errno, std::generic_category()).message();
        return false;
    };
    const std::string tmp = path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail("open " + tmp);
    bool ok = write_all(fd, text);
    std::string step = "write " + tmp;
    if (ok && ::fsync(fd) != 0) ok = false, step = "fsync " + tmp;
    const int saved = errno;
    ::close(fd);
    errno = saved;
    if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) ok = false, step = "rename " + tmp;
    if (!ok) {
        const int e = errno;
        ::unlink(tmp.c_str());
        errno = e;
        return fail(step);
    }
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (!fsync_dir(dir)) return fail("fsync " + dir.string());
    return true;
}

bool for_each_tail_line(const std::filesystem::path& path, std::size_t max_bytes,
                        const std::function<void(const std::string&)>& fn) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    const auto tail = static_cast<std::streamoff>(max_bytes);
    in.seekg(size > tail ? size - tail : 0);
    std::string line;
    if (size > tail) std::getline(in, line);  // the line the cut falls into
    while (std::getline(in, line)) fn(line);
    return true;
}

}  // namespace keyrot
