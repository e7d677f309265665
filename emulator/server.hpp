// The emulator's network side: a Beast HTTP/1.1 server (HTTPS when a
// certificate is given) on one io_context thread. It parses requests, hands
// them to emulator::handle() and writes the replies; it knows no Apigee rule.
#pragma once

#include <cstdint>
#include <string>

#include "emulator.hpp"

namespace keyrot::emulator {

struct server_options {
    std::string bind = "127.0.0.1";
    std::uint16_t port = 0;
    std::string port_file;
    std::string cert_file;
    std::string key_file;
};

// Listens, prints "listening on ADDR:PORT", serves until SIGINT/SIGTERM.
// Throws on start-up failures (bind, certificate).
void run_server(emulator& emu, const server_options& opts);

}  // namespace keyrot::emulator
