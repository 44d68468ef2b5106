// driftx field projected: the DriftXpress field on .npy inputs.
#include <iostream>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/landmarks.h"
#include "driftx/npy.h"
#include "driftx/parse.h"
#include "driftx/projected_field.h"

namespace driftx::cli {

namespace {

struct ProjectedArgs {
  std::string gen, data, landmarks, labels, out_drift, out_target, report, temps = "0.02,0.05,0.2";
  std::string repulsion = "exact", strategy, matmul_dtype = "float32";
  double scale = 0, ridge = 1e-4;
  bool scale_given = false;  // then it must be positive and finite
  int64_t shard_classes = 1, per_class = 0, total = 0;
  uint64_t seed = 0;
};

void run_projected(const ProjectedArgs& a) {
  DRIFTX_CHECK(!a.scale_given || (a.scale > 0 && std::isfinite(a.scale)), "--scale must be a positive number, got {}",
               a.scale);
  const std::optional<double> scale = a.scale_given ? std::optional<double>(a.scale) : std::nullopt;
  auto G = require_matrix(read_npy(a.gen), "--gen " + a.gen);
  auto Y = require_matrix(read_npy(a.data), "--data " + a.data);
  DRIFTX_CHECK(Y.size(1) == G.size(1), "--data {} has {} columns but --gen {} has {}: both must have the same D", a.data,
               Y.size(1), a.gen, G.size(1));
  torch::Tensor labels;
  int64_t classes = 1;
  if (!a.labels.empty()) {
    labels = read_npy(a.labels);
    DRIFTX_CHECK(labels.scalar_type() == torch::kLong && labels.dim() == 1 && labels.size(0) == Y.size(0),
                 "--labels {} must be an int64 vector with one label per --data row ({}), got {} {}", a.labels, Y.size(0),
                 std::string(labels.dtype().name()), shape_str(labels.sizes()));
    DRIFTX_CHECK(labels.min().item<int64_t>() >= 0, "--labels {} has negative labels", a.labels);
    classes = labels.max().item<int64_t>() + 1;
  }
  DRIFTX_CHECK(a.shard_classes >= 1, "--shard-classes must be >= 1");
  DRIFTX_CHECK(a.shard_classes == 1 || labels.defined(), "--shard-classes needs --labels L.npy");
  DRIFTX_CHECK(a.shard_classes <= classes, "--shard-classes {} exceeds the {} classes in --labels", a.shard_classes, classes);

  torch::Tensor U;
  std::string provenance = "given";
  if (!a.landmarks.empty()) {
    DRIFTX_CHECK(a.strategy.empty() && a.per_class == 0 && a.total == 0,
                 "give either --landmarks U.npy or --landmark-strategy with a budget, not both");
    U = require_matrix(read_npy(a.landmarks), "--landmarks " + a.landmarks, Y.size(1));
  } else {
    DRIFTX_CHECK(a.per_class > 0 || a.total > 0,
                 "no landmarks: give --landmarks U.npy, or --landmark-strategy NAME with --landmarks-per-class K (and "
                 "--labels) or --total-landmarks M");
    LandmarkConfig lc;
    lc.strategy = parse_landmark_strategy(a.strategy.empty() ? (a.per_class > 0 ? "random_per_class" : "random_global") : a.strategy);
    lc.per_class = a.per_class;
    lc.total = a.total;
    lc.seed = a.seed;
    auto idx = select_landmarks(Y, labels, lc);
    U = Y.index_select(0, idx);
    provenance = to_string(lc.strategy);
  }
  DRIFTX_CHECK(U.size(0) <= Y.size(0), "--landmarks has {} rows but --data only {}: M must be <= |Y|", U.size(0), Y.size(0));
  // Each landmark takes the label of the real sample it coincides with (its nearest row of --data).
  auto U_labels = a.shard_classes > 1 ? labels.index_select(0, nearest_index(U, Y)) : torch::Tensor();

  ProjectedFieldConfig cfg;
  cfg.temperatures = parse_temperatures(a.temps);
  cfg.ridge = a.ridge;
  cfg.repulsion = parse_repulsion(a.repulsion);
  cfg.products = parse_product_precision(a.matmul_dtype);
  auto field = build_projected_field(Y, labels, U, U_labels, {classes, a.shard_classes}, scale, cfg);
  auto r = field.compute(G);
  write_npy(a.out_drift, r.drift);
  write_npy(a.out_target, r.target);
  nlohmann::json report = {
      {"field", "projected"},
      {"scale", field.scale()},
      {"clamped_fraction", r.clamped_fraction},
      {"clamped", r.clamped},
      {"loss", r.loss.item<double>()},
      {"drift_rms_per_temperature", r.drift_rms},
      {"condition_number_max", field.max_condition_number()},
      {"config",
       {{"gen", a.gen}, {"data", a.data}, {"landmarks", a.landmarks}, {"landmark_strategy", provenance},
        {"labels", a.labels}, {"shard_classes", a.shard_classes}, {"classes", classes}, {"temperatures", cfg.temperatures},
        {"ridge", cfg.ridge}, {"eps", cfg.eps}, {"repulsion", a.repulsion}, {"matmul_dtype", a.matmul_dtype}, {"scale_given", a.scale_given}, {"seed", a.seed},
        {"N", G.size(0)}, {"Y", Y.size(0)}, {"M", U.size(0)}, {"D", G.size(1)}}}};
  if (!a.report.empty()) write_json(a.report, report);
  std::cout << fmt::format("projected field: N={} |Y|={} M={} D={} shards={}  scale S={:.6g}  clamped={:.4f}  loss={:.6g}\n",
                           G.size(0), Y.size(0), U.size(0), G.size(1), a.shard_classes, field.scale(),
                           r.clamped_fraction, r.loss.item<double>());
}

}  // namespace

void add_projected_field_command(CLI::App& field) {
  static ProjectedArgs p;
  auto* cmd = field.add_subcommand("projected",
                                   "DriftXpress projected RKHS field (Nystrom attraction from cached data summaries)");
  cmd->add_option("--gen", p.gen, "Generated features G.npy, N x D (one feature group)")->required();
  cmd->add_option("--data", p.data, "Real features Y.npy, |Y| x D")->required();
  cmd->add_option("--landmarks", p.landmarks, "Landmarks U.npy, M x D (real samples); or select them with the flags below");
  cmd->add_option("--landmark-strategy", p.strategy,
                  "Select landmarks from --data: random_global, random_per_class, kmeans_global, kmeans_per_class, "
                  "kcenter, facility_location, density_weighted_kcenter");
  cmd->add_option("--landmarks-per-class", p.per_class, "Landmark budget per class (needs --labels)");
  cmd->add_option("--total-landmarks", p.total, "Total landmark budget M");
  cmd->add_option("--seed", p.seed, "Seed of the landmark selection")->capture_default_str();
  cmd->add_option("--scale", p.scale, "Feature scale S (default: computed from data and landmarks, SPEC §3)");
  cmd->add_option("--ridge", p.ridge, "Ridge added to W = k(U,U) before the inverse square root")->capture_default_str();
  cmd->add_option("--temps", p.temps, "Comma-separated temperatures (tau_eff = tau * sqrt(D))")->capture_default_str();
  cmd->add_option("--repulsion", p.repulsion, "Repulsion over the generated batch: exact or projected")->capture_default_str();
  cmd->add_option("--matmul-dtype", p.matmul_dtype,
                  "Attraction products (kernel values x folded summaries) in float32 or bf16; distances stay float32")
      ->capture_default_str();
  cmd->add_option("--labels", p.labels, "Labels L.npy of --data rows (int64), for class sharding / per-class landmarks");
  cmd->add_option("--shard-classes", p.shard_classes,
                  "Block-diagonal Nystrom: split the classes into K shards with their own landmarks")->capture_default_str();
  cmd->add_option("--out-drift", p.out_drift, "Output: summed normalised drift V, N x D, in coordinates / S")->required();
  cmd->add_option("--out-target", p.out_target, "Output: target G/S + V, N x D")->required();
  cmd->add_option("--report", p.report, "Output: JSON report (scale, clamped_fraction, loss, configuration)");
  cmd->callback([cmd] {
    p.scale_given = cmd->count("--scale") > 0;
    run_projected(p);
  });
}

}  // namespace driftx::cli
