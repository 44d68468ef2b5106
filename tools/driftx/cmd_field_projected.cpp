#include "commands.h"
namespace driftx::cli {
void add_projected_field_command(CLI::App& field) {}
}
