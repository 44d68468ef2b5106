// driftx bench attraction: the projected field's attraction (ProjectedField::attractions, folded
// summaries) against plain matrix products of the same shapes, per landmark block and product dtype.
//
// Inputs: MNIST pixel features (D = 784) or 2x2/4x4 pooled ones; summaries over the first |Y| training
// images, M random landmarks among them, B noisy test images as queries, temperatures 0.02/0.05/0.2.
// The attraction's flops are its matrix products: one distance GEMM (B x D by D x M) plus one product
// per temperature of the B x M kernel values with the folded [num | den] summaries (M x (D+1)):
// 2*B*M*D + temps*2*B*M*(D+1). The same products are then timed alone as torch::mm calls (float32, and
// bf16 for reference): "% of GEMM" is the attraction's GFLOP/s over the float32 GEMMs' GFLOP/s, the
// fraction of this machine's measured matrix-product rate that the whole attraction reaches.
// --conditional --shards K: class-conditional queries of a field with K class shards, each query
// touching only its own shard's landmarks; the flops then count the landmarks actually touched.
#include <iostream>

#include "bench_common.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/kernel.h"
#include "driftx/landmarks.h"
#include "driftx/projected_field.h"

namespace driftx::bench {

namespace {

struct Args {
  std::string batches = "1024,4096", landmarks = "1000,4000", blocks = "0,256,512,1024", dtypes = "float32,bf16";
  std::string temps = "0.02,0.05,0.2", features = "pixels", dataset = "mnist", data_dir, report;
  int64_t real = 10000, shards = 1;
  int repeats = 3, warmup = 1;
  bool conditional = false;
  uint64_t seed = 0;
};

void run(const Args& a) {
  const auto batches = parse_int_list(a.batches, "--b", 1), budgets = parse_int_list(a.landmarks, "--m", 1),
             blocks = parse_int_list(a.blocks, "--blocks", 0);
  std::vector<ProductPrecision> dtypes;
  for (const auto& name : parse_name_list(a.dtypes, "--matmul-dtype")) dtypes.push_back(parse_product_precision(name));
  ProjectedFieldConfig pc;
  pc.temperatures = parse_temperatures(a.temps);
  DRIFTX_CHECK(a.repeats >= 1 && a.warmup >= 0, "--repeats must be >= 1 and --warmup >= 0");
  DRIFTX_CHECK(a.shards == 1 || (a.conditional && a.shards >= 1 && a.shards <= 10),
               "--shards {} needs --conditional and 1..10 shards (10 classes)", a.shards);
  const auto machine = machine_info();
  auto train = load_dataset(a.dataset, "train", a.data_dir);
  auto test = load_dataset(a.dataset, "test", a.data_dir);
  const int64_t Y_n = std::min(a.real, train.size());
  auto Y = dataset_features(train.images.narrow(0, 0, Y_n), a.features);
  auto Yl = train.labels.narrow(0, 0, Y_n);
  const int64_t D = Y.size(1);
  const double nt = static_cast<double>(pc.temperatures.size());
  std::cout << "bench attraction: " << header_line(machine) << "\n"
            << fmt::format("{} {} (D={}), |Y| = {} summarised, {} queries = noisy test images, temperatures {}; "
                           "{} shard(s); median of {} repeats after {} warm-up\n",
                           a.dataset, a.features, D, Y_n, a.conditional ? "class-conditional" : "unconditional",
                           a.temps, a.shards, a.repeats, a.warmup)
            << "GFLOP/s counts the products: 2*B*M*D (distances) + temps*2*B*M*(D+1) (kernel x folded summaries); "
               "GEMMs: the same products as plain torch::mm\n"
            << std::flush;
  MarkdownTable table({"B", "M", "touched/query", "products", "landmark block", "attraction ms", "GFLOP/s", "f32 GEMMs ms",
                       "f32 GEMM GFLOP/s", "% of f32 GEMM rate", "bf16 GEMMs ms", "peak MiB added"});
  nlohmann::json rows = nlohmann::json::array();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(a.seed);
  torch::NoGradGuard no_grad;
  for (int64_t M : budgets) {
    DRIFTX_CHECK(M <= Y_n, "--m {} exceeds the {} summarised samples (--real)", M, Y_n);
    LandmarkConfig lc;
    lc.strategy = a.conditional ? LandmarkStrategy::RandomPerClass : LandmarkStrategy::RandomGlobal;
    if (a.conditional) lc.per_class = M / 10; else lc.total = M;
    lc.seed = a.seed;
    auto picked = select_landmarks(Y, Yl, lc);
    auto U = Y.index_select(0, picked);
    const int64_t classes = a.conditional ? 10 : 1;
    auto field = build_projected_field(Y, a.conditional ? Yl : torch::Tensor(), U, Yl.index_select(0, picked),
                                       {classes, a.shards}, std::nullopt, pc);
    std::cerr << "." << std::flush;
    for (int64_t B : batches) {
      auto pick = torch::randint(test.size(), {B}, gen, torch::kLong);
      auto imgs = test.images.index_select(0, pick);
      auto xs = dataset_features(imgs + 0.3 * torch::randn(imgs.sizes(), gen), a.features) / field.scale();
      auto xl = a.conditional ? test.labels.index_select(0, pick) : torch::Tensor();
      // Landmarks each query meets (all M, or its own shard's): the flops of the attraction.
      torch::Tensor touched;
      field.attractions(xs, xl, nullptr, &touched);
      const double pairs = touched.sum().item<double>();
      const double flops = 2.0 * pairs * D + nt * 2.0 * pairs * (D + 1);
      // The same products alone, over as many landmarks as a query touches on average.
      const int64_t Meff = std::llround(pairs / static_cast<double>(B));
      auto Ut = (U.narrow(0, 0, Meff) / field.scale()).t().contiguous();
      auto K = torch::rand({B, Meff}, gen), S = torch::rand({Meff, D + 1}, gen);
      auto Kb = K.to(torch::kBFloat16), Sb = S.to(torch::kBFloat16), xb = xs.to(torch::kBFloat16),
           Utb = Ut.to(torch::kBFloat16);
      auto gemms = [&](const torch::Tensor& x, const torch::Tensor& ut, const torch::Tensor& k, const torch::Tensor& s) {
        auto d = torch::mm(x, ut);
        for (double t = 0; t < nt; ++t) (void)torch::mm(k, s).data_ptr();
        (void)d.data_ptr();
      };
      const auto g32 = time_call([&] { gemms(xs, Ut, K, S); }, a.repeats, a.warmup);
      const auto g16 = time_call([&] { gemms(xb, Utb, Kb, Sb); }, a.repeats, a.warmup);
      const double gemm_gflops = flops / (g32.median_ms * 1e6);
      for (auto dtype : dtypes)
        for (int64_t block : blocks) {
          field.set_query_options(block, dtype);
          auto call = [&] { (void)field.attractions(xs, xl)[0].data_ptr(); };
          const auto t = time_call(call, a.repeats, a.warmup);
          const auto mem = measure_memory_added(call);
          const double gflops = flops / (t.median_ms * 1e6);
          table.add_row({std::to_string(B), std::to_string(U.size(0)), fixed(pairs / B, 0), to_string(dtype),
                         block == 0 ? "all" : std::to_string(block), fixed(t.median_ms, 1), fixed(gflops, 1),
                         fixed(g32.median_ms, 1), fixed(gemm_gflops, 1), fixed(100.0 * gflops / gemm_gflops, 0) + "%",
                         fixed(g16.median_ms, 1), fixed(mem.peak_added_mib, 1)});
          rows.push_back({{"B", B}, {"M", U.size(0)}, {"touched_per_query", pairs / B}, {"shards", a.shards}, {"D", D}, {"products", to_string(dtype)},
                          {"landmark_block", block}, {"attraction_ms", t.median_ms}, {"gflops", gflops},
                          {"gemm_f32_ms", g32.median_ms}, {"gemm_f32_gflops", gemm_gflops},
                          {"fraction_of_gemm_rate", gflops / gemm_gflops}, {"gemm_bf16_ms", g16.median_ms},
                          {"peak_mib_added", mem.peak_added_mib}, {"samples_ms", t.samples_ms}});
          std::cerr << "." << std::flush;
        }
    }
  }
  std::cerr << "\n";
  table.print(std::cout);
  if (!a.report.empty()) {
    write_json(a.report, {{"benchmark", "attraction"}, {"machine", to_json(machine)}, {"rows", rows},
                          {"config", {{"batches", batches}, {"landmarks", budgets}, {"blocks", blocks},
                                      {"dtypes", a.dtypes}, {"temperatures", pc.temperatures}, {"real", Y_n},
                                      {"features", a.features}, {"conditional", a.conditional},
                                      {"repeats", a.repeats}, {"warmup", a.warmup}, {"seed", a.seed}}}});
    std::cout << "report: " << a.report << "\n";
  }
}

}  // namespace

void add_bench_attraction(CLI::App& bench) {
  static Args a;
  auto* cmd = bench.add_subcommand("attraction",
                                   "Projected attraction vs its matrix products alone, per landmark block and product "
                                   "dtype (GFLOP/s and % of the measured float32 GEMM rate)");
  cmd->add_option("--b", a.batches, "Query batch sizes B")->capture_default_str();
  cmd->add_option("--m", a.landmarks, "Landmark budgets M")->capture_default_str();
  cmd->add_option("--blocks", a.blocks, "Landmark blocks to compare (0: all landmarks at once)")->capture_default_str();
  cmd->add_option("--matmul-dtype", a.dtypes, "Product dtypes to compare: float32, bf16")->capture_default_str();
  cmd->add_option("--temps", a.temps, "Temperatures")->capture_default_str();
  cmd->add_option("--features", a.features, "Feature group (pixels: D = 784)")->capture_default_str();
  cmd->add_option("--real", a.real, "Real samples summarised")->capture_default_str();
  cmd->add_flag("--conditional", a.conditional, "Per-class summaries and labelled queries (10 classes)");
  cmd->add_option("--shards", a.shards, "Class shards (with --conditional): each query meets its own shard only")
      ->capture_default_str();
  cmd->add_option("--repeats", a.repeats, "Timed calls (median reported)")->capture_default_str();
  cmd->add_option("--warmup", a.warmup, "Untimed calls first")->capture_default_str();
  add_dataset_options(cmd, a.dataset, a.data_dir, a.seed, a.report);
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
