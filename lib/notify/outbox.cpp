#include "notify/outbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/durable.hpp"

namespace keyrot::notify {
namespace {

namespace fs = std::filesystem;

// The project's durable write (common/durable.hpp); `dir` is the file's directory.
bool write_durable(const fs::path& /*dir*/, const fs::path& final_path, const std::string& text,
                   std::string& why) {
    return keyrot::write_durable(final_path, text, &why);
}

std::string to_json(const outbox_entry& e) {
    nlohmann::ordered_json j;
    j["v"] = 1;
    j["id"] = e.id;
    j["type"] = e.type;
    j["addedAt"] = as_millis(e.added_at);
    j["body"] = e.body;
    nlohmann::ordered_json sinks = nlohmann::ordered_json::object();
    for (const auto& [name, st] : e.pending)
        sinks[name] = {{"attempts", st.attempts},
                       {"nextAt", as_millis(st.next_at)},
                       {"lastError", st.last_error}};
    j["sinks"] = std::move(sinks);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::optional<outbox_entry> from_json(const std::string& text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    try {
        outbox_entry e;
        e.id = j.at("id").get<std::string>();
        e.type = j.at("type").get<std::string>();
        e.added_at = as_sys_ms(j.at("addedAt").get<std::int64_t>());
        e.body = j.at("body").get<std::string>();
        for (const auto& [name, st] : j.at("sinks").items()) {
            delivery_state d;
            d.attempts = st.at("attempts").get<int>();
            d.next_at = as_sys_ms(st.at("nextAt").get<std::int64_t>());
            d.last_error = st.value("lastError", "");
            e.pending.emplace(name, std::move(d));
        }
        if (e.id.empty() || e.body.empty()) return std::nullopt;
        return e;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

}  // namespace

result<std::unique_ptr<outbox>> outbox::open(fs::path dir, std::size_t max_entries) {
    auto fail = [&](std::string m) {
        error e;
        e.what = error::kind::config;
        e.message = "outbox " + dir.string() + ": " + std::move(m);
        return e;
    };
    if (max_entries == 0) return fail("max entries must be at least 1");
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            return fail(std::string("cannot create: ") + std::strerror(errno));
    }
    if (!fs::is_directory(dir, ec)) return fail("not a directory");
    if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0)
        return fail(std::string("not writable: ") + std::strerror(errno));
    std::unique_ptr<outbox> box(new outbox(std::move(dir), max_entries));
    box->load();
    return box;
}

void outbox::load() {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& de : fs::directory_iterator(dir_, ec)) files.push_back(de.path());
    for (const auto& p : files) {
        const auto name = p.filename().string();
        if (name.ends_with(".tmp")) {
            fs::remove(p, ec);  // a write that never completed: add() did not return true
            ++report_.leftovers;
            continue;
        }
        if (!name.starts_with("evt_") || !name.ends_with(".json")) continue;
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        auto e = from_json(ss.str());
        if (!e || e->id + ".json" != name) {
            fs::rename(p, fs::path(p.string() + ".corrupt"), ec);
            ++report_.corrupt;
            continue;
        }
        if (e->pending.empty()) {  // finished but not yet removed
            fs::remove(p, ec);
            continue;
        }
        index(*e);
        entries_.emplace(e->id, std::move(*e));
        ++report_.loaded;
    }
    fsync_dir(dir_);
}

void outbox::index(const outbox_entry& e) {
    for (const auto& [sink, st] : e.pending) due_[sink].emplace(st.next_at, e.id);
    added_.insert(e.added_at);
}

void outbox::unindex(const outbox_entry& e) {
    for (const auto& [sink, st] : e.pending) {
        auto it = due_.find(sink);
        if (it == due_.end()) continue;
        it->second.erase({st.next_at, e.id});
        if (it->second.empty()) due_.erase(it);
    }
    if (auto it = added_.find(e.added_at); it != added_.end()) added_.erase(it);
}

bool outbox::persist(const outbox_entry& e) {
    std::string why;
    return write_durable(dir_, dir_ / (e.id + ".json"), to_json(e), why);
}

bool outbox::erase_file(const std::string& id) {
    std::error_code ec;
    fs::remove(dir_ / (id + ".json"), ec);
    return !ec && fsync_dir(dir_);
}

add_result outbox::add(const event& e, const std::vector<std::string>& sinks, sys_ms now) {
    add_result r;
    if (sinks.empty()) return r;
    if (entries_.count(e.id)) {
        r.status = add_status::duplicate;
        return r;
    }
    if (entries_.size() >= max_) {
        r.status = add_status::full;
        r.reason = "outbox full: " + std::to_string(entries_.size()) +
                   " undelivered events (outboxMax " + std::to_string(max_) + "), oldest added " +
                   format_duration(now - *oldest_added()) + " ago; event " + e.id + " (" +
                   std::string(to_string(e.f.type)) + ") not stored";
        return r;
    }
    outbox_entry entry;
    entry.id = e.id;
    entry.type = std::string(to_string(e.f.type));
    entry.added_at = now;
    entry.body = e.body;
    for (const auto& s : sinks) entry.pending[s] = delivery_state{0, now, ""};
    std::string why;
    if (!write_durable(dir_, dir_ / (entry.id + ".json"), to_json(entry), why)) {
        r.status = add_status::failed;
        r.reason = "event " + e.id + " not stored: " + why;
        return r;
    }
    index(entry);
    entries_.emplace(entry.id, std::move(entry));
    return r;
}

const outbox_entry* outbox::find(std::string_view id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
}

std::optional<std::pair<sys_ms, std::string>> outbox::earliest(const std::string& sink) const {
    auto it = due_.find(sink);
    if (it == due_.end() || it->second.empty()) return std::nullopt;
    return *it->second.begin();
}

bool outbox::reschedule(const std::string& id, const std::string& sink, delivery_state st) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    auto s = it->second.pending.find(sink);
    if (s == it->second.pending.end()) return false;
    due_[sink].erase({s->second.next_at, id});
    s->second = std::move(st);
    due_[sink].emplace(s->second.next_at, id);
    return persist(it->second);
}

bool outbox::finish(const std::string& id, const std::string& sink) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    auto s = it->second.pending.find(sink);
    if (s == it->second.pending.end()) return false;
    unindex(it->second);
    it->second.pending.erase(s);
    if (it->second.pending.empty()) {
        entries_.erase(it);
        return erase_file(id);
    }
    index(it->second);
    return persist(it->second);
}

std::size_t outbox::drop_sink(const std::string& sink) {
    auto it = due_.find(sink);
    if (it == due_.end()) return 0;
    std::vector<std::string> ids;
    for (const auto& [at, id] : it->second) ids.push_back(id);
    for (const auto& id : ids) (void)finish(id, sink);
    return ids.size();
}

std::vector<std::pair<std::string, std::string>> outbox::older_than(sys_ms cutoff) const {
    std::vector<std::pair<std::string, std::string>> out;
    if (added_.empty() || *added_.begin() > cutoff) return out;  // the common case: O(1)
    for (const auto& [id, e] : entries_)
        if (e.added_at <= cutoff)
            for (const auto& [sink, st] : e.pending) out.emplace_back(id, sink);
    return out;
}

std::vector<std::string> outbox::sink_names() const {
    std::vector<std::string> out;
    for (const auto& [name, set] : due_)
        if (!set.empty()) out.push_back(name);
    return out;
}

std::optional<sys_ms> outbox::oldest_added() const {
    if (added_.empty()) return std::nullopt;
    return *added_.begin();
}

}  // namespace keyrot::notify
