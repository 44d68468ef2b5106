// driftx: one binary, one file per subcommand; each parses its flags and calls the library.
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) { return driftx::cli::run(argc, argv); }
