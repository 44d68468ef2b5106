// driftx lab: the exact, minibatch and projected fields on 2-D (and small-D) synthetic targets: field
// error, particle flows, fixed points and tiny generators against rank, over seeds (docs/lab.md).
#include <iostream>

#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)
#include <thread>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/lab.h"
#include "driftx/parse.h"
#include "driftx/train.h"

namespace driftx::cli {

namespace {

struct LabArgs {
  std::string targets = "eight_gaussians,checkerboard,two_moons,swiss_roll", ranks = "4,8,16,32,64,128";
  std::string strategies = "random,kmeans", minibatch = "4,8,16,32,64,128", temps, out = "runs/lab";
  LabConfig cfg;
  bool no_minibatch = false;
};

void run(LabArgs& a) {
  auto& cfg = a.cfg;
  cfg.targets = parse_name_list(a.targets, "--targets");
  cfg.ranks = parse_int_list(a.ranks, "--ranks");
  cfg.strategies = parse_name_list(a.strategies, "--strategies");
  cfg.minibatch_sizes = a.no_minibatch ? std::vector<int64_t>{} : parse_int_list(a.minibatch, "--minibatch");
  cfg.temperatures = a.temps.empty() ? default_temperatures("driftxpress") : parse_temperatures(a.temps);
  DRIFTX_CHECK(cfg.seeds >= 1 && cfg.seeds <= 100, "--seeds must be in [1, 100], got {}", cfg.seeds);
  DRIFTX_CHECK(cfg.flow_steps >= 1 && cfg.flow_steps <= 100000, "--flow-steps must be in [1, 100000], got {}", cfg.flow_steps);
  DRIFTX_CHECK(cfg.train.steps >= 0 && cfg.train.steps <= 1000000, "--train-steps must be in [0, 1e6], got {}", cfg.train.steps);
  DRIFTX_CHECK(cfg.n_data >= 2 && cfg.n_data <= 200000, "--n-data must be in [2, 200000], got {}", cfg.n_data);
  DRIFTX_CHECK(cfg.grid >= 2 && cfg.grid <= 512, "--grid must be in [2, 512], got {}", cfg.grid);
  // The lab's tensors are tiny: LibTorch's intra-op threads cost more than they give (measured on the busy
  // 2-core machine: 6 s with 1 thread, 84 s with 2 for the same small run), so the cores run (target, seed)
  // units side by side instead, one thread each. The report does not depend on the count.
  cfg.workers = common().threads > 0 ? common().threads : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  at::set_num_threads(1);
  std::cout << fmt::format("lab: targets {}, D = {}, temperatures {}, ranks {}, strategies {}, minibatch {}, {} seed(s), "
                           "{} worker(s) x 1 thread -> {}\n",
                           fmt::join(cfg.targets, ","), cfg.dim, fmt::join(cfg.temperatures, ","), fmt::join(cfg.ranks, ","),
                           fmt::join(cfg.strategies, ","), a.no_minibatch ? "none" : a.minibatch, cfg.seeds,
                           cfg.workers, a.out)
            << std::flush;
  auto report = run_lab(cfg, [](const std::string& line) { std::cout << line << std::endl; });
  write_lab_outputs(report, a.out);
  std::cout << "\n" << lab_report_markdown(report) << "\nwrote " << a.out
            << "/{report.json,report.md,config.json,quiver.png,trajectories.png,rank_curves.png,deviation_vs_step.png}"
            << std::endl;
}

}  // namespace

void add_lab_command(CLI::App& app) {
  static LabArgs a;
  auto& c = a.cfg;
  auto* cmd = app.add_subcommand("lab", "Exact vs minibatch vs projected fields on 2-D synthetic targets: field error, "
                                        "trajectories, fixed points and tiny generators against rank (docs/lab.md)");
  cmd->add_option("--targets", a.targets, "Comma-separated: eight_gaussians, checkerboard, two_moons, swiss_roll")
      ->capture_default_str();
  cmd->add_option("--dim", c.dim, "Dimension D (> 2: the 2-D target in a fixed random plane of R^D, plus noise 0.05)")
      ->capture_default_str();
  cmd->add_option("--ranks", a.ranks, "Landmark counts M of the projected field")->capture_default_str();
  cmd->add_option("--strategies", a.strategies,
                  "Landmark strategies: random, kmeans, kcenter, facility_location, density_weighted_kcenter")
      ->capture_default_str();
  cmd->add_option("--minibatch", a.minibatch, "Positives per step P of the minibatch field")->capture_default_str();
  cmd->add_flag("--no-minibatch", a.no_minibatch, "Leave out the minibatch field");
  cmd->add_option("--temps", a.temps, "Comma-separated temperatures (default: the project's, 0.02,0.05,0.2)");
  cmd->add_option("--ridge", c.ridge, "Nystrom ridge")->capture_default_str();
  cmd->add_option("--n-data", c.n_data, "Real samples the fields use")->capture_default_str();
  cmd->add_option("--n-eval", c.n_eval, "Fresh real samples distances are measured against")->capture_default_str();
  cmd->add_option("--grid", c.grid, "Grid queries per side (over the data's box + 10%)")->capture_default_str();
  cmd->add_option("--queries", c.queries, "Sample queries: fresh real samples + Gaussian noise")->capture_default_str();
  cmd->add_option("--query-noise", c.query_noise, "Std of that noise (target units)")->capture_default_str();
  cmd->add_option("--particles", c.particles, "Flow particles, from N(0, I) in the target's plane")->capture_default_str();
  cmd->add_option("--flow-steps", c.flow_steps, "Flow steps T")->capture_default_str();
  cmd->add_option("--eta", c.eta, "Flow step x <- x + eta V(x) (scaled coordinates)")->capture_default_str();
  cmd->add_flag("--flow-normalise", c.flow_normalise, "Drive the flow with the training's normalised drift");
  cmd->add_option("--record-every", c.record_every, "Steps between points of the deviation curve")->capture_default_str();
  cmd->add_option("--train-steps", c.train.steps, "Generator training steps per field")->capture_default_str();
  cmd->add_option("--train-batch", c.train.batch, "Generator batch")->capture_default_str();
  cmd->add_option("--train-lr", c.train.lr, "Generator learning rate (Adam)")->capture_default_str();
  cmd->add_flag("--no-train", c.skip_train, "Skip the generator experiment");
  cmd->add_option("--seeds", c.seeds, "Repeat everything over this many seeds (mean +- std)")->capture_default_str();
  cmd->add_option("--seed", c.seed, "First seed (seeds used: seed, seed + 1, ...)")->capture_default_str();
  cmd->add_option("--out", a.out, "Output directory")->capture_default_str();
  cmd->callback([] { run(a); });
}

}  // namespace driftx::cli
