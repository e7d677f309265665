// keyrotd's entry point: app.cpp parses the command line (command_line.cpp),
// runs the command and maps failures to exit codes; main only stops an
// exception that should never get here.
#include <cstdio>

#include "app.hpp"

int main(int argc, char** argv) {
    try {
        return keyrot::daemon::main_cli(argc, argv);
    } catch (...) {
        // main_cli handles the failures it expects; an exception that still
        // gets here is a bug. Its what() may quote input (a token, a response
        // body), so stderr only says that it happened; std::fputs has no stream
        // state to throw from.
        std::fputs("keyrotd: internal error: unexpected exception\n", stderr);
        return keyrot::daemon::k_exit_failed;
    }
}
