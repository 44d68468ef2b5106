// driftx bench field: exact full-data attraction vs standard field (minibatch positives) vs DriftXpress
// projected field (folded, exact repulsion) on real MNIST features, measured in one run.
#include <chrono>
#include <iostream>

#include "bench_common.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/kernel.h"
#include "driftx/landmarks.h"
#include "driftx/projected_field.h"
#include "driftx/standard_field.h"

namespace driftx::bench {

namespace {

struct FieldArgs {
  std::string batches = "256,1024", dims = "196,784", landmarks = "500,1000,5000", temps = "0.1,0.2,0.5", report;
  std::string dataset = "mnist", data_dir;
  int64_t real = 60000;
  int repeats = 3;
  uint64_t seed = 0;
};

std::string feature_group_for(int64_t dim) {
  for (const auto& g : {"pixels", "pool2", "pool4"})
    if (feature_dim(g, 1, 28, 28) == dim) return g;
  fail("--d: {} is not a feature dimension of 28x28 images (use 784, 196 or 49)", dim);
}

void run(const FieldArgs& a) {
  const auto batches = parse_int_list(a.batches, "--b"), dims = parse_int_list(a.dims, "--d"),
             budgets = parse_int_list(a.landmarks, "--m");
  const auto temps = parse_temperatures(a.temps);
  DRIFTX_CHECK(a.repeats >= 1, "--repeats must be >= 1");
  const auto machine = machine_info();
  auto train = load_dataset(a.dataset, "train", a.data_dir);
  auto test = load_dataset(a.dataset, "test", a.data_dir);
  const int64_t Y_n = std::min(a.real, train.size());
  std::cout << header_line(machine) << "\n";
  std::cout << fmt::format("bench field: |Y| = {} real {} images, queries = noisy test images, temperatures {}, "
                           "median of {} repeats\n\n", Y_n, a.dataset, a.temps, a.repeats);
  MarkdownTable table({"|Y|", "B", "D", "method", "M / P", "precompute s", "ms/step", "GFLOP/s", "peak MiB added",
                       "speedup vs exact"});
  nlohmann::json rows = nlohmann::json::array();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(a.seed);
  for (int64_t D : dims) {
    const auto group = feature_group_for(D);
    auto Y = dataset_features(train.images.narrow(0, 0, Y_n), group);
    auto Yl = train.labels.narrow(0, 0, Y_n);
    for (int64_t B : batches) {
      auto pick = torch::randint(test.size(), {B}, gen, torch::kLong);
      auto imgs = test.images.index_select(0, pick);
      auto X = dataset_features(imgs + 0.3 * torch::randn(imgs.sizes(), gen), group);
      std::vector<double> tau_effs;
      for (double t : temps) tau_effs.push_back(effective_temperature(t, D));
      const double nt = static_cast<double>(temps.size());
      auto add = [&](const std::string& method, int64_t mp, double pre_s, const Timing& t, const MemoryAdded& mem,
                     double flops, double exact_ms) {
        const double gflops = flops / (t.median_ms * 1e-3) / 1e9;
        table.add_row({std::to_string(Y_n), std::to_string(B), std::to_string(D), method,
                       mp > 0 ? std::to_string(mp) : "-", pre_s > 0 ? fixed(pre_s, 1) : "-", fixed(t.median_ms, 2),
                       fixed(gflops, 1), fixed(mem.peak_added_mib, 1),
                       exact_ms > 0 ? fixed(exact_ms / t.median_ms, 1) + "x" : "1.0x"});
        rows.push_back({{"real", Y_n}, {"B", B}, {"D", D}, {"method", method}, {"M_or_P", mp}, {"precompute_s", pre_s},
                        {"ms_per_step", t.median_ms}, {"gflops", gflops}, {"peak_mib_added", mem.peak_added_mib},
                        {"memory_method", mem.method}, {"speedup_vs_exact", exact_ms > 0 ? exact_ms / t.median_ms : 1.0}});
        std::cerr << "." << std::flush;
      };
      // Exact attraction over all |Y|: one distance GEMM plus one numerator GEMM per temperature.
      auto Ys = Y / 1.0;
      auto exact_fn = [&] { exact_attractions(X, Ys, tau_effs); };
      auto te = time_call(exact_fn, a.repeats);
      add("exact attraction (full data)", 0, 0, te, measure_memory_added(exact_fn),
          2.0 * B * Y_n * D * (1 + nt), 0);
      // Standard field with B minibatch positives drawn from Y each step (their encoding not counted).
      auto pos = Y.index_select(0, torch::randint(Y_n, {B}, gen, torch::kLong));
      StandardFieldConfig sc;
      sc.temperatures = {0.02, 0.05, 0.2};
      StandardField standard(sc);
      auto std_fn = [&] { standard.compute({X, pos, {}, {}}); };
      auto ts = time_call(std_fn, a.repeats);
      add("standard field (minibatch positives)", B, 0, ts, measure_memory_added(std_fn), 2.0 * B * (2 * B) * D * (1 + 3),
          te.median_ms);
      for (int64_t M : budgets) {
        if (M > Y_n) continue;
        auto t0 = std::chrono::steady_clock::now();
        LandmarkConfig lc;
        lc.strategy = LandmarkStrategy::RandomGlobal;
        lc.total = M;
        lc.seed = a.seed;
        ProjectedFieldConfig pc;
        pc.temperatures = temps;
        auto field = build_projected_field(Y, {}, Y.index_select(0, select_landmarks(Y, Yl, lc)), {}, {}, std::nullopt, pc);
        field.compute(X.narrow(0, 0, 2));  // folds the summaries: part of the precompute
        const double pre_s = seconds_since(t0);
        auto proj_fn = [&] { field.compute(X); };
        auto tp = time_call(proj_fn, a.repeats);
        add("projected field (folded, exact repulsion)", M, pre_s, tp, measure_memory_added(proj_fn),
            2.0 * B * M * D * (1 + nt) + 2.0 * B * B * D * (1 + nt), te.median_ms);
      }
    }
  }
  std::cerr << "\n";
  table.print(std::cout);
  std::cout << "\nGFLOP/s counts the matrix products: exact 2*B*|Y|*D*(1+temps); standard 2*B*(N+P)*D*(1+temps); "
               "projected 2*B*M*D*(1+temps) + exact repulsion 2*B*B*D*(1+temps). Peak MiB added: resident memory "
               "the call adds at its peak.\n";
  if (!a.report.empty())
    write_json(a.report, {{"rows", rows}, {"machine", to_json(machine)},
                          {"config", {{"real", Y_n}, {"batches", batches}, {"dims", dims}, {"landmarks", budgets},
                                      {"temperatures", temps}, {"repeats", a.repeats}, {"seed", a.seed}}}});
}

}  // namespace

void add_bench_field(CLI::App& bench) {
  static FieldArgs a;
  auto* cmd = bench.add_subcommand("field", "Exact full-data attraction vs standard vs projected field on MNIST features");
  cmd->add_option("--b", a.batches, "Query batch sizes B")->capture_default_str();
  cmd->add_option("--d", a.dims, "Feature dimensions D (784 pixels, 196 pool2, 49 pool4)")->capture_default_str();
  cmd->add_option("--m", a.landmarks, "Landmark budgets M")->capture_default_str();
  cmd->add_option("--real", a.real, "Real samples |Y| (at most the training set)")->capture_default_str();
  cmd->add_option("--temps", a.temps, "Temperatures of the attraction")->capture_default_str();
  cmd->add_option("--repeats", a.repeats, "Timed repeats (median reported)")->capture_default_str();
  add_dataset_options(cmd, a.dataset, a.data_dir, a.seed, a.report);
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
