// driftx bench field-standard: the exact standard field against its own matrix products.
//
// For each (N, P, D) of the grid: random Gaussian float32 inputs, one group, no extra negatives
// (U = 0, T = N + P targets). The field is timed (warm-up + median of repeats), then plain
// torch::matmul calls with exactly the field's shapes are timed in the same run: one N x D by D x T
// product (the distance GEMM) and one N x T by T x D product per temperature (coefficients @ targets).
// Their ratio says how much the elementwise work (softmaxes, affinities, reductions) costs on top
// of the unavoidable BLAS work; the project's target is <= 2x at N=1024, P=4096, D=784.
#include <iostream>

#include <torch/torch.h>

#include "bench_common.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/kernel.h"
#include "driftx/standard_field.h"

namespace driftx::bench {

namespace {

struct Args {
  std::string n = "256,1024", p = "256,4096", d = "64,784", temps = "0.02,0.05,0.2", report, matmul_dtype = "float32";
  int repeats = 5, warmup = 1;
  uint64_t seed = 0;
};

void run(const Args& a) {
  const auto Ns = parse_int_list(a.n, "--n", 2);
  const auto Ps = parse_int_list(a.p, "--p", 1);
  const auto Ds = parse_int_list(a.d, "--d", 1);
  StandardFieldConfig cfg;
  cfg.temperatures = parse_temperatures(a.temps);
  cfg.products = parse_product_precision(a.matmul_dtype);
  DRIFTX_CHECK(a.repeats >= 1, "--repeats must be >= 1, got {}", a.repeats);
  DRIFTX_CHECK(a.warmup >= 0, "--warmup must be >= 0, got {}", a.warmup);
  const StandardField field(cfg);
  const int64_t n_temps = static_cast<int64_t>(cfg.temperatures.size());

  const MachineInfo machine = machine_info();
  std::cout << "bench field-standard: " << header_line(machine) << "\n"
            << fmt::format("float32 inputs, {} coef @ targets, one group, U=0, T=N+P; temperatures {}; median of {} "
                           "repeats after {} warm-up\n",
                           to_string(cfg.products), a.temps, a.repeats, a.warmup)
            << "GFLOP/s counts the matrix products only: 2*N*T*D (distances) + 2*N*T*D per temperature "
               "(coef @ targets)\n"
            << std::flush;

  MarkdownTable table({"N", "P", "D", "field ms", "field GFLOP/s", "GEMMs ms", "GEMMs GFLOP/s", "field/GEMMs",
                       "peak added MiB", "NxT f32 MiB", "peak/NxT"});
  nlohmann::json rows = nlohmann::json::array();
  std::string memory_method;
  torch::NoGradGuard no_grad;

  for (int64_t N : Ns)
    for (int64_t P : Ps)
      for (int64_t D : Ds) {
        torch::manual_seed(a.seed);
        const int64_t T = N + P;
        auto X = torch::randn({N, D});
        auto Yp = torch::randn({P, D});
        StandardFieldInput input{X, Yp, {}, {}};

        // The field, consumed through its loss so nothing is left lazy.
        auto field_call = [&] {
          auto r = field.compute(input);
          (void)r.loss.item<double>();
        };
        const Timing field_t = time_call(field_call, a.repeats, a.warmup);

        // The same matrix products, alone: operands laid out as in the field (targets T x D,
        // transposed view for the distance product; a contiguous N x T matrix times T x D).
        auto targets = torch::cat({X, Yp}, 0);
        auto coef = torch::rand({N, T});
        auto gemm_call = [&] {
          auto prod = torch::matmul(X, targets.t());
          for (int64_t k = 0; k < n_temps; ++k) {
            auto F = torch::matmul(coef, targets);
            (void)F.data_ptr<float>();
          }
          (void)prod.data_ptr<float>();
        };
        const Timing gemm_t = time_call(gemm_call, a.repeats, a.warmup);

        const MemoryAdded mem = measure_memory_added(field_call);
        memory_method = mem.method;

        const double flops = 2.0 * N * T * D * static_cast<double>(1 + n_temps);
        const double field_gflops = flops / (field_t.median_ms * 1e6);
        const double gemm_gflops = flops / (gemm_t.median_ms * 1e6);
        const double ratio = field_t.median_ms / gemm_t.median_ms;
        const double affinity_mib = static_cast<double>(N) * T * sizeof(float) / (1024.0 * 1024.0);
        table.add_row({std::to_string(N), std::to_string(P), std::to_string(D), fixed(field_t.median_ms, 2),
                       fixed(field_gflops, 1), fixed(gemm_t.median_ms, 2), fixed(gemm_gflops, 1),
                       fixed(ratio, 2) + "x", fixed(mem.peak_added_mib, 1), fixed(affinity_mib, 1),
                       fixed(mem.peak_added_mib / affinity_mib, 1) + "x"});
        rows.push_back({{"N", N},
                        {"P", P},
                        {"D", D},
                        {"T", T},
                        {"field_ms", {{"median", field_t.median_ms}, {"min", field_t.min_ms}, {"max", field_t.max_ms},
                                      {"samples", field_t.samples_ms}}},
                        {"gemm_ms", {{"median", gemm_t.median_ms}, {"min", gemm_t.min_ms}, {"max", gemm_t.max_ms},
                                     {"samples", gemm_t.samples_ms}}},
                        {"gflop", flops / 1e9},
                        {"field_gflops", field_gflops},
                        {"gemm_gflops", gemm_gflops},
                        {"field_over_gemm", ratio},
                        {"peak_added_mib", mem.peak_added_mib},
                        {"rss_before_mib", mem.rss_before_mib},
                        {"affinity_nxt_f32_mib", affinity_mib}});
      }

  table.print(std::cout);
  std::cout << "peak added: resident memory the field call adds at its peak (" << memory_method
            << "); NxT f32: one N x T float32 affinity matrix, for reference\n";
  if (!a.report.empty()) {
    nlohmann::json report = {
        {"benchmark", "field-standard"},
        {"machine", to_json(machine)},
        {"config",
         {{"n", Ns}, {"p", Ps}, {"d", Ds}, {"u", 0}, {"groups", 1}, {"dtype", "float32"},
          {"temperatures", cfg.temperatures}, {"affinity_floor", cfg.affinity_floor},
          {"self_exclusion", cfg.self_exclusion}, {"matmul_dtype", to_string(cfg.products)}, {"repeats", a.repeats}, {"warmup", a.warmup}, {"seed", a.seed}}},
        {"flop_count", "2*N*T*D*(1 + temperatures): distance GEMM + coef @ targets per temperature, T = N + P"},
        {"gemm_baseline", "torch::matmul: (N x D)(D x T) once + (N x T)(T x D) per temperature"},
        {"memory_method", memory_method},
        {"process_peak_rss_mib", peak_rss_mib()},
        {"rows", rows}};
    write_json(a.report, report);
    std::cout << "report: " << a.report << "\n";
  }
}

}  // namespace

void add_bench_field_standard(CLI::App& bench) {
  static Args a;
  auto* cmd = bench.add_subcommand(
      "field-standard",
      "Time the exact standard field against its matrix products alone, over a grid of N, P, D. "
      "Random Gaussian float32 inputs, one group, U = 0, T = N + P. GFLOP/s counts the field's matrix-product "
      "flops: 2*N*T*D for the distance GEMM plus 2*N*T*D per temperature for coef @ targets. 'GEMMs' times "
      "plain torch::matmul with the same shapes; 'peak added' is the resident memory the field call adds.");
  cmd->add_option("--n", a.n, "Generated samples per group, comma-separated")->capture_default_str();
  cmd->add_option("--p", a.p, "Positives per group, comma-separated")->capture_default_str();
  cmd->add_option("--d", a.d, "Feature dimensions, comma-separated")->capture_default_str();
  cmd->add_option("--temps", a.temps, "Comma-separated temperatures")->capture_default_str();
  cmd->add_option("--matmul-dtype", a.matmul_dtype, "The field's coef @ targets products: float32 or bf16 (the GEMM "
                  "baseline stays float32)")->capture_default_str();
  cmd->add_option("--repeats", a.repeats, "Timed calls per configuration (median reported)")->capture_default_str();
  cmd->add_option("--warmup", a.warmup, "Untimed calls before timing")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_option("--report", a.report, "Output: JSON with the rows, machine and configuration");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
