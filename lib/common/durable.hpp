// Durable file writes, the one copy the project uses (stateDir journal,
// notification outbox, audit log).
//
// - write_all: the whole buffer, retrying short writes and EINTR; on failure
//   errno is left as the failing write() set it.
// - fsync_dir: fsync of a directory (makes a rename or unlink in it durable).
// - write_durable: `text` to `path` so that after a crash the file holds
//   either the old content or the new, never a mix: a temporary file beside
//   it (mode 0600), fsync, rename over `path`, fsync of the directory. On
//   failure `why` (if given) names the step and errno's text, and the
//   temporary file is removed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace keyrot {

bool write_all(int fd, std::string_view data);
bool fsync_dir(const std::filesystem::path& dir);
bool write_durable(const std::filesystem::path& path, std::string_view text,
                   std::string* why = nullptr);

// Each whole line of the last `max_bytes` of a line-oriented file (the audit
// log): a line the cut falls into is skipped. False when the file cannot be
// opened (absent, unreadable).
bool for_each_tail_line(const std::filesystem::path& path, std::size_t max_bytes,
                        const std::function<void(const std::string&)>& fn);

}  // namespace keyrot
