#include "command_line.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "app.hpp"
#include "common/duration.hpp"

namespace keyrot::daemon {
namespace {

int usage_error(const std::string& why) {
    std::cerr << "keyrotd: " << why << "\n" << usage_text;
    return k_exit_usage;
}

// Every option keyrotd knows, defined on every command, so that an option a
// command does not take is named as such rather than as an unknown argument.
struct command_flags {
    bool json = false;
    bool dry_run = false;
    bool revoke_now = false;
    std::string app;
    std::string within;
};

void define_options(CLI::App& sub, command_flags& f) {
    sub.add_flag("--json", f.json)->disable_flag_override();
    sub.add_flag("--dry-run", f.dry_run)->disable_flag_override();
    sub.add_flag("--revoke-now", f.revoke_now)->disable_flag_override();
    sub.add_option("--app", f.app);
    sub.add_option("--within", f.within);
}

}  // namespace

int parse_command_line(int argc, char** argv, cli& c) {
    CLI::App app("keyrotd", "keyrotd");
    app.set_help_flag();  // usage_text, not CLI11's generated help
    // An option given twice: the last one counts, as before CLI11.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    bool help = false;
    bool version = false;
    app.add_flag("-h,--help", help)->disable_flag_override();
    app.add_flag("--version", version)->disable_flag_override();
    app.add_option("-c,--config", c.config);
    app.require_subcommand(0, 1);
    app.add_subcommand("help")->set_help_flag();

    command_flags f;
    for (const auto& [name, takes] : command_options()) {
        CLI::App* sub = app.add_subcommand(name);
        sub->set_help_flag();
        sub->fallthrough();  // -c and -h after the command belong to keyrotd itself
        define_options(*sub, f);
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ExtrasError&) {
        // The first word that is not an option names the command.
        const auto rest = app.remaining();
        if (!rest.empty() && !rest.front().starts_with("-") && app.get_subcommands().empty())
            return usage_error("unknown command '" + rest.front() + "'");
        std::string words;
        for (const auto& w : rest) words += (words.empty() ? "'" : " '") + w + "'";
        return usage_error("unknown argument " + words);
    } catch (const CLI::ArgumentMismatch& e) {
        // CLI11 says "json was given a disallowed flag override" for --json=1.
        const std::string m = e.what();
        if (m.find("flag override") != std::string::npos)
            return usage_error("--" + m.substr(0, m.find(' ')) + " takes no value");
        return usage_error(m);
    } catch (const CLI::ParseError& e) {
        return usage_error(e.what());
    }

    if (help) {
        c.command = "help";
        return 0;
    }
    if (version) {
        c.command = "version";
        return 0;
    }
    const auto chosen = app.get_subcommands();
    if (chosen.empty()) return usage_error("no command");
    c.command = chosen.front()->get_name();
    if (c.command == "help") return 0;
    if (app.count("--config")) c.given.insert("--config");

    const CLI::App& sub = *chosen.front();
    for (const char* o : {"--json", "--dry-run", "--revoke-now", "--app", "--within"})
        if (sub.count(o)) c.given.insert(o);
    const auto& takes = command_options().at(c.command);
    for (const auto& o : c.given) {
        if (takes.count(o)) continue;
        std::string list;
        for (const auto& t : takes) list += " " + t;
        std::cerr << "keyrotd: " << c.command << " does not take " << o << " (it takes" << list
                  << "; see keyrotd --help)\n";
        return k_exit_usage;
    }
    c.json = f.json;
    c.dry_run = f.dry_run;
    c.revoke_now = f.revoke_now;
    c.app = f.app;
    if (c.given.count("--within")) {
        c.within = parse_duration(f.within);
        if (!c.within || *c.within <= milliseconds(0))
            return usage_error("--within needs a positive duration such as 7d, 12h or P30D, not '" +
                               f.within + "'");
    }
    return 0;
}

}  // namespace keyrot::daemon
