// driftx fidelity: the projected attraction against the exact full-data attraction on a real dataset.
#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)
#include <iostream>

#include "commands.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/fidelity.h"
#include "driftx/files.h"
#include "driftx/parse.h"

namespace driftx::cli {

namespace {

struct FidelityArgs {
  std::string dataset = "mnist", features = "pixels", budgets = "10,50,100,200,500", strategy = "random_per_class";
  std::string temps = "0.02,0.05,0.2", report, data_dir;
  double ridge = 1e-4, noise = 0.3;
  int64_t queries = 1024, batch = 256;
  bool unconditional = false, bf16 = false;
  uint64_t seed = 0;
};

void run(const FidelityArgs& a) {
  DRIFTX_CHECK(a.noise >= 0, "--noise must be >= 0");
  DRIFTX_CHECK(a.queries >= 2, "--queries must be >= 2");
  auto groups = parse_feature_groups(a.features);
  DRIFTX_CHECK(groups.size() == 1, "--features takes one group for the fidelity table (got {})", a.features);
  FidelityConfig cfg;
  cfg.landmarks_per_class = parse_int_list(a.budgets, "--landmarks-per-class");
  cfg.strategy = parse_landmark_strategy(a.strategy);
  cfg.temperatures = parse_temperatures(a.temps);
  cfg.ridge = a.ridge;
  cfg.conditional = !a.unconditional;
  cfg.batch = a.batch;
  cfg.bf16 = a.bf16;
  cfg.seed = a.seed;

  auto train = load_dataset(a.dataset, "train", a.data_dir);
  auto real = dataset_features(train.images, groups[0]);
  // Generated-like queries: held-out test images plus Gaussian pixel noise, passed through the same
  // feature map, with the test image's class as the requested class.
  auto test = load_dataset(a.dataset, "test", a.data_dir);
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(a.seed + 1);
  auto pick = torch::randperm(test.size(), gen).narrow(0, 0, std::min(a.queries, test.size()));
  auto noisy = test.images.index_select(0, pick) + a.noise * torch::randn(test.images.index_select(0, pick).sizes(), gen);
  auto queries = dataset_features(noisy, groups[0]);
  auto query_labels = test.labels.index_select(0, pick);

  std::cout << fmt::format("fidelity: {} {} ({} real, D={}), {} queries = test images + N(0, {}^2) noise, {}, "
                           "strategy {}, temperatures {}, threads {}\n\n",
                           a.dataset, groups[0], real.size(0), real.size(1), queries.size(0), a.noise,
                           cfg.conditional ? "class-conditional" : "unconditional", a.strategy, a.temps,
                           at::get_num_threads());
  std::cout << fmt::format("| landmarks/class | total | cosine (mean) | cosine per tau ({}) | rel. L2 | target MSE | clamped "
                           "| precompute s | exact ms/step | projected ms/step | speedup |{}\n"
                           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}\n",
                           fmt::join(cfg.temperatures, " / "),
                           cfg.bf16 ? " cosine, bf16 products | cosine per tau, bf16 | rel. L2, bf16 | bf16 ms/step |" : "",
                           cfg.bf16 ? "---:|---:|---:|---:|" : "");
  nlohmann::json rows = nlohmann::json::array();
  run_fidelity(real, train.labels, queries, query_labels, cfg, [&](const FidelityRow& r) {
    std::vector<std::string> per_tau;
    for (double c : r.cosine_per_temperature) per_tau.push_back(fmt::format("{:.4f}", c));
    std::cout << fmt::format("| {} | {} | {:.4f} | {} | {:.4f} | {:.3g} | {:.4f} | {:.1f} | {:.1f} | {:.2f} | {:.0f}x |",
                             r.per_class, r.total, r.cosine, fmt::join(per_tau, " / "), r.rel_l2, r.target_mse, r.clamped_fraction,
                             r.precompute_s, r.exact_ms, r.projected_ms, r.exact_ms / r.projected_ms);
    if (cfg.bf16) {
      std::vector<std::string> low_tau;
      for (double c : r.cosine_bf16_per_temperature) low_tau.push_back(fmt::format("{:.4f}", c));
      std::cout << fmt::format(" {:.4f} | {} | {:.4f} | {:.2f} |", r.cosine_bf16, fmt::join(low_tau, " / "), r.rel_l2_bf16,
                               r.projected_bf16_ms);
    }
    std::cout << std::endl;
    rows.push_back({{"landmarks_per_class", r.per_class}, {"total_landmarks", r.total}, {"cosine", r.cosine},
                    {"rel_l2", r.rel_l2}, {"target_mse", r.target_mse}, {"clamped_fraction", r.clamped_fraction},
                    {"precompute_s", r.precompute_s}, {"exact_ms_per_step", r.exact_ms},
                    {"projected_ms_per_step", r.projected_ms}, {"speedup", r.exact_ms / r.projected_ms},
                    {"cosine_per_temperature", r.cosine_per_temperature},
                    {"rel_l2_per_temperature", r.rel_l2_per_temperature}, {"condition_number", r.condition_number},
                    {"scale", r.scale}});
    if (cfg.bf16)
      rows.back().update({{"cosine_bf16", r.cosine_bf16}, {"rel_l2_bf16", r.rel_l2_bf16},
                          {"cosine_bf16_per_temperature", r.cosine_bf16_per_temperature},
                          {"projected_bf16_ms_per_step", r.projected_bf16_ms}});
  });
  if (!a.report.empty())
    write_json(a.report, {{"rows", rows},
                          {"config",
                           {{"dataset", a.dataset}, {"features", groups[0]}, {"landmarks_per_class", cfg.landmarks_per_class},
                            {"landmark_strategy", a.strategy}, {"temperatures", cfg.temperatures}, {"ridge", cfg.ridge},
                            {"conditional", cfg.conditional}, {"queries", queries.size(0)}, {"noise", a.noise},
                            {"batch", cfg.batch}, {"bf16", cfg.bf16}, {"seed", a.seed}, {"threads", at::get_num_threads()}}}});
}

}  // namespace

void add_fidelity_command(CLI::App& app) {
  static FidelityArgs a;
  auto* cmd = app.add_subcommand("fidelity", "Projected vs exact full-data attraction on a real dataset (SPEC §5 table)");
  cmd->add_option("--dataset", a.dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", a.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  cmd->add_option("--features", a.features, "Feature group: pixels, pool2, pool4, ...")->capture_default_str();
  cmd->add_option("--landmarks-per-class", a.budgets, "Comma-separated landmark budgets per class")->capture_default_str();
  cmd->add_option("--landmark-strategy", a.strategy, "Landmark selection strategy")->capture_default_str();
  cmd->add_option("--temps", a.temps, "Comma-separated temperatures")->capture_default_str();
  cmd->add_option("--ridge", a.ridge, "Nystrom ridge")->capture_default_str();
  cmd->add_option("--queries", a.queries, "Number of query samples")->capture_default_str();
  cmd->add_option("--noise", a.noise, "Std of the Gaussian pixel noise added to the query images")->capture_default_str();
  cmd->add_option("--batch", a.batch, "Queries per timed step")->capture_default_str();
  cmd->add_flag("--bf16", a.bf16,
                "Also measure the attraction with bf16 products (cosine to the exact attraction and time per step)");
  cmd->add_flag("--unconditional", a.unconditional, "One summary over all classes instead of per-class summaries");
  cmd->add_option("--seed", a.seed, "Seed for landmarks and queries")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON with the same rows and the configuration");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::cli
