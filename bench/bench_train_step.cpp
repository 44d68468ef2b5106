// driftx bench train-step: per-step wall-clock of the two methods with identical generator, features and
// batch layout, measured in one run (interleaved, so machine noise hits both alike).
#include <filesystem>
#include <iostream>

#include "bench_common.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/train.h"

namespace driftx::bench {

namespace {

struct TrainStepArgs {
  StepShape shape;
  std::string report, standard_positives = "cached";
  int64_t steps = 20;
};

void run(const TrainStepArgs& a) {
  DRIFTX_CHECK(a.steps >= 1, "--steps must be >= 1");
  const auto machine = machine_info();
  std::cout << header_line(machine) << "\n";
  // driftxpress, then one standard row per source of its positives' features (cached, encode).
  std::vector<std::string> rows_named{"driftxpress"};
  std::vector<std::unique_ptr<Trainer>> trainers;
  for (const auto& source : parse_name_list(a.standard_positives, "--standard-positives")) {
    DRIFTX_CHECK(source == "cached" || source == "encode", "--standard-positives: use cached, encode or both, got '{}'", source);
    rows_named.push_back("standard (" + source + ")");
  }
  for (const auto& name : rows_named) {
    auto shape = a.shape;
    shape.method = name == "driftxpress" ? name : "standard";
    if (shape.method == "standard") shape.positives = name.find("encode") != std::string::npos ? "encode" : "cached";
    auto config = step_config(shape);
    config.out_dir = fmt::format("{}/{}", shape.out, shape.method == "standard" ? "standard-" + shape.positives : shape.method);
    trainers.push_back(std::make_unique<Trainer>(config));
    trainers.back()->set_phase_sync(true);  // on a GPU: each phase's kernels counted in that phase (CPU: no effect)
    for (int i = 0; i < 2; ++i) trainers.back()->step();  // warm-up
  }
  // Interleaved steps: machine noise hits every row alike. Per row: step ms and its phases (ms).
  std::vector<std::vector<double>> ms(trainers.size());
  std::vector<std::vector<StepPhases>> phases(trainers.size());
  for (int64_t s = 0; s < a.steps; ++s)
    for (size_t i = 0; i < trainers.size(); ++i) {
      const auto [stats, t] = timed_step(*trainers[i], a.shape.device);
      ms[i].push_back(t);
      phases[i].push_back(stats.phases);
    }
  const auto& sh = a.shape;
  const int64_t batch = 10 * sh.gen_per_class;
  MarkdownTable table({"method", "precompute s", "ms/step (median)", "images/s", "ratio to driftxpress", "generator ms",
                       "features ms", "positives ms", "fields ms", "backward+opt ms", "field memory MiB"});
  nlohmann::json rows = nlohmann::json::array();
  double base = 0;
  for (size_t i = 0; i < trainers.size(); ++i) {
    const double med = median(ms[i]);
    if (i == 0) base = med;
    const auto ph = median_phases_ms(phases[i]);
    const auto mem = trainers[i]->memory();
    const double mib = static_cast<double>(mem.feature_cache + mem.summaries + mem.folded) / (1 << 20);
    const double back = ph.backward + ph.optimizer;
    table.add_row({rows_named[i], fixed(trainers[i]->precompute_seconds(), 1), fixed(med, 1), fixed(batch / (med * 1e-3), 0),
                   fixed(med / base, 2), fixed(ph.generator, 1), fixed(ph.features, 1), fixed(ph.positives, 1),
                   fixed(ph.fields, 1), fixed(back, 1), fixed(mib, 1)});
    rows.push_back({{"method", rows_named[i]}, {"precompute_s", trainers[i]->precompute_seconds()}, {"ms_per_step", med},
                    {"images_per_s", batch / (med * 1e-3)}, {"ratio", med / base},
                    {"phases_ms", {{"generator", ph.generator}, {"features", ph.features}, {"positives", ph.positives},
                                   {"fields", ph.fields}, {"backward_optimizer", back}}},
                    {"memory_bytes", {{"feature_cache", mem.feature_cache}, {"summaries", mem.summaries}, {"folded", mem.folded}}}});
  }
  std::cout << fmt::format("\nclass-conditional MNIST on {}, batch 10 classes x {}, features {} ({}), width {}, "
                           "standard: {} positives/class, driftxpress: {} landmarks/group in {} shard(s){}, {} products; "
                           "{} interleaved steps each\n\n",
                           device_name(sh.device), sh.gen_per_class, sh.features,
                           sh.per_location ? "per-location fields" : "each group one vector", sh.width, sh.pos_per_class,
                           sh.landmarks, sh.landmark_shards, sh.vector_maps ? " and per-vector maps" : "",
                           sh.matmul_dtype, a.steps);
  table.print(std::cout);
  if (!a.report.empty())
    write_json(a.report, {{"rows", rows}, {"machine", to_json(machine)}, {"device", device_name(sh.device)},
                          {"per_location", sh.per_location}, {"landmark_shards", sh.landmark_shards},
                          {"vector_maps", sh.vector_maps},
                          {"matmul_dtype", sh.matmul_dtype}});
}

}  // namespace

void add_bench_train_step(CLI::App& bench) {
  static TrainStepArgs a;
  auto* cmd = bench.add_subcommand("train-step", "Per-step wall-clock of driftxpress vs standard training, one run");
  cmd->add_option("--features", a.shape.features, "Feature groups")->capture_default_str();
  cmd->add_option("--width", a.shape.width, "Generator width")->capture_default_str();
  cmd->add_option("--steps", a.steps, "Timed steps per method")->capture_default_str();
  cmd->add_option("--gen-per-class", a.shape.gen_per_class, "Generated samples per class")->capture_default_str();
  cmd->add_option("--pos-per-class", a.shape.pos_per_class, "Standard: positives per class")->capture_default_str();
  cmd->add_option("--standard-positives", a.standard_positives, "Standard rows: where positives' features come from, "
                                                                "cached, encode or cached,encode (one row each)")->capture_default_str();
  cmd->add_option("--per-location", a.shape.per_location, "One kernel per vector of multi-vector groups (true) or "
                                                          "the flattened row as one vector (false)")->capture_default_str();
  cmd->add_option("--landmarks", a.shape.landmarks, "DriftXpress: landmarks per group")->capture_default_str();
  cmd->add_option("--landmark-shards", a.shape.landmark_shards, "DriftXpress: class shards of the landmarks (block-diagonal "
                                                                "Nystrom; 1 = one shared map)")->capture_default_str();
  cmd->add_option("--vector-maps", a.shape.vector_maps, "DriftXpress: one map per (class, vector), --landmarks per vector")
      ->capture_default_str();
  cmd->add_option("--matmul-dtype", a.shape.matmul_dtype, "Both fields' matrix products: float32 or bf16")
      ->capture_default_str();
  cmd->add_option("--device", a.shape.device, "Training device: cpu, cuda or cuda:N (the fields run there too)")
      ->capture_default_str();
  cmd->add_option("--data-dir", a.shape.data_dir, "Dataset root (default: the bundled data/)");
  cmd->add_option("--out", a.shape.out, "Scratch run directory (summary cache lands beside it)")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON rows + machine");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
