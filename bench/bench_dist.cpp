// driftx bench dist: precompute and training throughput of one training configuration on 1, 2, ...
// local ranks (driftx launch), measured in one run. Each rank count is a fresh job: the summaries are
// rebuilt (no cache), then `--steps` training steps are timed after 2 warm-up steps.
#include <filesystem>
#include <iostream>

#include "bench_common.h"
#include "driftx/distributed.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/train.h"

namespace driftx::bench {

namespace {

struct DistArgs {
  StepShape shape;  // method, features, width, batch layout, landmarks (bench_common.h)
  std::string nproc = "1,2", out = "runs/bench-dist", report;
  int64_t steps = 20, classes_per_step = 10;
  double timeout_s = 120;
  std::string worker_result;  // internal: run as one rank and write the figures here (rank 0)
};

TrainConfig config_for(const DistArgs& a, const std::string& dir) {
  TrainConfig c = step_config(a.shape);
  c.classes_per_step = a.classes_per_step;
  c.out_dir = dir + "/run";
  c.cache_dir = dir + "/cache";
  return c;
}

// One rank of one job.
void run_worker(const DistArgs& a) {
  auto comm = Communicator::from_env(std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1e3)));
  const auto dir = std::filesystem::path(a.worker_result).parent_path().string();
  if (comm->is_main()) std::filesystem::remove_all(dir + "/cache");  // time the summaries, not a cache hit
  comm->barrier();
  Trainer trainer(config_for(a, dir), false, comm);
  for (int i = 0; i < 2; ++i) trainer.step();  // warm-up
  std::vector<double> ms;
  for (int64_t s = 0; s < a.steps; ++s) ms.push_back(trainer.step().step_seconds * 1e3);
  std::sort(ms.begin(), ms.end());
  if (comm->is_main())
    write_json(a.worker_result, {{"ranks", comm->world_size()}, {"threads_per_rank", at::get_num_threads()},
                                 {"precompute_s", trainer.precompute_seconds()}, {"summary_s", trainer.summary_seconds()},
                                 {"ms_per_step", ms[ms.size() / 2]}, {"backend", comm->backend()}});
}

void run(const DistArgs& a) {
  DRIFTX_CHECK(a.steps >= 1, "--steps must be >= 1");
  if (!a.worker_result.empty()) return run_worker(a);
  const auto machine = machine_info();
  const auto counts = parse_int_list(a.nproc, "--nproc");
  std::vector<nlohmann::json> results;
  for (const int64_t n : counts) {
    const std::string dir = fmt::format("{}/ranks-{}", a.out, n);
    make_dirs(dir);
    const std::string result = dir + "/result.json";
    std::filesystem::remove(result);
    std::vector<std::string> args{current_executable(), "bench", "dist", "--worker-result", result,
                                  "--method", a.shape.method, "--features", a.shape.features,
                                  "--width", std::to_string(a.shape.width), "--steps", std::to_string(a.steps),
                                  "--classes-per-step", std::to_string(a.classes_per_step),
                                  "--gen-per-class", std::to_string(a.shape.gen_per_class),
                                  "--pos-per-class", std::to_string(a.shape.pos_per_class),
                                  "--landmarks", std::to_string(a.shape.landmarks), "--timeout", fmt::format("{}", a.timeout_s)};
    LaunchConfig lc;
    lc.nproc = static_cast<int>(n);
    launch_local(lc, args);
    results.push_back(read_json(result));
  }
  const int64_t batch = a.classes_per_step * a.shape.gen_per_class;
  std::cout << "\n" << header_line(machine) << "\n";
  std::cout << fmt::format("bench dist: {} on MNIST, class-conditional, batch {} classes x {}, features {}, width {}, {}; "
                           "median of {} steps after 2 warm-up; threads per rank = cores / ranks\n\n",
                           a.shape.method, a.classes_per_step, a.shape.gen_per_class, a.shape.features, a.shape.width,
                           a.shape.method == "standard" ? fmt::format("{} positives/class", a.shape.pos_per_class)
                                                  : fmt::format("{} landmarks/group", a.shape.landmarks),
                           a.steps);
  MarkdownTable table({"ranks", "threads/rank", "backend", "precompute s", "summaries s", "summaries speedup",
                       "ms/step", "images/s", "step speedup"});
  const auto& base = results.front();
  for (const auto& r : results) {
    const double ms = r["ms_per_step"].get<double>();
    table.add_row({std::to_string(r["ranks"].get<int>()), std::to_string(r["threads_per_rank"].get<int>()),
                   r["backend"].get<std::string>(), fixed(r["precompute_s"].get<double>(), 2),
                   fixed(r["summary_s"].get<double>(), 2),
                   r["summary_s"].get<double>() > 0  // the standard field has no summaries
                       ? fixed(base["summary_s"].get<double>() / r["summary_s"].get<double>(), 2) + "x"
                       : "-",
                   fixed(ms, 1), fixed(batch / (ms * 1e-3), 0), fixed(base["ms_per_step"].get<double>() / ms, 2) + "x"});
  }
  table.print(std::cout);
  std::cout << "precompute: dataset, features, landmarks, scale and summaries (only the summaries are split across "
               "ranks); speedups are relative to the first row\n";
  if (!a.report.empty()) write_json(a.report, {{"rows", results}, {"machine", to_json(machine)}});
}

}  // namespace

void add_bench_dist(CLI::App& bench) {
  static DistArgs a;
  auto* cmd = bench.add_subcommand("dist", "Precompute and training throughput on 1, 2, ... local ranks (driftx launch)");
  cmd->add_option("--nproc", a.nproc, "Rank counts, one job each")->capture_default_str();
  cmd->add_option("--method", a.shape.method, "driftxpress or standard")->capture_default_str();
  cmd->add_option("--features", a.shape.features, "Feature groups")->capture_default_str();
  cmd->add_option("--width", a.shape.width, "Generator width")->capture_default_str();
  cmd->add_option("--steps", a.steps, "Timed steps per job")->capture_default_str();
  cmd->add_option("--classes-per-step", a.classes_per_step, "Classes per step (divisible by every rank count)")->capture_default_str();
  cmd->add_option("--gen-per-class", a.shape.gen_per_class, "Generated samples per class")->capture_default_str();
  cmd->add_option("--pos-per-class", a.shape.pos_per_class, "Standard: positives per class")->capture_default_str();
  cmd->add_option("--landmarks", a.shape.landmarks, "DriftXpress: landmarks per group")->capture_default_str();
  cmd->add_option("--timeout", a.timeout_s, "Distributed timeout, seconds")->capture_default_str();
  cmd->add_option("--out", a.out, "Scratch directory (runs and summary caches per rank count)")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON rows + machine");
  cmd->add_option("--worker-result", a.worker_result, "(internal) run as one rank, write the figures here")->group("");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
