// Reading config and policy files: size and encoding checks, YAML aliases
// and tabs refused, documents parsed, policy directories walked.
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>

#include "common/text.hpp"
#include "deliver/config.hpp"
#include "policy/config.hpp"
#include "policy/reader.hpp"

namespace keyrot::policy::detail {

bool read_file(const fs::path& path, std::string& text, std::vector<diagnostic>& out) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        out.push_back(
            {diagnostic::severity::error, path.string(), 0, 0, "", "cannot read: is a directory"});
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int err = errno;
        out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                       std::string("cannot read: ") + std::strerror(err ? err : ENOENT)});
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        out.push_back({diagnostic::severity::error, path.string(), 0, 0, "", "cannot read"});
        return false;
    }
    text = ss.str();
    return true;
}

// Finds the first alias (`*name`) in a YAML stream. Config files have no use
// for anchors and aliases, and aliases are how a small file expands into an
// enormous tree ("billion laughs"): they are refused before loading.
class alias_finder : public YAML::EventHandler {
  public:
    std::optional<YAML::Mark> alias;
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
        if (!alias) alias = mark;
    }
    // Also the first scalar (value or key) that is not UTF-8: YAML requires
    // it, yaml-cpp does not check (raw bytes, or an escape such as "\uD800"),
    // and such text cannot go into an audit record or metric label.
    std::optional<YAML::Mark> not_utf8;
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string& value) override {
        if (!not_utf8 && !valid_utf8(value)) not_utf8 = mark;
    }
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

constexpr std::size_t k_max_file_bytes = 1 << 20;

// The first tab in a line's indentation, outside JSON (which may indent with
// tabs): YAML forbids tabs there, and yaml-cpp's own message does not say so.
std::optional<pos> tab_in_indentation(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && (text[first] == '{' || text[first] == '[')) return {};
    int line = 1;
    bool indent = true;
    int column = 1;
    for (char ch : text) {
        if (ch == '\n') {
            ++line;
            column = 1;
            indent = true;
            continue;
        }
        if (indent && ch == '\t') return pos{line, column};
        if (ch != ' ') indent = false;
        ++column;
    }
    return {};
}

// yaml-cpp's message, with a hint for the traps people fall into.
std::string yaml_error_message(const std::string& text, const YAML::Mark& m,
                               const std::string& msg) {
    std::string out = "YAML syntax error: " + msg;
    if (msg.find("anchor") != std::string::npos && m.pos >= 0 &&
        static_cast<std::size_t>(m.pos) < text.size()) {
        // An unquoted glob such as *@example.com reads as an alias.
        std::size_t at = static_cast<std::size_t>(m.pos);
        const auto star = text.find('*', at);
        const auto eol = text.find('\n', at);
        if (star != std::string::npos && (eol == std::string::npos || star < eol)) at = star;
        std::size_t end = at;
        while (end < text.size() && text[end] != '\n' && text[end] != ',' && text[end] != ']' &&
               text[end] != '}' && text[end] != ' ' && text[end] != '\r')
            ++end;
        const std::string word = text.substr(at, std::min<std::size_t>(end - at, 60));
        if (!word.empty() && word[0] == '*')
            out = "YAML syntax error: " + word +
                  " reads as a YAML alias because it starts with *; quote it: \"" + word + "\"";
    }
    return out;
}

std::optional<std::vector<YAML::Node>> parse_all(const fs::path& path, const std::string& text,
                                                 std::vector<diagnostic>& out) {
    try {
        if (text.size() > k_max_file_bytes) {
            out.push_back(
                {diagnostic::severity::error, path.string(), 0, 0, "", "file is larger than 1 MB"});
            return std::nullopt;
        }
        if (text.find('\0') != std::string::npos) {
            out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                           "file contains NUL bytes: not a YAML or JSON text"});
            return std::nullopt;
        }
        if (const auto tab = tab_in_indentation(text)) {
            out.push_back({diagnostic::severity::error, path.string(), tab->line, tab->column, "",
                           "tab character in indentation: YAML does not allow tabs there; "
                           "indent with spaces"});
            return std::nullopt;
        }
        {
            std::istringstream in(text);
            YAML::Parser parser(in);
            alias_finder finder;
            // Bounded: yaml-cpp has been seen to report documents forever on odd input.
            int documents = 0;
            while (!finder.alias && !finder.not_utf8 && parser.HandleNextDocument(finder)) {
                if (++documents > 1000) {
                    out.push_back({diagnostic::severity::error, path.string(), 0, 0, "",
                                   "more than 1000 YAML documents in one file"});
                    return std::nullopt;
                }
            }
            if (finder.alias) {
                const pos p = pos_of(*finder.alias);
                out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                               "YAML aliases (*name) are not supported in keyrotd files"});
                return std::nullopt;
            }
            if (finder.not_utf8) {
                const pos p = pos_of(*finder.not_utf8);
                out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                               "text that is not valid UTF-8 (YAML and JSON files must be UTF-8)"});
                return std::nullopt;
            }
        }
        return YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
        const pos p = pos_of(e.mark);
        out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                       yaml_error_message(text, e.mark, e.msg)});
    } catch (const YAML::Exception& e) {
        const pos p = pos_of(e.mark);
        out.push_back({diagnostic::severity::error, path.string(), p.line, p.column, "",
                       "cannot parse: " + e.msg});
    }
    return std::nullopt;
}

