// The write-ahead journal that closes the crash window of a key created
// without keyrotd's marker: `method: generate` (Apigee makes the key) and
// `method: import` on Apigee Edge (keys/create takes no attributes). Between
// the call and writing the marker a crash would leave an unmarked key nobody
// recognises. Before the call we record the app's key fingerprints (and, for
// an import, the new key's own); after a restart a key not in that set,
// without a marker, issued after the entry was written (the expected one,
// when named), is the successor.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/duration.hpp"
#include "exec/observer.hpp"
#include "exec/state_store.hpp"

namespace keyrot::exec {

struct journal_entry {
    std::string organization;
    std::string developer;
    std::string app;
    std::string replaces;            // fingerprint of the old key
    std::vector<std::string> known;  // fingerprints before the call
    sys_ms ts{};
    std::string expect;  // an import: the new key's fingerprint ("" for generate)
    // A generate: the app's attributes and callback URL right before it (the
    // call may replace them), for recovery to put back.
    std::optional<std::vector<attribute>> app_attributes;
    std::string callback_url;
};

// Entries named "generate-<fingerprint of org, developer, app>" in a state_store.
class journal {
  public:
    explicit journal(state_store& store) : store_(store) {}

    // Durable (state_store::put) before it returns true.
    net::awaitable<bool> write(const journal_entry& e);
    // From the store's copy (state_store::entries).
    std::optional<journal_entry> read(const std::string& org, const std::string& developer,
                                      const std::string& app) const;
    net::awaitable<void> remove(const std::string& org, const std::string& developer,
                                const std::string& app);
    bool exists(const std::string& org, const std::string& developer, const std::string& app) const;

    static std::string name(const std::string& org, const std::string& developer,
                            const std::string& app);

  private:
    state_store& store_;
};

}  // namespace keyrot::exec

namespace keyrot::exec {

// Audit intents: before a write whose success becomes an audit record
// (created, completed, revoked, deleted), the record is written here first
// (fsynced). After the real record is in the audit log, the intent goes. A
// crash in between leaves the intent; the next pass compares it with what
// Apigee shows and writes the audit record if the action took effect, so
// every action is in the audit log exactly once.
struct intent {
    std::string organization, developer, app, policy;
    std::string team;                             // a team app: its AppGroup (developer is then "")
    audit_action action = audit_action::created;  // created | completed | revoked | deleted
    std::string key, replaces, detail;
    bool late = false;
    sys_ms ts{};
};

// Entries named "intent-<fingerprint of org, developer, app, action, key>".
class intent_log {
  public:
    explicit intent_log(state_store& store) : store_(store) {}
    net::awaitable<bool> write(const intent& i);
    net::awaitable<void> remove(const intent& i);
    // Every intent of an organisation, from the store's copy.
    std::vector<intent> load(const std::string& organization) const;

    static std::string name(const intent& i);

  private:
    state_store& store_;
};

}  // namespace keyrot::exec
