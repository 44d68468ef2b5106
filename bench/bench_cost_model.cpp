// driftx bench cost-model: where a training step's time goes, per method, as the batch, the landmarks,
// the positives and the feature groups grow (issue 12, item 4). Each row is one trainer; the step is
// split into StepPhases and printed next to the fields' operation count from the formulas in
// BENCHMARKS.md ("Cost model"), so the measured time per GFLOP says how far each shape is from the
// matrix-product rate.
#include <iostream>

#include "bench_common.h"
#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/files.h"

namespace driftx::bench {

namespace {

struct CostModelArgs {
  StepShape shape;
  std::string report, axes = "batch,landmarks,positives,groups";
  int64_t steps = 6;
};

// Multiply-adds of the fields in one step, x2 (FLOPs), summed over the feature groups (dims), with T
// temperatures, G classes of n generated each (B = G n), P positives per class, M landmarks per group.
//   standard:    2 G n (n + P) D (1 + T)        distances to the n + P targets, one product per temperature
//   driftxpress: 2 B M D (1 + T) + 2 G n^2 D (1 + T)   attraction against M landmarks + exact repulsion
double field_flops(const StepShape& s, const std::vector<int64_t>& dims, int64_t temps) {
  const double G = 10, n = static_cast<double>(s.gen_per_class), T = static_cast<double>(temps);
  double total = 0;
  for (int64_t d : dims) {
    const double D = static_cast<double>(d);
    if (s.method == "standard")
      total += 2 * G * n * (n + s.pos_per_class) * D * (1 + T);
    else
      total += 2 * G * n * s.landmarks * D * (1 + T) + 2 * G * n * n * D * (1 + T);
  }
  return total;
}

std::vector<int64_t> group_dims(const std::string& features) {
  std::vector<int64_t> dims;
  for (const auto& g : expand_feature_groups(parse_feature_groups(features), torch::zeros({2, 1, 28, 28})))
    dims.push_back(feature_dim(g, 1, 28, 28));
  return dims;
}

void run(const CostModelArgs& a) {
  DRIFTX_CHECK(a.steps >= 1, "--steps must be >= 1");
  const auto machine = machine_info();
  std::cout << header_line(machine) << "\n" << device_name(a.shape.device) << "\n";
  // One axis at a time from the default shape; the methods each axis concerns.
  struct Row {
    std::string axis, value;
    StepShape shape;
  };
  std::vector<Row> rows;
  const auto axes = parse_name_list(a.axes, "--axes");
  auto add = [&](const std::string& axis, const std::string& value, const std::vector<std::string>& methods,
                 const std::function<void(StepShape&)>& set) {
    for (const auto& m : methods) {
      StepShape s = a.shape;
      s.method = m;
      set(s);
      rows.push_back({axis, value, s});
    }
  };
  const std::vector<std::string> both{"driftxpress", "standard"};
  for (const auto& axis : axes) {
    if (axis == "batch") {
      for (int64_t n : {10, 25, 50, 100}) add(axis, std::to_string(n), both, [n](StepShape& s) { s.gen_per_class = n; });
    } else if (axis == "landmarks") {
      for (int64_t m : {250, 1000, 4000})
        add(axis, std::to_string(m), {"driftxpress"}, [m](StepShape& s) { s.landmarks = m; });
    } else if (axis == "positives") {
      for (int64_t p : {64, 256, 1024})
        add(axis, std::to_string(p), {"standard"}, [p](StepShape& s) { s.pos_per_class = p; });
    } else if (axis == "groups") {
      for (std::string f : {"pool4", "pixels,pool2,pool4", "pixels,pool2,pool4,patch2_stats,patch4_stats,mean_std"})
        add(axis, f, both, [f](StepShape& s) { s.features = f; });
    } else {
      fail("--axes: unknown axis '{}' (batch, landmarks, positives, groups)", axis);
    }
  }
  MarkdownTable table({"axis", "value", "method", "groups", "generator", "features", "positives", "fields", "backward",
                       "optimiser", "step ms", "field GFLOP", "field GFLOP/s"});
  nlohmann::json out = nlohmann::json::array();
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    std::cerr << fmt::format("[{}/{}] {}={} {}\n", r + 1, rows.size(), row.axis, row.value, row.shape.method);
    Trainer trainer(step_config(row.shape));
    trainer.set_phase_sync(true);
    for (int i = 0; i < 2; ++i) trainer.step();  // warm-up
    std::vector<StepPhases> phases;
    std::vector<double> total;
    for (int64_t s = 0; s < a.steps; ++s) {
      auto [st, ms] = timed_step(trainer, row.shape.device);
      phases.push_back(st.phases);
      total.push_back(ms);
    }
    const auto ph = median_phases_ms(phases);
    const auto dims = group_dims(row.shape.features);
    const double gflop = field_flops(row.shape, dims, static_cast<int64_t>(trainer.config().temperatures.size())) / 1e9;
    table.add_row({row.axis, row.value, row.shape.method, std::to_string(dims.size()), fixed(ph.generator, 1),
                   fixed(ph.features, 1), fixed(ph.positives, 1), fixed(ph.fields, 1), fixed(ph.backward, 1),
                   fixed(ph.optimizer, 1), fixed(median(total), 1), fixed(gflop, 2), fixed(gflop / (ph.fields * 1e-3), 1)});
    out.push_back({{"axis", row.axis}, {"value", row.value}, {"method", row.shape.method}, {"group_dims", dims},
                   {"gen_per_class", row.shape.gen_per_class}, {"pos_per_class", row.shape.pos_per_class},
                   {"landmarks", row.shape.landmarks}, {"features", row.shape.features},
                   {"ms", {{"generator", ph.generator}, {"features", ph.features}, {"positives", ph.positives},
                           {"fields", ph.fields}, {"backward", ph.backward}, {"optimizer", ph.optimizer},
                           {"step", median(total)}}},
                   {"field_gflop", gflop}});
  }
  std::cout << fmt::format("\nms per step (median of {} after 2 warm-up), class-conditional MNIST, 10 classes per step; "
                           "defaults: {} generated/class, {} positives/class, {} landmarks/group, features {}\n\n",
                           a.steps, a.shape.gen_per_class, a.shape.pos_per_class, a.shape.landmarks, a.shape.features);
  table.print(std::cout);
  if (!a.report.empty())
    write_json(a.report, {{"rows", out}, {"machine", to_json(machine)}, {"device", device_name(a.shape.device)}});
}

}  // namespace

