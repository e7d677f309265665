// apigee-emulator: the Apigee management API on loopback, for tests and demos.
// See docs/emulator.md for the CLI, the seed format and the /__emulator/ hooks.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "emulator.hpp"
#include "oauth.hpp"
#include "server.hpp"

namespace {

constexpr const char* k_usage =
    "usage: apigee-emulator [--port N] [--port-file FILE] [--bind ADDR] [--seed FILE]\n"
    "                       [--token TOKEN] [--cert FILE --key FILE] [--latency-ms N]\n"
    "                       [--service-account KEY.json]... [--token-ttl SECONDS]\n"
    "                       [--basic USER:PASSWORD] [--strict] [--reading NAME]...\n"
    "                       [--list-latency-per-app-us N]\n"
    "                       [--flavor x|edge] [--private-cloud] [--edge-user USER]\n"
    "                       [--edge-password PASSWORD] [--mfa-seed BASE32] [--passcode PC]...\n"
    "                       [--refresh-ttl SECONDS] [--login-limit N]\n"
    "  --strict          every pessimistic reading of Apigee's reference "
    "(docs/apigee-fidelity.md)\n"
    "  --reading NAME    one of them: create-scopes, update-wipes-attributes,\n"
    "                    developer-list-emails, page-100, put-generates, keystatus-whole-apps,\n"
    "                    create-expiry, refresh-single-use (the last two: Edge flavor)\n"
    "  --flavor edge     serve the Apigee Edge management API and POST /oauth/token\n"
    "                    (docs/emulator.md, \"Edge flavor\"); default x\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace keyrot::emulator;
    server_options opts;
    std::string seed_file, token, basic;
    std::vector<std::string> service_accounts;
    long latency = 0;
    long token_ttl = 3600;
    long list_latency_us = 0;
    readings profile;
    flavor fl = flavor::x;
    bool private_cloud = false, ttl_given = false;
    std::string edge_user, edge_password, mfa_seed;
    std::vector<std::string> passcodes;
    long refresh_ttl = 86400, login_limit = 30;
    // CLI11 (libcli11-dev) parses; the usage text above stays the help.
    CLI::App cli("apigee-emulator", "apigee-emulator");
    cli.set_help_flag();
    // An option given twice: the last one counts (the harness adds --port to its own).
    cli.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    bool help = false;
    long port = opts.port;
    std::string flavor_name = "x";
    std::vector<std::string> reading_names;
    bool strict = false;
    cli.add_flag("-h,--help", help);
    cli.add_option("--port", port)->check(CLI::Range(0L, 65535L));
    cli.add_option("--port-file", opts.port_file);
    cli.add_option("--bind", opts.bind);
    cli.add_option("--seed", seed_file);
    cli.add_option("--token", token);
    cli.add_option("--cert", opts.cert_file);
    cli.add_option("--key", opts.key_file);
    cli.add_option("--latency-ms", latency)->check(CLI::NonNegativeNumber);
    cli.add_option("--service-account", service_accounts)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    auto* ttl = cli.add_option("--token-ttl", token_ttl)->check(CLI::Range(1L, 86400L));
    cli.add_option("--basic", basic)
        ->check(
            [](const std::string& v) {
                return v.find(':') == std::string::npos ? std::string("--basic needs USER:PASSWORD")
                                                        : std::string();
            },
            "USER:PASSWORD");
    cli.add_flag("--strict", strict);
    cli.add_option("--reading", reading_names)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cli.add_option("--list-latency-per-app-us", list_latency_us)->check(CLI::NonNegativeNumber);
    cli.add_option("--flavor", flavor_name)->check(CLI::IsMember({"x", "edge"}));
    cli.add_flag("--private-cloud", private_cloud);
    cli.add_option("--edge-user", edge_user);
    cli.add_option("--edge-password", edge_password);
    cli.add_option("--mfa-seed", mfa_seed);
    cli.add_option("--passcode", passcodes)
        ->check(
            [](const std::string& v) { return v.empty() ? std::string("empty --passcode") : ""; },
            "PC")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cli.add_option("--refresh-ttl", refresh_ttl)->check(CLI::Range(1L, 30L * 86400));
    cli.add_option("--login-limit", login_limit)->check(CLI::Range(0L, 1000000L));
    try {
        try {
            cli.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            throw std::invalid_argument(e.what());
        }
        if (help) {
            std::cout << k_usage;
            return 0;
        }
        opts.port = static_cast<std::uint16_t>(port);
        ttl_given = ttl->count() > 0;
        if (strict) profile.all(true);
        for (const auto& r : reading_names)
            if (!profile.set(r)) throw std::invalid_argument("unknown reading " + r);
        fl = flavor_name == "edge" ? flavor::edge : flavor::x;
        if (opts.cert_file.empty() != opts.key_file.empty())
            throw std::invalid_argument("--cert and --key go together");
        if (edge_user.empty() != edge_password.empty())
            throw std::invalid_argument("--edge-user and --edge-password go together");
        const bool edge_opts =
            !edge_user.empty() || !mfa_seed.empty() || !passcodes.empty() || private_cloud;
        if (edge_opts && fl != flavor::edge)
            throw std::invalid_argument(
                "--edge-user, --mfa-seed, --passcode and --private-cloud need --flavor edge");
        if (!mfa_seed.empty() && edge_user.empty())
            throw std::invalid_argument("--mfa-seed needs --edge-user");
    } catch (const std::exception& e) {
        std::cerr << "apigee-emulator: " << e.what() << "\n" << k_usage;
        return 2;
    }

    try {
        emulator emu(token);
        emu.set_latency(latency);
        emu.profile() = profile;
        emu.set_list_latency_per_app_us(list_latency_us);
        emu.set_flavor(fl);
        emu.set_private_cloud(private_cloud);
        // Edge access tokens live 1799 s unless --token-ttl says otherwise.
        emu.auth().set_token_ttl(fl == flavor::edge && !ttl_given ? 1799 : token_ttl);
        emu.auth().set_edge_user(edge_user, edge_password);
        emu.auth().set_mfa_seed(mfa_seed);
        for (const auto& p : passcodes) emu.auth().add_passcode(p);
        emu.auth().set_refresh_ttl(refresh_ttl);
        emu.auth().set_login_limit(static_cast<int>(login_limit));
        emu.auth().set_basic(basic);
        for (const auto& f : service_accounts) emu.auth().add_service_account(f);
        if (!seed_file.empty()) {
            std::ifstream f(seed_file);
            if (!f) throw std::runtime_error("cannot read seed file " + seed_file);
            {
                auto seed = nlohmann::json::parse(f);
                emu.load_seed(seed);
            }
            malloc_trim(0);  // the parsed seed was big; give its memory back
        }
        run_server(emu, opts);
    } catch (const std::exception& e) {
        std::cerr << "apigee-emulator: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
