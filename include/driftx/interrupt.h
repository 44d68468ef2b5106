// Ctrl-C and SIGTERM, for every command. The CLI installs the handlers once. Outside a GracefulStop
// scope a signal stops the process at once: the temporary files of atomic writes in progress are
// removed, one line is printed and the exit status is 128 + signal (130 for SIGINT, 143 for SIGTERM).
// Inside a scope (the training loop, which saves a checkpoint before it stops) the first signal only
// sets stop_flag(); the caller finishes cleanly and throws Interrupted. A second signal stops at once.
#pragma once

#include <atomic>
#include <string>

#include "driftx/error.h"

namespace driftx {

void install_interrupt_handlers();

// Set by the first SIGINT/SIGTERM inside a GracefulStop scope.
const std::atomic<bool>& stop_flag();
int interrupt_signal();  // the signal that set stop_flag(), 0 if none

class GracefulStop {
 public:
  GracefulStop();
  ~GracefulStop();
  GracefulStop(const GracefulStop&) = delete;
  GracefulStop& operator=(const GracefulStop&) = delete;
};

// A stop after a signal: the CLI prints the message and exits with 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& message) : Error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};
std::string signal_name(int signal);  // "SIGINT", "SIGTERM", ...

// Temporary files an immediate stop removes (the atomic writer registers its own). Returns a slot for
// unregister_temp_file, or -1 when all slots are taken (the file is then left to remove_stale_temp_files).
int register_temp_file(const std::string& path);
void unregister_temp_file(int slot);

// Test hook for crash tests: with DRIFTX_CRASH_AT=<name>:<n> in the environment, the n-th call of
// crash_point with a name that starts with <name> kills the process with SIGKILL (no cleanup, as a
// power cut or kill -9 would). Points: "step" (after each training step, its log line and checkpoint)
// and "write:<file name>" (half-way through writing an atomic file's temporary).
void crash_point(const std::string& name);

}  // namespace driftx
