// driftx field standard|projected: one field evaluation on .npy inputs, for checks from Python.
#include <iostream>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/npy.h"
#include "driftx/parse.h"
#include "driftx/standard_field.h"

namespace driftx::cli {

namespace {

struct StandardArgs {
  std::string gen, pos, neg, out_target, report, temps = "0.02,0.05,0.2", matmul_dtype = "float32";
  double neg_weight = 1.0;
  bool neg_weight_set = false;
  double floor = 1e-6;
};

void run_standard(const StandardArgs& a) {
  auto G = require_matrix(read_npy(a.gen), "--gen " + a.gen);
  auto P = require_matrix(read_npy(a.pos), "--pos " + a.pos);
  DRIFTX_CHECK(P.size(1) == G.size(1), "--pos {} has {} columns but --gen {} has {}: both must be N x D with the same D",
               a.pos, P.size(1), a.gen, G.size(1));
  torch::Tensor N;
  if (!a.neg.empty()) {
    N = require_matrix(read_npy(a.neg), "--neg " + a.neg);
    DRIFTX_CHECK(N.size(1) == G.size(1), "--neg {} has {} columns but --gen {} has {}", a.neg, N.size(1), a.gen, G.size(1));
    DRIFTX_CHECK(a.neg_weight_set, "--neg needs --neg-weight W (the weight of each extra negative)");
  }
  DRIFTX_CHECK(std::isfinite(a.neg_weight) && a.neg_weight >= 0, "--neg-weight must be a finite number >= 0");
  StandardFieldConfig cfg;
  cfg.temperatures = parse_temperatures(a.temps);
  cfg.affinity_floor = a.floor;
  cfg.products = parse_product_precision(a.matmul_dtype);
  auto r = StandardField(cfg).compute({G, P, N, torch::tensor(a.neg_weight)});
  write_npy(a.out_target, r.goal);
  nlohmann::json report = {
      {"field", "standard"},
      {"scale", r.coord_scale},
      {"mean_distance", r.scale},
      {"loss", r.loss.item<double>()},
      {"drift_rms_per_temperature", r.drift_rms},
      {"config",
       {{"gen", a.gen}, {"pos", a.pos}, {"neg", a.neg}, {"neg_weight", a.neg_weight},
        {"temperatures", cfg.temperatures}, {"affinity_floor", cfg.affinity_floor},
        {"self_exclusion", cfg.self_exclusion}, {"matmul_dtype", to_string(cfg.products)}, {"N", G.size(0)}, {"P", P.size(0)},
        {"U", N.defined() ? N.size(0) : 0}, {"D", G.size(1)}}}};
  if (!a.report.empty()) write_json(a.report, report);
  std::cout << fmt::format("standard field: N={} P={} U={} D={}  scale c={:.6g}  loss={:.6g}  -> {}\n", G.size(0),
                           P.size(0), N.defined() ? N.size(0) : 0, G.size(1), r.coord_scale, r.loss.item<double>(),
                           a.out_target);
}

}  // namespace

void add_projected_field_command(CLI::App& field);

void add_field_command(CLI::App& app) {
  auto* field = app.add_subcommand("field", "Evaluate a drifting field on .npy feature matrices");
  field->require_subcommand(1);

  static StandardArgs s;
  auto* std_cmd = field->add_subcommand(
      "standard", "Exact standard drifting field (Deng et al. 2026, Alg. 2); writes the goal in scaled coordinates");
  std_cmd->add_option("--gen", s.gen, "Generated features G.npy, N x D (float32/float64)")->required();
  std_cmd->add_option("--pos", s.pos, "Positive (real) features P.npy, P x D")->required();
  std_cmd->add_option("--neg", s.neg, "Extra negatives N.npy, U x D (e.g. unconditional real samples for CFG)");
  std_cmd->add_option("--neg-weight", s.neg_weight, "Weight w of each extra negative (required with --neg)")
      ->each([](const std::string&) { s.neg_weight_set = true; });
  std_cmd->add_option("--temps", s.temps, "Comma-separated temperatures")->capture_default_str();
  std_cmd->add_option("--matmul-dtype", s.matmul_dtype, "Products coef @ targets in float32 or bf16 (distances stay float32)")
      ->capture_default_str();
  std_cmd->add_option("--affinity-floor", s.floor, "Floor inside the affinity square root (0 = none)")->capture_default_str();
  std_cmd->add_option("--out-target", s.out_target, "Output: goal X/c + sum_tau F_tau, N x D (.npy)")->required();
  std_cmd->add_option("--report", s.report, "Output: JSON report with scale (c), loss and the configuration");
  std_cmd->callback([] { run_standard(s); });

  add_projected_field_command(*field);
}

}  // namespace driftx::cli
