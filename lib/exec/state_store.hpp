// Where the executor keeps its crash-recovery state: the generate journal and
// the audit intents (exec/journal.hpp). Small named JSON texts, written before
// the Apigee call they protect and removed after it.
//
// Contract:
// - load() reads every entry into memory; the executor calls it at the start of
//   each pass and reads entries() from that copy (plus its own puts and erases)
//   for the rest of the pass. A store that cannot be read fails the pass before
//   any write: leftovers it cannot see could not be recovered.
// - put() returns true only once the entry is durable where the next process
//   (after a crash, or another replica after a failover) will read it.
// - erase() of an absent entry is success. A failed erase leaves the entry; the
//   next pass recovers it again, which the executor makes harmless.
// - Names are [a-z0-9-]+ (they become file names and ConfigMap data keys);
//   values never hold a consumer key or secret (fingerprints only).
// - One thread: not safe for concurrent use across threads; coroutines on one
//   io_context may interleave (each call completes its own entry).
//
// Two implementations: file_store (a directory under stateDir: one file per
// entry, fsynced) and, where leader election is on, sched::configmap_store
// (a ConfigMap beside the Lease, so the replica that takes over reads what the
// last leader left).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "common/asio.hpp"
#include "common/result.hpp"

namespace keyrot::exec {

class state_store {
  public:
    virtual ~state_store() = default;
    virtual net::awaitable<result<void>> load() = 0;
    virtual net::awaitable<bool> put(std::string name, std::string value) = 0;
    virtual net::awaitable<bool> erase(std::string name) = 0;
    // name -> value, as of the last load() and this process's puts/erases since.
    const std::map<std::string, std::string>& entries() const { return entries_; }
    // For messages: "stateDir /var/lib/keyrotd/journal", "ConfigMap ns/name".
    virtual std::string describe() const = 0;

  protected:
    std::map<std::string, std::string> entries_;
};

// One file NAME.json an entry in `dir` (created 0700 on the first put): written
// to a temporary file, fsynced, renamed, and the directory fsynced.
class file_store final : public state_store {
  public:
    explicit file_store(std::filesystem::path dir) : dir_(std::move(dir)) {}
    net::awaitable<result<void>> load() override;
    net::awaitable<bool> put(std::string name, std::string value) override;
    net::awaitable<bool> erase(std::string name) override;
    std::string describe() const override { return "stateDir " + dir_.string(); }

  private:
    std::filesystem::path dir_;
};

}  // namespace keyrot::exec
