// driftx launch: N local ranks of a driftx command (fork/exec of this binary with torchrun's
// variables), output prefixed per rank, all stopped when one fails.
#include "commands.h"
#include "driftx/distributed.h"
#include "driftx/error.h"

namespace driftx::cli {

void add_launch_command(CLI::App& app) {
  static LaunchConfig config;
  static std::vector<std::string> command;
  auto* cmd = app.add_subcommand("launch", "Run N local ranks of a driftx command (data-parallel training): "
                                           "driftx launch --nproc 2 -- train --steps 100 ...");
  cmd->add_option("--nproc", config.nproc, "Ranks (processes) on this machine; each uses cores / N threads")
      ->capture_default_str();
  cmd->add_option("--master-addr", config.master_addr, "Rendezvous address (rank 0 hosts a TCPStore)")->capture_default_str();
  cmd->add_option("--master-port", config.master_port, "Rendezvous port (0: a free port)")->capture_default_str();
  cmd->add_option("--grace", config.grace_s, "Seconds between SIGTERM and SIGKILL when stopping ranks after a failure")
      ->capture_default_str();
  cmd->add_option("command", command, "The driftx command each rank runs, after --")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([] {
    std::vector<std::string> args{current_executable()};
    args.insert(args.end(), command.begin(), command.end());
    launch_local(config, args);
  });
}

}  // namespace driftx::cli
