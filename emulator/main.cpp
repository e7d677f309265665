// apigee-emulator: the Apigee management API on loopback, for tests and demos.
// See docs/emulator.md for the CLI, the seed format and the /__emulator/ hooks.
#include <malloc.h>

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
    try {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
                return argv[++i];
            };
            if (a == "--port") {
                long p = std::stol(value());
                if (p < 0 || p > 65535) throw std::invalid_argument("--port out of range");
                opts.port = static_cast<std::uint16_t>(p);
            } else if (a == "--port-file") {
                opts.port_file = value();
            } else if (a == "--bind") {
                opts.bind = value();
            } else if (a == "--seed") {
                seed_file = value();
            } else if (a == "--token") {
                token = value();
            } else if (a == "--cert") {
                opts.cert_file = value();
            } else if (a == "--key") {
                opts.key_file = value();
            } else if (a == "--latency-ms") {
                latency = std::stol(value());
                if (latency < 0) throw std::invalid_argument("--latency-ms must be >= 0");
            } else if (a == "--service-account") {
                service_accounts.push_back(value());
            } else if (a == "--token-ttl") {
                token_ttl = std::stol(value());
                ttl_given = true;
                if (token_ttl < 1 || token_ttl > 86400)
                    throw std::invalid_argument("--token-ttl must be 1..86400 seconds");
            } else if (a == "--basic") {
                basic = value();
                if (basic.find(':') == std::string::npos)
                    throw std::invalid_argument("--basic needs USER:PASSWORD");
            } else if (a == "--strict") {
                profile.all(true);
            } else if (a == "--reading") {
                const std::string r = value();
                if (!profile.set(r)) throw std::invalid_argument("unknown reading " + r);
            } else if (a == "--list-latency-per-app-us") {
                list_latency_us = std::stol(value());
                if (list_latency_us < 0)
                    throw std::invalid_argument("--list-latency-per-app-us must be >= 0");
            } else if (a == "--flavor") {
                const std::string f = value();
                if (f != "x" && f != "edge") throw std::invalid_argument("--flavor is x or edge");
                fl = f == "edge" ? flavor::edge : flavor::x;
            } else if (a == "--private-cloud") {
                private_cloud = true;
            } else if (a == "--edge-user") {
                edge_user = value();
            } else if (a == "--edge-password") {
                edge_password = value();
            } else if (a == "--mfa-seed") {
                mfa_seed = value();
            } else if (a == "--passcode") {
                passcodes.push_back(value());
                if (passcodes.back().empty()) throw std::invalid_argument("empty --passcode");
            } else if (a == "--refresh-ttl") {
                refresh_ttl = std::stol(value());
                if (refresh_ttl < 1 || refresh_ttl > 30 * 86400)
                    throw std::invalid_argument("--refresh-ttl must be 1..2592000 seconds");
            } else if (a == "--login-limit") {
                login_limit = std::stol(value());
                if (login_limit < 0 || login_limit > 1000000)
                    throw std::invalid_argument("--login-limit must be 0..1000000");
            } else if (a == "--help" || a == "-h") {
                std::cout << k_usage;
                return 0;
            } else {
                throw std::invalid_argument("unknown argument " + a);
            }
        }
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