void load_policy_file(const fs::path& path, std::vector<policy>& out, std::vector<pos>& name_at,
                      std::vector<diagnostic>& diags) {
    std::string text;
    if (!read_file(path, text, diags)) return;
    auto docs = parse_all(path, text, diags);
    if (!docs) return;
    reader r(path.string(), diags);
    auto one = [&](const YAML::Node& n) {
        pos at;
        if (auto p = read_policy(r, n, at)) {
            out.push_back(std::move(*p));
            name_at.push_back(at);
        }
    };
    for (const auto& doc : *docs) {
        if (doc.IsNull()) continue;  // an empty document between "---"
        if (doc.IsSequence()) {
            for (std::size_t i = 0; i < doc.size(); ++i) one(doc[i]);
        } else {
            one(doc);
        }
    }
}

bool policy_extension(const fs::path& p) {
    const std::string ext = ascii_lower(p.extension().string());
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// In a policy directory, files that are not policies by their name: JSON
// Schemas (`*.schema.json`, kept beside the policies for editors) and a keyrotd
// config (`keyrotd*.yaml|yml|json`, as in /etc/keyrotd/ or the repo's policies/).
bool not_a_policy(const fs::path& p) {
    const std::string name = ascii_lower(p.filename().string());
    return name.ends_with(".schema.json") || name.starts_with("keyrotd");
}

policies_result load_policies_impl(const fs::path& path, std::string_view field,
                                   std::optional<pos> field_at, const std::string& cfg_file) {
    policies_result res;
    auto where = [&](diagnostic d) {
        if (field_at) {  // report against the config line that points here
            d.file = cfg_file;
            d.line = field_at->line;
            d.column = field_at->column;
            d.field = std::string(field);
        }
        res.diagnostics.push_back(std::move(d));
    };
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        where({diagnostic::severity::error, path.string(), 0, 0, "",
               "cannot read " + quote(path.string()) + ": " +
                   (ec ? ec.message() : std::string("No such file or directory"))});
        return res;
    }
    std::vector<fs::path> files;
    if (fs::is_directory(st)) {
        fs::directory_iterator it(path, ec), end;
        if (ec) {
            where({diagnostic::severity::error, path.string(), 0, 0, "",
                   "cannot read directory " + quote(path.string()) + ": " + ec.message()});
            return res;
        }
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            const fs::path& f = it->path();
            // Dot-files are skipped: Kubernetes ConfigMap mounts hold "..data" and
            // timestamped dot-directories next to the real files.
            if (f.filename().string().starts_with(".") || !policy_extension(f) || not_a_policy(f))
                continue;
            std::error_code ec2;
            if (fs::is_regular_file(f, ec2)) files.push_back(f);
        }
        if (ec) {
            where({diagnostic::severity::error, path.string(), 0, 0, "",
                   "cannot list directory " + quote(path.string()) + ": " + ec.message()});
            return res;
        }
        std::sort(files.begin(), files.end());
    } else {
        files.push_back(path);
    }

    std::vector<pos> name_at;
    for (const auto& f : files) load_policy_file(f, res.policies, name_at, res.diagnostics);

    // Duplicate names: report the later one, naming where the first lives.
    std::map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < res.policies.size(); ++i) {
        const policy& p = res.policies[i];
        if (p.name.empty()) continue;
        const auto [it, inserted] = seen.emplace(p.name, i);
        if (inserted) continue;
        const policy& first = res.policies[it->second];
        const pos fp = name_at[it->second];
        res.diagnostics.push_back(
            {diagnostic::severity::error, p.source, name_at[i].line, name_at[i].column, "name",
             "duplicate policy name " + quote(p.name) + " (first defined at " + first.source + ":" +
                 std::to_string(fp.line) + ":" + std::to_string(fp.column) + ")"});
    }
    if (res.policies.empty() && !has_errors(res.diagnostics)) {
        where({diagnostic::severity::error, path.string(), 0, 0, "",
               fs::is_directory(st) ? "no policies found in " + quote(path.string()) +
                                          " (looked for *.yaml, *.yml, *.json)"
                                    : "no policies found in " + quote(path.string())});
    }
    return res;
}

// ---------------------------------------------------------------------------
// Config

}  // namespace keyrot::policy::detail
