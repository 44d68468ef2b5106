#include "commands.h"
namespace driftx::cli {
void add_field_command(CLI::App& app) {}
}
