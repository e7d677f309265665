// A durable, bounded outbox of events waiting to be delivered: one JSON file
// per event under a directory (STATEDIR/outbox).
//
// Contract:
// - add() returns `added` only once the event's file is written, fsynced,
//   renamed into place and the directory fsynced: an event reported stored
//   survives a crash, SIGKILL or power loss. Opening loads every entry, so
//   delivery resumes after a restart where it stopped (attempts, next attempt
//   time, first-added time). Half-written files (*.tmp) are removed; files
//   that cannot be parsed are renamed *.corrupt and counted, never deleted.
// - Dedupe: an id already in the outbox is not stored again (`duplicate`).
//   Only undelivered events are remembered; the caller emits an occurrence once.
// - Bounded: with max_entries undelivered events, add() refuses with `full`
//   and a reason; nothing is ever dropped silently.
// - Per (event, sink) state: attempts, next attempt time, last error. An event
//   leaves the outbox (its file is removed, directory fsynced) when no sink is
//   left for it: each was delivered, abandoned or disabled (finish()).
// - State updates after add() are written the same durable way; when one
//   fails, memory is updated anyway and the call returns false (after a crash
//   the event may be sent again: delivery is at least once).
// - Time is a parameter; no clock, no network, no logging. One thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.hpp"
#include "common/result.hpp"
#include "notify/event.hpp"

namespace keyrot::notify {

struct delivery_state {
    int attempts = 0;  // failed attempts so far
    sys_ms next_at{};  // when the next attempt is due
    std::string last_error;
};

struct outbox_entry {
    std::string id;
    std::string type;  // "key.rotated", …
    sys_ms added_at{};
    std::string body;                               // exactly what is signed and sent
    std::map<std::string, delivery_state> pending;  // sink name -> state
};

enum class add_status { added, duplicate, full, failed };

struct add_result {
    add_status status = add_status::added;
    std::string reason;  // for full/failed: why, for logs
    bool stored() const { return status == add_status::added || status == add_status::duplicate; }
};

class outbox {
  public:
    struct load_report {
        std::size_t loaded = 0;
        std::size_t corrupt = 0;    // renamed *.corrupt
        std::size_t leftovers = 0;  // *.tmp removed
    };

    // Creates `dir` (mode 0700) when missing and loads it. Error (config) when
    // the directory cannot be created or listed, or max_entries is 0.
    static result<std::unique_ptr<outbox>> open(std::filesystem::path dir, std::size_t max_entries);

    // Stores `e` for every name in `sinks` (due at `now`). With no sinks nothing
    // is stored and the result is `added`.
    add_result add(const event& e, const std::vector<std::string>& sinks, sys_ms now);

    const outbox_entry* find(std::string_view id) const;
    // The entry for `sink` with the earliest next_at: (next_at, id).
    std::optional<std::pair<sys_ms, std::string>> earliest(const std::string& sink) const;
    // Records a failed attempt's new state for (id, sink). False: not durable (or unknown).
    bool reschedule(const std::string& id, const std::string& sink, delivery_state st);
    // (id, sink) is done: delivered, abandoned or disabled. False: not durable (or unknown).
    bool finish(const std::string& id, const std::string& sink);
    // Drops `sink` from every entry (an endpoint disabled or no longer configured);
    // returns how many (event, sink) pairs were dropped.
    std::size_t drop_sink(const std::string& sink);
    // (id, sink) of every pending pair whose event was added at or before `cutoff`.
    std::vector<std::pair<std::string, std::string>> older_than(sys_ms cutoff) const;
    // Every sink name some entry waits for.
    std::vector<std::string> sink_names() const;

    std::size_t depth() const { return entries_.size(); }  // undelivered events
    std::size_t max_entries() const { return max_; }
    // added_at of the oldest undelivered event; nullopt when empty.
    std::optional<sys_ms> oldest_added() const;
    const load_report& loaded() const { return report_; }
    const std::filesystem::path& dir() const { return dir_; }

  private:
    outbox(std::filesystem::path dir, std::size_t max) : dir_(std::move(dir)), max_(max) {}
    void load();
    bool persist(const outbox_entry& e);
    bool erase_file(const std::string& id);
    void index(const outbox_entry& e);
    void unindex(const outbox_entry& e);

    std::filesystem::path dir_;
    std::size_t max_;
    std::map<std::string, outbox_entry, std::less<>> entries_;
    std::map<std::string, std::set<std::pair<sys_ms, std::string>>> due_;  // sink -> (next_at, id)
    std::multiset<sys_ms> added_;
    load_report report_;
};

}  // namespace keyrot::notify
