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
  std::string report;
  int64_t steps = 20;
};

void run(const TrainStepArgs& a) {
  DRIFTX_CHECK(a.steps >= 1, "--steps must be >= 1");
  const auto machine = machine_info();
  std::cout << header_line(machine) << "\n";
  std::vector<std::unique_ptr<Trainer>> trainers;
  const std::vector<std::string> methods{"driftxpress", "standard"};
  for (const auto& m : methods) {
    auto shape = a.shape;
    shape.method = m;
    trainers.push_back(std::make_unique<Trainer>(step_config(shape)));
    for (int i = 0; i < 2; ++i) trainers.back()->step();  // warm-up
  }
  std::vector<std::vector<double>> ms(methods.size());
  for (int64_t s = 0; s < a.steps; ++s)
    for (size_t i = 0; i < trainers.size(); ++i) ms[i].push_back(timed_step(*trainers[i], a.shape.device).second);
  const auto& sh = a.shape;
  const int64_t batch = 10 * sh.gen_per_class;
  MarkdownTable table({"method", "precompute s", "ms/step (median)", "images/s", "ratio to driftxpress"});
  nlohmann::json rows = nlohmann::json::array();
  double base = 0;
  for (size_t i = 0; i < methods.size(); ++i) {
    const double med = median(ms[i]);
    if (i == 0) base = med;
    table.add_row({methods[i], fixed(trainers[i]->precompute_seconds(), 1), fixed(med, 1), fixed(batch / (med * 1e-3), 0),
                   fixed(med / base, 2)});
    rows.push_back({{"method", methods[i]}, {"precompute_s", trainers[i]->precompute_seconds()}, {"ms_per_step", med},
                    {"images_per_s", batch / (med * 1e-3)}, {"ratio", med / base}});
  }
  std::cout << fmt::format("\nclass-conditional MNIST on {}, batch 10 classes x {}, features {}, width {}, "
                           "standard: {} positives/class, driftxpress: {} landmarks/group; {} interleaved steps each\n\n",
                           device_name(sh.device), sh.gen_per_class, sh.features, sh.width, sh.pos_per_class, sh.landmarks, a.steps);
  table.print(std::cout);
  if (!a.report.empty())
    write_json(a.report, {{"rows", rows}, {"machine", to_json(machine)}, {"device", device_name(sh.device)}});
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
  cmd->add_option("--landmarks", a.shape.landmarks, "DriftXpress: landmarks per group")->capture_default_str();
  cmd->add_option("--device", a.shape.device, "Training device: cpu, cuda or cuda:N (the fields run there too)")
      ->capture_default_str();
  cmd->add_option("--data-dir", a.shape.data_dir, "Dataset root (default: the bundled data/)");
  cmd->add_option("--out", a.shape.out, "Scratch run directory (summary cache lands beside it)")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON rows + machine");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
