#include "exec/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/durable.hpp"
#include "common/fingerprint.hpp"

namespace keyrot::exec {
namespace {

// Creates `dir` (0700) and writes `text` + newline to dir/name durably.
bool write_entry(const std::filesystem::path& dir, const std::filesystem::path& final_path,
                 const std::string& text) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
    return write_durable(final_path, text + "\n");
}

bool valid_name(const std::string& name) {
    if (name.empty()) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

}  // namespace

// ---- file_store ----

net::awaitable<result<void>> file_store::load() {
    entries_.clear();
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
        if (entry.path().extension() != ".json") continue;
        const auto name = entry.path().stem().string();
        if (!valid_name(name)) continue;
        std::ifstream in(entry.path());
        std::stringstream ss;
        ss << in.rdbuf();
        if (in) entries_[name] = ss.str();
    }
    co_return result<void>{};
}

net::awaitable<bool> file_store::put(std::string name, std::string value) {
    if (!valid_name(name) || !write_entry(dir_, dir_ / (name + ".json"), value)) co_return false;
    entries_[name] = std::move(value);
    co_return true;
}

net::awaitable<bool> file_store::erase(std::string name) {
    std::error_code ec;
    std::filesystem::remove(dir_ / (name + ".json"), ec);
    entries_.erase(name);
    co_return !ec && fsync_dir(dir_);
}

// ---- journal ----

std::string journal::name(const std::string& org, const std::string& developer,
                          const std::string& app) {
    // Names may hold any character: the entry name is a digest of them.
    return "generate-" + fingerprint(org + "\n" + developer + "\n" + app);
}

namespace {
// (Out of the coroutines: GCC 12 cannot compile brace-initialised JSON inside one.)
std::string to_text(const journal_entry& e) {
    nlohmann::json j = {{"organization", e.organization},
                        {"developer", e.developer},
                        {"app", e.app},
                        {"replaces", e.replaces},
                        {"known", e.known},
                        {"ts", as_millis(e.ts)},
                        {"expect", e.expect}};
    if (e.app_attributes) {
        nlohmann::json attrs = nlohmann::json::array();
        for (const auto& a : *e.app_attributes)
            attrs.push_back({{"name", a.name}, {"value", a.value}});
        j["appAttributes"] = std::move(attrs);
        j["callbackUrl"] = e.callback_url;
    }
    return j.dump();
}

std::string to_text(const intent& i) {
    const nlohmann::json j = {{"organization", i.organization},
                              {"developer", i.developer},
                              {"team", i.team},
                              {"app", i.app},
                              {"policy", i.policy},
                              {"action", to_string(i.action)},
                              {"key", i.key},
                              {"replaces", i.replaces},
                              {"detail", i.detail},
                              {"late", i.late},
                              {"ts", as_millis(i.ts)}};
    return j.dump();
}
}  // namespace

net::awaitable<bool> journal::write(const journal_entry& e) {
    const bool ok = co_await store_.put(name(e.organization, e.developer, e.app), to_text(e));
    co_return ok;
}

std::optional<journal_entry> journal::read(const std::string& org, const std::string& developer,
                                           const std::string& app) const {
    const auto it = store_.entries().find(name(org, developer, app));
    if (it == store_.entries().end()) return std::nullopt;
    const auto j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    journal_entry e;
    e.organization = j.value("organization", "");
    e.developer = j.value("developer", "");
    e.app = j.value("app", "");
    e.replaces = j.value("replaces", "");
    e.ts = as_sys_ms(j.value("ts", std::int64_t{0}));
    e.expect = j.value("expect", "");
    if (const auto attrs_it = j.find("appAttributes");
        attrs_it != j.end() && attrs_it->is_array()) {
        std::vector<attribute> attrs;
        for (const auto& a : *attrs_it)
            if (a.is_object()) attrs.push_back({a.value("name", ""), a.value("value", "")});
        e.app_attributes = std::move(attrs);
        e.callback_url = j.value("callbackUrl", "");
    }
    if (j.contains("known") && j["known"].is_array())
        for (const auto& k : j["known"])
            if (k.is_string()) e.known.push_back(k.get<std::string>());
    return e;
}

bool journal::exists(const std::string& org, const std::string& developer,
                     const std::string& app) const {
    return store_.entries().count(name(org, developer, app)) != 0;
}

net::awaitable<void> journal::remove(const std::string& org, const std::string& developer,
                                     const std::string& app) {
    co_await store_.erase(name(org, developer, app));
}

// ---- intents ----

std::string intent_log::name(const intent& i) {
    // (A team app's AppGroup joins the digest; a developer app's names are as before.)
    return "intent-" + fingerprint(i.organization + "\n" + i.developer + "\n" + i.app + "\n" +
                                   std::string(to_string(i.action)) + "\n" + i.key +
                                   (i.team.empty() ? "" : "\n\x01" + i.team));
}

net::awaitable<bool> intent_log::write(const intent& i) {
    const bool ok = co_await store_.put(name(i), to_text(i));
    co_return ok;
}

net::awaitable<void> intent_log::remove(const intent& i) { co_await store_.erase(name(i)); }

std::vector<intent> intent_log::load(const std::string& organization) const {
    std::vector<intent> out;
    for (const auto& [name, text] : store_.entries()) {
        if (name.rfind("intent-", 0) != 0) continue;
        const auto j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        intent i;
        i.organization = j.value("organization", "");
        if (i.organization != organization) continue;
        i.developer = j.value("developer", "");
        i.team = j.value("team", "");
        i.app = j.value("app", "");
        i.policy = j.value("policy", "");
        const auto action = parse_audit_action(j.value("action", ""));
        if (!action) continue;  // not an action this version audits
        i.action = *action;
        i.key = j.value("key", "");
        i.replaces = j.value("replaces", "");
        i.detail = j.value("detail", "");
        i.late = j.value("late", false);
        i.ts = as_sys_ms(j.value("ts", std::int64_t{0}));
        out.push_back(std::move(i));
    }
    return out;
}

}  // namespace keyrot::exec
