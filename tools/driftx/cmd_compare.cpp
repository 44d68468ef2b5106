// driftx compare: the equal-wall-clock comparison of the training methods (issue: evaluation).
#include <iostream>

#include "commands.h"
#include "driftx/compare.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/parse.h"

namespace driftx::cli {

namespace {

struct CompareArgs {
  CompareConfig config;
  std::string methods = "standard,driftxpress", budget = "20m", every = "2m", search = "0", base_config;
  std::vector<std::string> overrides;  // METHOD:JSON_FILE
};

}  // namespace

void add_compare_command(CLI::App& app) {
  static CompareArgs a;
  auto& c = a.config;
  auto* cmd = app.add_subcommand("compare", "Equal-wall-clock comparison of training methods: FID on the same time "
                                            "schedule, report.md, fid_vs_time.png, side-by-side samples");
  cmd->add_option("--dataset", c.dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", c.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  cmd->add_option("--methods", a.methods, "Comma-separated methods")->capture_default_str();
  cmd->add_option("--time-budget", a.budget, "Training wall-clock per method (precompute included)")->capture_default_str();
  cmd->add_option("--eval-every", a.every, "FID every this much training wall-clock")->capture_default_str();
  cmd->add_option("--n-eval", c.n_eval, "Generated and real images per FID evaluation")->capture_default_str();
  cmd->add_option("--search-budget", a.search, "Per-method hyperparameter search first, this long per candidate "
                                               "(0 = none; candidates in the README)")->capture_default_str();
  cmd->add_option("--train-config", a.base_config, "JSON training settings shared by every method (generator, "
                                                   "features, batch layout); default: driftx train's defaults");
  cmd->add_option("--method-config", a.overrides, "METHOD:FILE.json: settings of one method (e.g. a search's "
                                                  "winner); repeatable");
  cmd->add_option("--seed", c.seed, "Seed of every run and evaluation")->capture_default_str();
  cmd->add_option("--seeds", c.seeds, "Training seeds per method (--seed, --seed + 1, ...): the report shows mean "
                                      "+- std, the plot error bars")->capture_default_str();
  cmd->add_option("--search-min-accuracy", c.search_min_accuracy, "The search keeps the lowest FID among candidates "
                                                                  "with at least this class accuracy")
      ->capture_default_str();
  cmd->add_option("--ranks", c.ranks, "Data-parallel ranks per training run, as threads of this process sharing the "
                                      "cores (0: one per core, a divisor of the classes per step)")->capture_default_str();
  cmd->add_option("--out", c.out_dir, "Output directory")->capture_default_str();
  cmd->callback([] {
    CompareConfig cc = a.config;
    cc.methods = parse_name_list(a.methods, "--methods");
    cc.time_budget_s = parse_duration(a.budget);
    cc.eval_every_s = parse_duration(a.every);
    cc.search_budget_s = a.search == "0" ? 0 : parse_duration(a.search);
    if (!a.base_config.empty()) cc.base = TrainConfig::from_json(read_json(a.base_config));
    for (const auto& o : a.overrides) {
      const auto colon = o.find(':');
      DRIFTX_CHECK(colon != std::string::npos && colon > 0, "--method-config '{}': expected METHOD:FILE.json", o);
      cc.overrides[o.substr(0, colon)] = read_json(o.substr(colon + 1));
    }
    run_comparison(cc);  // resolves --ranks 0; report.md records what ran
    std::cout << read_file(cc.out_dir + "/report.md") << "\nreport -> " << cc.out_dir << "/report.md\n";
  });
}

}  // namespace driftx::cli
