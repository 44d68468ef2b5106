#include "commands.h"
namespace driftx::cli {
void add_bench_command(CLI::App& app) {}
}