void add_bench_cost_model(CLI::App& bench) {
  static CostModelArgs a;
  a.shape.pos_per_class = 256;  // the training default
  a.shape.out = "runs/bench-cost-model";
  auto* cmd = bench.add_subcommand("cost-model", "Per-phase step time of both methods as batch, landmarks, "
                                                 "positives and feature groups grow, next to the fields' FLOPs");
  cmd->add_option("--axes", a.axes, "Axes to sweep, one at a time from the defaults")->capture_default_str();
  cmd->add_option("--steps", a.steps, "Timed steps per row")->capture_default_str();
  cmd->add_option("--gen-per-class", a.shape.gen_per_class, "Default generated samples per class")->capture_default_str();
  cmd->add_option("--pos-per-class", a.shape.pos_per_class, "Default positives per class (standard)")->capture_default_str();
  cmd->add_option("--landmarks", a.shape.landmarks, "Default landmarks per group (driftxpress)")->capture_default_str();
  cmd->add_option("--features", a.shape.features, "Default feature groups")->capture_default_str();
  cmd->add_option("--width", a.shape.width, "Generator width")->capture_default_str();
  cmd->add_option("--device", a.shape.device, "Training device: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--data-dir", a.shape.data_dir, "Dataset root (default: the bundled data/)");
  cmd->add_option("--out", a.shape.out, "Scratch run directory (summary cache lands beside it)")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON rows + machine");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
