// keyrotd: parse the command line, hand over to app.cpp, map failures to exit codes.
#include "app.hpp"

int main(int argc, char** argv) { return keyrot::daemon::main_cli(argc, argv); }
