#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)

#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/interrupt.h"
#include "driftx/landmarks.h"
#include "driftx/runtime.h"
#include "driftx/sha256.h"
#include "driftx/timing.h"
#include "driftx/train.h"

#include <torch/cuda.h>

namespace driftx {

namespace {

using Clock = std::chrono::steady_clock;

// Splits a step's wall-clock into StepPhases: lap(phase) adds the time since the previous lap (or since
// construction / restart) to that phase; nothing is kept when stats is null. With sync, a CUDA device
// is synchronised first so queued kernels count where they were launched.
class PhaseClock {
 public:
  PhaseClock(StepStats* stats, bool sync) : stats_(stats), sync_(sync) {}
  void lap(double StepPhases::*phase) {
    if (!stats_) return;
    if (sync_) torch::cuda::synchronize();
    stats_->phases.*phase += seconds_since(tick_);
    restart();
  }
  void restart() { tick_ = Clock::now(); }

 private:
  StepStats* stats_;
  bool sync_;
  Clock::time_point tick_ = Clock::now();
};

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int s = static_cast<int>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, s % 3600 / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

}  // namespace

// ---- configuration ------------------------------------------------------------------------------

nlohmann::json TrainConfig::to_json() const {
  return {{"dataset", dataset}, {"data_dir", data_dir}, {"method", method}, {"features", features},
          {"conditional", conditional}, {"classes_per_step", classes_per_step}, {"gen_per_class", gen_per_class},
          {"pos_per_class", pos_per_class}, {"positives", positives}, {"per_location", per_location},
          {"temperatures", temperatures}, {"affinity_floor", affinity_floor},
          {"matmul_dtype", matmul_dtype},
          {"guidance", guidance}, {"guidance_negatives", guidance_negatives}, {"alpha_max", alpha_max},
          {"alpha_power", alpha_power},
          {"landmark_strategy", landmark_strategy}, {"landmarks", landmarks},
          {"landmark_shards", landmark_shards}, {"vector_maps", vector_maps}, {"ridge", ridge},
          {"repulsion", repulsion}, {"cache_dir", cache_dir}, {"noise_dim", noise_dim}, {"width", width}, {"lr", lr},
          {"warmup_steps", warmup_steps}, {"weight_decay", weight_decay}, {"grad_clip", grad_clip}, {"ema", ema},
          {"steps", steps}, {"time_budget_s", time_budget_s}, {"log_every", log_every},
          {"sample_every", sample_every}, {"checkpoint_every", checkpoint_every}, {"out_dir", out_dir},
          {"seed", seed}, {"device", device}};
}

namespace {
// One field of a configuration file. Integers must be JSON integers in the field's range: nlohmann
// converts 1e30 to int64 with undefined behaviour and -1 to uint64 as 2^64 - 1 (found by
// fuzz/fuzz_train_config). Other types keep nlohmann's own checks (type_error, reported below).
template <typename T>
void read_config_field(const nlohmann::json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it == j.end()) return;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const bool in_range = it->is_number_integer() &&
                          (std::is_signed_v<T> ? !it->is_number_unsigned() || it->template get<uint64_t>() <= uint64_t(INT64_MAX)
                                               : it->is_number_unsigned());
    DRIFTX_CHECK(in_range, "training configuration: '{}' must be {} integer, got {}", key,
                 std::is_signed_v<T> ? "a 64-bit" : "a non-negative 64-bit", it->dump());
  }
  out = it->template get<T>();
}
}  // namespace

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  DRIFTX_CHECK(j.is_object(), "training configuration must be a JSON object, got {}", j.type_name());
  const auto known = c.to_json();
  for (const auto& [key, value] : j.items())  // "ranks": a record config.json keeps, never read back
    DRIFTX_CHECK(known.contains(key) || key == "ranks",
                 "training configuration: unknown key '{}' (misspelt? the keys are those of a run's config.json)", key);
  try {
#define DRIFTX_GET(field) read_config_field(j, #field, c.field)
    DRIFTX_GET(dataset); DRIFTX_GET(data_dir); DRIFTX_GET(method); DRIFTX_GET(features); DRIFTX_GET(conditional);
    DRIFTX_GET(classes_per_step); DRIFTX_GET(gen_per_class); DRIFTX_GET(pos_per_class); DRIFTX_GET(positives);
    DRIFTX_GET(per_location); DRIFTX_GET(temperatures); DRIFTX_GET(affinity_floor); DRIFTX_GET(matmul_dtype);
    DRIFTX_GET(guidance); DRIFTX_GET(guidance_negatives); DRIFTX_GET(alpha_max); DRIFTX_GET(alpha_power);
    DRIFTX_GET(landmark_strategy); DRIFTX_GET(landmarks); DRIFTX_GET(landmark_shards); DRIFTX_GET(vector_maps);
    DRIFTX_GET(ridge);
    DRIFTX_GET(repulsion); DRIFTX_GET(cache_dir); DRIFTX_GET(noise_dim); DRIFTX_GET(width); DRIFTX_GET(lr);
    DRIFTX_GET(warmup_steps); DRIFTX_GET(weight_decay); DRIFTX_GET(grad_clip); DRIFTX_GET(ema); DRIFTX_GET(steps);
    DRIFTX_GET(time_budget_s); DRIFTX_GET(log_every); DRIFTX_GET(sample_every); DRIFTX_GET(checkpoint_every);
    DRIFTX_GET(out_dir); DRIFTX_GET(seed); DRIFTX_GET(device);
#undef DRIFTX_GET
  } catch (const nlohmann::json::exception& e) {
    fail("training configuration has a field of the wrong type: {}", e.what());
  }
  return c;
}

const std::vector<std::string>& TrainConfig::learned_keys() {
  static const std::vector<std::string> keys{
      "dataset", "method", "features", "conditional", "classes_per_step", "gen_per_class", "pos_per_class",
      "per_location", "temperatures", "affinity_floor", "matmul_dtype", "guidance", "guidance_negatives",
      "alpha_max", "alpha_power", "landmark_strategy", "landmarks", "landmark_shards", "vector_maps", "ridge", "repulsion",
      "noise_dim", "width", "lr", "warmup_steps", "weight_decay", "grad_clip", "ema", "seed"};
  return keys;
}

void TrainConfig::validate() const {
  DRIFTX_CHECK(method == "driftxpress" || method == "standard", "--method must be driftxpress or standard, got '{}'", method);
  DRIFTX_CHECK(classes_per_step >= 1 && gen_per_class >= 2, "need --classes-per-step >= 1 and --gen-per-class >= 2");
  DRIFTX_CHECK(pos_per_class >= 1, "--pos-per-class must be >= 1");
  DRIFTX_CHECK(positives == "cached" || positives == "encode", "--positives must be cached or encode, got '{}'", positives);
  DRIFTX_CHECK(landmarks >= 1, "--landmarks must be >= 1");
  DRIFTX_CHECK(landmark_shards >= 1 && landmark_shards <= landmarks, "--landmark-shards must be in [1, --landmarks], got {}",
               landmark_shards);
  // Bounded so a typo is one line here, not an allocator failure after the data is loaded (width 1024
  // is already 8x the SPEC prototype's 128 and ~40 M parameters).
  DRIFTX_CHECK(width >= 8 && width <= 1024 && width % 8 == 0, "--width must be a multiple of 8 in [8, 1024], got {}", width);
  DRIFTX_CHECK(noise_dim >= 1 && noise_dim <= 4096, "--noise-dim must be in [1, 4096], got {}", noise_dim);
  DRIFTX_CHECK(lr >= 0 && std::isfinite(lr), "--lr must be positive (or 0: the method's default)");
  DRIFTX_CHECK(ema >= 0 && ema < 1, "--ema must be in [0, 1)");
  DRIFTX_CHECK(grad_clip >= 0 && warmup_steps >= 0 && weight_decay >= 0, "--grad-clip, --warmup and --weight-decay must be >= 0");
  DRIFTX_CHECK(steps >= 0 && time_budget_s >= 0, "--steps and --time-budget must be >= 0");
  // A number too large for int64 reaches here saturated (INT64_MAX): refuse it instead of running "forever".
  DRIFTX_CHECK(steps <= int64_t{1000000000000}, "--steps must be <= 1e12, got {}", steps);
  DRIFTX_CHECK(log_every >= 1, "--log-every must be >= 1, got {}", log_every);
  DRIFTX_CHECK(sample_every >= 0, "--sample-every must be >= 0, got {}", sample_every);
  DRIFTX_CHECK(checkpoint_every >= 0, "--checkpoint-every must be >= 0, got {}", checkpoint_every);
  if (guidance) {
    DRIFTX_CHECK(conditional, "--guidance needs a class-conditional model (drop --unconditional)");
    DRIFTX_CHECK(alpha_max >= 1 && std::isfinite(alpha_max), "--alpha-max must be >= 1, got {}", alpha_max);
    DRIFTX_CHECK(alpha_power > 0 && std::isfinite(alpha_power), "--alpha-power must be positive, got {}", alpha_power);
    DRIFTX_CHECK(guidance_negatives >= 1, "--guidance-negatives must be >= 1");
  }
  for (double t : temperatures) DRIFTX_CHECK(t > 0, "--temps: temperature {} must be positive", t);
  DRIFTX_CHECK(!out_dir.empty(), "--out must name a directory");
  parse_feature_groups(features);
  parse_landmark_strategy(landmark_strategy);
  parse_repulsion(repulsion);
  parse_product_precision(matmul_dtype);
}

torch::Tensor sample_guidance_alpha(const torch::Tensor& u, double alpha_max, double power) {
  auto uu = u.to(torch::kFloat64);
  if (std::abs(power - 1.0) < 1e-12) return torch::pow(alpha_max, uu).to(torch::kFloat32);
  // F(a) = (1 - a^(1-k)) / (1 - amax^(1-k))  =>  a = (1 - u (1 - amax^(1-k)))^(1 / (1-k))
  const double e = 1.0 - power;
  return torch::pow(1.0 - uu * (1.0 - std::pow(alpha_max, e)), 1.0 / e).to(torch::kFloat32);
}

double default_learning_rate(const std::string& method) { return method == "standard" ? 8e-3 : 4e-3; }

std::vector<double> default_temperatures(const std::string& method) {
  // Both methods: the paper's. (DriftXpress defaulted to 0.1/0.2/0.5 while its kernel ratios underflowed
  // at sharp temperatures; BENCHMARKS.md has the search that re-decided it.)
  (void)method;
  return {0.02, 0.05, 0.2};
}

// ---- feature groups -----------------------------------------------------------------------------

namespace {

// The FID evaluator must never shape the samples it later scores (SPEC §6): refuse a torchscript
// feature map that is an evaluator file, by content (SHA-256) or by living in the models directory.
void refuse_evaluator_features(const std::vector<std::string>& groups) {
  const std::string prefix = "torchscript:";
  for (const auto& g : groups) {
    if (g.rfind(prefix, 0) != 0) continue;
    const std::string path = g.substr(prefix.size());
    const auto canonical = std::filesystem::weakly_canonical(path);
    const auto models = std::filesystem::weakly_canonical(resolve_models_dir());
    const bool in_models = canonical.parent_path() == models;
    const std::string sha = std::filesystem::exists(path) ? sha256_file_hex(path) : "";
    for (const auto& d : dataset_names()) {
      std::string eval_sha;
      try {
        eval_sha = evaluator_sha256(d);
      } catch (const Error&) {
        continue;  // no shipped evaluator for this dataset
      }
      DRIFTX_CHECK(!in_models && sha != eval_sha,
                   "--features {}: that is the FID evaluator ({}); a training feature map must never be the "
                   "evaluation network. Use pixels/multiscale or another encoder", path, d);
    }
  }
}

// A group's rows hold V vectors of d values (feature_vectors); with per_location each vector is its own
// kernel. The fields batch over blocks of rows, one per (class, vector), class-major:
// split_vectors turns `groups` class groups of n rows (groups*n x V*d) into (groups*V) x n x d blocks,
// join_vectors turns them back. The split is an index_select of the rows of a contiguous view, not a
// permute: under LibTorch 1.13 on the CPU a permute between the encoder and the loss gave its
// convolutions' backward a strided gradient and wrong, run-dependent results (README, encoder groups).
torch::Tensor split_vectors(const torch::Tensor& rows, int64_t groups, int64_t V) {
  const int64_t n = rows.size(0) / groups, d = rows.size(1) / V;
  if (V == 1) return rows.reshape({groups, n, d});
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(rows.device());
  // Block (g, v) row i is vector v of row g*n + i: row (g*n + i)*V + v of the rows x V view.
  auto g = torch::arange(groups, opts).view({groups, 1, 1}), v = torch::arange(V, opts).view({1, V, 1});
  auto i = torch::arange(n, opts).view({1, 1, n});
  auto order = ((g * n + i) * V + v).reshape({-1});
  return rows.contiguous().view({groups * n * V, d}).index_select(0, order).view({groups * V, n, d});
}
torch::Tensor join_vectors(const torch::Tensor& blocks, int64_t groups, int64_t V) {  // no gradient needed
  const int64_t n = blocks.size(1), d = blocks.size(2);
  return blocks.reshape({groups, V, n, d}).permute({0, 2, 1, 3}).reshape({groups * n, V * d});
}

// The training set's features for every group of a run, on the training device: computed in one pass
// over the data (encoder groups share each chunk's forward) and kept once per (data, groups, device)
// while some trainer holds them, so ranks that are threads of one process compute them once (the second
// waits for the first). The standard method keeps its groups' tensors as cached positives; DriftXpress
// drops them after its summaries are built.
std::shared_ptr<const std::vector<torch::Tensor>> shared_dataset_features(const std::string& key, const torch::Tensor& images,
                                                                         const std::vector<std::string>& groups,
                                                                         const torch::Device& device) {
  static std::map<std::string, std::weak_ptr<const std::vector<torch::Tensor>>> cache;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[fmt::format("{}|{}|{}", key, fmt::join(groups, ","), device.str())];
  if (auto held = slot.lock()) return held;
  auto made = std::make_shared<const std::vector<torch::Tensor>>(dataset_features(images.to(device), groups));
  slot = made;
  return made;
}

}  // namespace

struct Trainer::Group {
  std::string name;
  int64_t vectors = 1;                        // V: kernels per row (per_location), else 1
  std::unique_ptr<ProjectedField> projected;  // driftxpress
  std::unique_ptr<StandardField> standard;    // standard
  std::shared_ptr<const torch::Tensor> real;  // standard, positives = cached: |Y| x D on the device
};

Trainer::Trainer(TrainConfig config, bool resume, std::shared_ptr<Communicator> comm)
    : config_(std::move(config)), comm_(comm ? std::move(comm) : Communicator::single()),
      device_(parse_device(config_.device)),
      rng_(at::detail::createCPUGenerator(config_.seed)) {
  if (config_.temperatures.empty()) config_.temperatures = default_temperatures(config_.method);
  if (config_.lr == 0) config_.lr = default_learning_rate(config_.method);
  config_.validate();
  const auto t0 = Clock::now();
  const std::string cache_dir = config_.cache_dir.empty()
                                    ? (std::filesystem::path(config_.out_dir).parent_path() / "cache").string()
                                    : config_.cache_dir;
  // Before anything is loaded: a second process on this directory, or a resume without a checkpoint,
  // is refused at once.
  on_main_agreed([&] {
    make_dirs(config_.out_dir);
    lock_ = std::make_unique<DirectoryLock>(config_.out_dir, "run directory");
    for (const auto& dir : {config_.out_dir, config_.out_dir + "/samples", cache_dir}) remove_stale_temp_files(dir);
  });
  const std::string ckpt = config_.out_dir + "/checkpoint.pt";
  if (resume) {
    DRIFTX_CHECK(std::filesystem::exists(ckpt), "--resume: no checkpoint at '{}'", ckpt);
    // Run-control fields (steps, budget, intervals) may change on resume; what is learned may not.
    const auto stored = checkpoint_config(ckpt).to_json(), now = config_.to_json();
    for (const auto& key : TrainConfig::learned_keys())
      DRIFTX_CHECK(stored[key] == now[key], "--resume: checkpoint '{}' was trained with {} = {}, this run has {}", ckpt,
                   key, stored[key].dump(), now[key].dump());
  }
  data_ = load_dataset(config_.dataset, "train", config_.data_dir);
  // Encoded positives are gathered on the training device: one copy of the images there.
  const bool encode_positives = config_.method == "standard" && config_.positives == "encode";
  real_images_ = encode_positives ? data_.images.to(device_) : data_.images;
  if (!config_.conditional) config_.classes_per_step = 1;
  DRIFTX_CHECK(config_.classes_per_step <= data_.num_classes, "--classes-per-step {} exceeds the {} classes of {}",
               config_.classes_per_step, data_.num_classes, config_.dataset);
  DRIFTX_CHECK(config_.classes_per_step % comm_->world_size() == 0,
               "--classes-per-step {} is not divisible by the world size {}: each rank trains on an equal share of "
               "the classes of every batch{}", config_.classes_per_step, comm_->world_size(),
               config_.conditional ? "" : " (an unconditional run has one class per step: train it on one rank)");

  GeneratorConfig gc;
  gc.noise_dim = config_.noise_dim;
  gc.width = config_.width;
  gc.channels = data_.images.size(1);
  gc.image_size = data_.images.size(2);
  gc.num_classes = config_.conditional ? data_.num_classes : 0;
  gc.alpha_conditioning = config_.guidance;
  {
    // Parameter initialisation draws from LibTorch's global generator: ranks that are threads of one
    // process (on_local_threads) must not interleave their draws, or the same seed gives other weights.
    static std::mutex init_mutex;
    std::lock_guard<std::mutex> lock(init_mutex);
    torch::manual_seed(config_.seed);
    generator_ = Generator(gc);
    ema_ = Generator(gc);
  }
  copy_parameters(*ema_, *generator_);
  generator_->to(device_);
  ema_->to(device_);
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      generator_->parameters(),
      torch::optim::AdamWOptions(config_.lr).betas({0.9, 0.95}).weight_decay(config_.weight_decay));

  // Fixed noise for sample grids: one row per class (10 per row).
  {
    auto g = at::detail::createCPUGenerator(config_.seed + 7919);
    const int64_t rows = config_.conditional ? data_.num_classes : 8;
    fixed_z_ = torch::randn({rows * 10, config_.noise_dim}, g);
    fixed_labels_ = config_.conditional ? torch::arange(rows).repeat_interleave(10) : torch::Tensor();
  }

  if (comm_->is_main()) make_dirs(config_.out_dir + "/samples");
  refuse_evaluator_features(parse_feature_groups(config_.features));
  // The training set's features, one pass for every group, shared by ranks that are threads; not needed
  // by a standard run that encodes its positives each step.
  const std::string data_key = fmt::format("{}|{}|{}", config_.dataset, resolve_data_dir(config_.data_dir),
                                           tensor_fingerprint(data_.labels));
  if (config_.method == "driftxpress") {  // before any group's features and landmarks are computed
    const int64_t shards = config_.landmark_shards;
    DRIFTX_CHECK(shards == 1 || (config_.conditional && data_.num_classes % shards == 0),
                 "--landmark-shards {}: needs a class-conditional run and must divide the {} classes of {}", shards,
                 data_.num_classes, config_.dataset);
    DRIFTX_CHECK(!config_.vector_maps || (config_.conditional && (shards == 1 || shards == data_.num_classes)),
                 "--vector-maps gives every (class, vector) its own map: it needs a class-conditional run, and "
                 "--landmark-shards must be 1 or the {} classes of {}", data_.num_classes, config_.dataset);
  }
  const auto names = expand_feature_groups(parse_feature_groups(config_.features), data_.images.narrow(0, 0, 2));
  // On the training device, as the generated samples' features are; DriftXpress brings each group to the
  // host, where landmarks and the float64 summaries are built. (On the H200, ten passes of the encoder
  // over the training set on the host, one per group, were most of DriftXpress's 32-39 s precompute.)
  auto all_features = encode_positives ? nullptr : shared_dataset_features(data_key, data_.images, names, device_);
  for (size_t gi = 0; gi < names.size(); ++gi) {
    const auto& name = names[gi];
    auto group = std::make_unique<Group>();
    group->name = name;
    group->vectors = config_.per_location ? feature_vectors(name) : 1;
    const int64_t V = group->vectors;
    if (config_.method == "standard") {
      StandardFieldConfig sc;
      sc.temperatures = config_.temperatures;
      sc.affinity_floor = config_.affinity_floor;
      sc.products = parse_product_precision(config_.matmul_dtype);
      group->standard = std::make_unique<StandardField>(sc);
      // Aliasing: the group's tensor, keeping every group's (one allocation per run) alive with it.
      if (!encode_positives) group->real = std::shared_ptr<const torch::Tensor>(all_features, &(*all_features)[gi]);
    } else {
      DRIFTX_CHECK(V == 1 || !config_.guidance, "--guidance with the per-location group {} is not supported by driftxpress "
                   "(its unconditional summaries pool every vector): use --per-location false or --method standard", name);
      // DriftXpress: landmarks and summaries once, in this group's feature space; cached on disk. A group
      // of V vectors is summarised as V "classes" per class (class * V + vector) sharing one set of
      // landmarks drawn from all its vectors, balanced by class.
      auto feats = (*all_features)[gi].to(torch::kCPU);
      auto vecs = feats.reshape({-1, feats.size(1) / V});  // vector v of image i: row i * V + v
      auto vec_class = data_.labels.repeat_interleave(V);
      auto vec_index = torch::arange(V).repeat({data_.size()});
      auto vec_group = config_.conditional ? vec_class * V + vec_index : V > 1 ? vec_index : torch::Tensor();
      // Vector maps: --landmarks per vector, balanced over (class, vector), so --landmarks / classes per map.
      const bool vector_maps = config_.vector_maps;
      LandmarkConfig lc;
      lc.strategy = parse_landmark_strategy(config_.landmark_strategy);
      lc.total = config_.landmarks * (vector_maps ? V : 1);
      lc.seed = config_.seed;
      auto U_idx = select_landmarks(vecs, vector_maps ? vec_group : vec_class, lc);
      comm_->broadcast(U_idx);  // every rank summarises against rank 0's landmarks and scale
      auto U = vecs.index_select(0, U_idx);
      auto S = torch::tensor(projected_feature_scale(vecs, U), torch::kFloat64);
      comm_->broadcast(S);
      ProjectedFieldConfig pc;
      pc.temperatures = config_.temperatures;
      pc.ridge = config_.ridge;
      pc.repulsion = parse_repulsion(config_.repulsion);
      pc.products = parse_product_precision(config_.matmul_dtype);
      // (class, vector) blocks of the batch are contiguous and equal: one batched product, not a loop of
      // classes x V small ones.
      // The same for vector maps: every block meets its own map in one batched product (shard_blocks).
      if (V > 1 || vector_maps) pc.class_batching = ClassBatching::Batched;
      const int64_t shards = config_.landmark_shards;
      // Summary rows class * V + vector: with K | classes, all vectors of a class fall in its class's shard;
      // with vector maps every row is its own shard.
      const int64_t rows = (config_.conditional ? data_.num_classes : 1) * V;
      const ShardLayout layout{rows, vector_maps ? rows : shards};
      group->projected = std::make_unique<ProjectedField>(
          U, (vec_group.defined() ? vec_group : vec_class).index_select(0, U_idx), layout, S.item<double>(), pc);
      const std::string fingerprint = tensor_fingerprint(feats) + "/" + tensor_fingerprint(data_.labels);
      nlohmann::json key = {{"d", config_.dataset}, {"g", name}, {"c", config_.conditional},
                            {"s", config_.landmark_strategy}, {"m", config_.landmarks}, {"seed", config_.seed},
                            {"t", config_.temperatures}, {"r", config_.ridge}};
      if (V > 1) key["v"] = V;  // only when not the default: the names of caches made before stay valid
      if (layout.shards > 1) key["k"] = layout.shards;
      // The group name in the file name with '/' and ':' (encoder:mnist/l2.loc, torchscript:PATH) made safe;
      // the key's hash tells groups apart.
      std::string file_name = name;
      for (auto& ch : file_name)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '_') ch = '_';
      const std::string cache = fmt::format("{}/summary-{}-{}-{}.pt", cache_dir, config_.dataset, file_name,
                                            tensor_fingerprint(bytes_to_tensor(key.dump())).substr(0, 8));
      // Rank 0 owns the cache: it loads and broadcasts, or every rank summarises its share of the data.
      bool loaded = false, cached = false;
      const auto ts = Clock::now();
      if (comm_->is_main() && std::filesystem::exists(cache)) {
        try {
          group->projected->load(cache, config_.landmark_strategy, fingerprint);
          loaded = true;
        } catch (const std::exception& e) {  // a corrupted cache is never used: rebuilt from the data
          std::cerr << "note: rebuilding summaries: " << e.what() << std::endl;
        }
      }
      if ((loaded = comm_->broadcast_flag(loaded))) {
        broadcast_summaries(*group->projected, *comm_);
      } else {
        // Class-sorted rows: add_data's chunks then hold one or two classes each, not all of them (with
        // classes x V summary rows, e.g. 490, an unsorted chunk cost 490 small products per temperature).
        if (vec_group.defined()) {
          auto order = std::get<1>(vec_group.sort(/*stable=*/true, 0, false));
          add_data_distributed(*group->projected, vecs.index_select(0, order), vec_group.index_select(0, order), *comm_);
        } else {
          add_data_distributed(*group->projected, vecs, vec_group, *comm_);
        }
        if (comm_->is_main()) {
          // The cache only saves time: a failure to write it (full disk, read-only directory) is a note.
          try {
            make_dirs(cache_dir);
            group->projected->save(cache, config_.landmark_strategy, fingerprint);
            cached = true;
          } catch (const std::exception& e) {
            std::cerr << "note: could not cache summaries: " << e.what() << std::endl;
          }
        }
      }
      summary_s_ += seconds_since(ts);
      if (comm_->is_main()) std::cout << fmt::format("summaries[{}]: D={} M={} S={:.4g} cond(W+rI)<={:.3g} {}\n", name,
                               V == 1 ? std::to_string(vecs.size(1)) : fmt::format("{}x{}", V, vecs.size(1)),
                               U.size(0), group->projected->scale(), group->projected->max_condition_number(),
                               loaded ? "(from cache " + cache + ")" : cached ? "(built, cached at " + cache + ")" : "(built, not cached)");
    }
    groups_.push_back(std::move(group));
  }
  precompute_s_ = seconds_since(t0);
  if (comm_->is_main()) {
    const auto m = memory();
    const auto mib = [](int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
    if (m.feature_cache > 0) std::cout << fmt::format("memory: cached real features {:.1f} MiB\n", mib(m.feature_cache));
    if (m.summaries > 0)
      std::cout << fmt::format("memory: summaries {:.1f} MiB (float64) + {:.1f} MiB folded for queries\n",
                               mib(m.summaries), mib(m.folded));
  }
  // The time budget counts the precompute of a fresh run (equal-deadline comparisons); a resumed run
  // continues the clock stored in its checkpoint.
  elapsed_before_s_ = precompute_s_;
  if (resume) load_checkpoint(ckpt);
  // Same starting point on every rank (initialisation is seeded; this makes it exact).
  for (auto* g : {&generator_, &ema_}) {
    broadcast_tensors((*g)->parameters(), *comm_);
    broadcast_tensors((*g)->buffers(), *comm_);
  }
  on_main_agreed([&] {
    auto j = config_.to_json();
    j["ranks"] = comm_->world_size();  // a record (rounding differs between rank counts); read back by --resume
    write_json(config_.out_dir + "/config.json", j);
  });
}

torch::Tensor Trainer::share_rows(const torch::Tensor& batch) const {
  const int64_t W = comm_->world_size();
  if (W == 1 || !batch.defined()) return batch;
  // Batches are class-major with classes_per_step divisible by W: rank r's rows are its classes' rows.
  const int64_t rows = batch.size(0) / W;
  return batch.narrow(0, comm_->rank() * rows, rows);
}

void Trainer::average_gradients(StepStats& stats) {
  const int64_t W = comm_->world_size();
  if (W == 1) return;
  torch::NoGradGuard no_grad;
  // One flat buffer: every parameter's gradient, then the logged numbers. Each rank's loss is the mean
  // over its equal share of the batch, so the mean of the ranks' gradients is the whole batch's.
  // Parameters without a gradient (unused inputs, e.g. the guidance embedding) have none on any rank.
  std::vector<torch::Tensor> params;
  for (auto& p : generator_->parameters())
    if (p.grad().defined()) params.push_back(p);
  std::vector<torch::Tensor> parts;
  for (auto& p : params) parts.push_back(p.grad().reshape({-1}));
  std::vector<double> logged{stats.loss, stats.clamped_fraction};
  logged.insert(logged.end(), stats.group_loss.begin(), stats.group_loss.end());
  parts.push_back(torch::tensor(logged, torch::kFloat64).to(device_, torch::kFloat32));
  auto flat = torch::cat(parts);
  comm_->all_reduce_sum(flat);
  flat.div_(static_cast<double>(W));
  int64_t offset = 0;
  for (auto& p : params) {
    p.mutable_grad().copy_(flat.narrow(0, offset, p.numel()).view_as(p));
    offset += p.numel();
  }
  auto back = flat.narrow(0, offset, static_cast<int64_t>(logged.size())).to(torch::kCPU, torch::kFloat64);
  stats.loss = back[0].item<double>();
  stats.clamped_fraction = back[1].item<double>();
  for (size_t g = 0; g < stats.group_loss.size(); ++g) stats.group_loss[g] = back[2 + g].item<double>();
}

Trainer::~Trainer() = default;

Trainer::Memory Trainer::memory() const {
  Memory m;
  for (const auto& g : groups_) {
    if (g->real) m.feature_cache += g->real->nbytes();
    if (!g->projected) continue;
    m.summaries += g->projected->summary_bytes();
    m.folded += g->projected->folded_bytes();
  }
  return m;
}

void Trainer::on_main_agreed(const std::function<void()>& write) {
  std::string error;
  if (comm_->is_main()) {
    try {
      write();
    } catch (const std::exception& e) {
      error = e.what();
      error = error.substr(0, error.find('\n'));  // LibTorch appends a backtrace
    }
  }
  if (comm_->any(!error.empty()))
    fail("{}", comm_->is_main() ? error : fmt::format("rank {}: stopped because rank 0 failed (its error says why)", comm_->rank()));
}

Trainer::Batch Trainer::sample_batch() {
  const int64_t Nc = config_.classes_per_step, N = config_.gen_per_class;
  Batch b;
  if (config_.conditional) {
    auto classes = std::get<0>(torch::randperm(data_.num_classes, rng_).narrow(0, 0, Nc).sort());
    b.labels = classes.repeat_interleave(N);  // class-major: group g holds rows g*N .. g*N+N-1
  }
  b.z = torch::randn({Nc * N, config_.noise_dim}, rng_);
  if (config_.guidance)  // one alpha per class group
    b.alpha = sample_guidance_alpha(torch::rand({Nc}, rng_), config_.alpha_max, config_.alpha_power).repeat_interleave(N);
  return b;
}

torch::Tensor Trainer::generate(Generator& g, const Batch& b) {
  auto on = [&](const torch::Tensor& t) { return t.defined() ? t.to(device_) : t; };
  return g->forward(b.z.to(device_), on(b.labels), on(b.alpha));
}

Trainer::Batch Trainer::share_batch(const Batch& b) const {
  return {share_rows(b.z), share_rows(b.labels), share_rows(b.alpha)};
}

// images: this rank's rows of the batch (share_batch); batch: the whole batch.
torch::Tensor Trainer::group_loss(size_t g, const torch::Tensor& images, const Batch& batch, StepStats* stats,
                                  std::vector<torch::Tensor>* targets) {
  const auto& group = *groups_[g];
  const auto& labels = batch.labels;
  const int64_t Nc = config_.classes_per_step, N = config_.gen_per_class;
  // Guidance: the unconditional real negatives of each row carry total weight (alpha - 1)(N - 1).
  // Everything below stays on the images' device (issue 12): the fields fold their summaries there.
  const auto mass = batch.alpha.defined() ? (batch.alpha.to(device_) - 1) * static_cast<double>(N - 1) : torch::Tensor();
  PhaseClock clock(stats, phase_sync_ && device_.is_cuda());
  auto phi = image_features(images, group.name);
  clock.lap(&StepPhases::features);
  const int64_t V = group.vectors, blocks = phi.size(0) / N;  // this rank's class groups
  if (group.projected) {
    // Queries in (class, vector) blocks of N rows, labelled class * V + vector (the summaries' layout).
    auto q = split_vectors(phi, blocks, V).reshape({blocks * V * N, -1});
    auto q_labels = share_rows(labels);
    if (V > 1) {
      // On the labels' device (the host for the trainer's batches: the field reads class blocks there
      // without a device sync).
      const auto on = q_labels.defined() ? q_labels.options().dtype(torch::kLong) : torch::TensorOptions(torch::kLong);
      auto vec = torch::arange(V, on).repeat_interleave(N).repeat({blocks});
      q_labels = q_labels.defined() ? q_labels.reshape({blocks, N}).select(1, 0).repeat_interleave(V * N) * V + vec : vec;
    }
    auto r = group.projected->compute(q, q_labels, share_rows(mass), comm_->sum_reducer());
    clock.lap(&StepPhases::fields);
    if (stats) stats->clamped_fraction += r.clamped_fraction / static_cast<double>(groups_.size());
    if (targets) targets->push_back(join_vectors(r.target.reshape({blocks * V, N, -1}), blocks, V));
    return r.loss;
  }
  // Standard: positives drawn every step, N_pos per class of the batch; their features gathered from the
  // cache of the training set's features (positives = cached) or encoded now.
  auto real_features = [&](const torch::Tensor& idx) {
    torch::NoGradGuard no_grad;
    return group.real ? group.real->index_select(0, idx.to(device_))
                      : image_features(real_images_.index_select(0, idx.to(device_)), group.name);
  };
  const int64_t P = config_.pos_per_class;
  const int64_t share = Nc / comm_->world_size(), first = comm_->rank() * share;  // this rank's classes
  std::vector<torch::Tensor> picks;
  for (int64_t c = 0; c < Nc; ++c) {
    torch::Tensor pool = config_.conditional ? data_.class_index[labels[c * N].item<int64_t>()] : torch::Tensor();
    const int64_t n = pool.defined() ? pool.numel() : data_.size();
    auto pick = torch::randint(n, {P}, rng_, torch::kLong);  // drawn on every rank: the RNGs stay in step
    if (c < first || c >= first + share) continue;
    picks.push_back(pool.defined() ? pool.index_select(0, pick) : pick);
  }
  StandardFieldInput in{split_vectors(phi, share, V), split_vectors(real_features(torch::cat(picks)), share, V), {}, {}};
  clock.lap(&StepPhases::positives);
  if (mass.defined()) {
    // U real samples of random classes per class group, each with weight (alpha - 1)(N - 1) / U; drawn
    // for the whole batch on every rank (the RNGs stay in step), encoded for this rank's classes.
    const int64_t U = config_.guidance_negatives;
    auto pick = torch::randint(data_.size(), {Nc, U}, rng_, torch::kLong).narrow(0, first, share).reshape({-1});
    in.negatives = split_vectors(real_features(pick), share, V);
    in.negative_weight = (mass.reshape({Nc, N}).select(1, 0).narrow(0, first, share) / static_cast<double>(U))
                             .repeat_interleave(V);
    clock.lap(&StepPhases::positives);
  }
  auto r = group.standard->compute(in, comm_->sum_reducer());
  clock.lap(&StepPhases::fields);
  if (targets) targets->push_back(join_vectors(r.goal, share, V) * r.coord_scale);
  return r.loss;
}

StepStats Trainer::step() {
  auto b = sample_batch();
  return step_on(b.z, b.labels, b.alpha);
}

StepStats Trainer::step_on(const torch::Tensor& z, const torch::Tensor& labels, const torch::Tensor& alpha) {
  const auto t0 = Clock::now();
  StepStats stats;
  generator_->train();
  const Batch batch{z, labels, alpha};
  PhaseClock clock(&stats, phase_sync_ && device_.is_cuda());
  auto images = generate(generator_, share_batch(batch));
  clock.lap(&StepPhases::generator);
  torch::Tensor loss;
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto l = group_loss(g, images, batch, &stats, nullptr);
    stats.group_loss.push_back(l.item<double>());
    loss = loss.defined() ? loss + l : l;
  }
  stats.loss = loss.item<double>();
  clock.restart();  // group_loss kept its own laps
  if (!std::isfinite(stats.loss)) {
    const bool saved = std::filesystem::exists(config_.out_dir + "/checkpoint.pt");
    fail("loss became {} at step {}: stopping; {} (try a lower --lr)", stats.loss, step_ + 1,
         saved ? fmt::format("the last good checkpoint is kept in {}", config_.out_dir)
               : std::string("no checkpoint had been written yet"));
  }
  const double lr = config_.lr * std::min(1.0, static_cast<double>(step_ + 1) / std::max<int64_t>(1, config_.warmup_steps));
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  optimizer_->zero_grad();
  loss.backward();
  clock.lap(&StepPhases::backward);
  average_gradients(stats);  // before clipping: every rank clips and steps the same gradient
  if (config_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(generator_->parameters(), config_.grad_clip);
  optimizer_->step();
  ++step_;
  update_ema();
  clock.lap(&StepPhases::optimizer);
  stats.step = step_;
  stats.step_seconds = seconds_since(t0);
  return stats;
}

void Trainer::update_ema() {
  torch::NoGradGuard no_grad;
  // Warm-up of the decay, min(ema, (1 + t) / (10 + t)), so short runs get a useful average.
  const double d = std::min(config_.ema, (1.0 + step_) / (10.0 + step_));
  auto src = generator_->parameters();
  auto dst = ema_->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(d).add_(src[i].detach(), 1.0 - d);
}

std::pair<double, std::vector<torch::Tensor>> Trainer::drift_targets(const torch::Tensor& z, const torch::Tensor& labels,
                                                                     const torch::Tensor& alpha) {
  std::vector<torch::Tensor> targets;
  double total = 0;
  torch::NoGradGuard no_grad;
  const Batch batch{z, labels, alpha};
  auto images = generate(generator_, share_batch(batch));
  for (size_t g = 0; g < groups_.size(); ++g) total += group_loss(g, images, batch, nullptr, &targets).item<double>();
  return {total, targets};
}

double Trainer::loss_against(const torch::Tensor& z, const torch::Tensor& labels, const std::vector<torch::Tensor>& targets,
                             const torch::Tensor& alpha) {
  torch::NoGradGuard no_grad;
  auto images = generate(generator_, share_batch({z, labels, alpha}));
  double total = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto phi = image_features(images, groups_[g]->name);
    // Targets are in each field's scaled coordinates; compare in the same coordinates.
    const double s = groups_[g]->projected ? groups_[g]->projected->scale() : 1.0;
    total += (phi / s - targets[g]).pow(2).mean().item<double>();
  }
  return total;
}

void Trainer::write_samples(const std::string& path, Generator& g) {
  torch::NoGradGuard no_grad;
  auto images = generate(g, {fixed_z_, fixed_labels_, {}});  // alpha = 1
  write_png_grid(path, images.to(torch::kCPU), 10);
}

// ---- checkpoints ----------------------------------------------------------------------------------

void Trainer::set_stop_rule(int64_t steps, double time_budget_s) {
  DRIFTX_CHECK(steps >= 0 && time_budget_s >= 0, "stop rule: steps and time budget must be >= 0");
  config_.steps = steps;
  config_.time_budget_s = time_budget_s;
}

void Trainer::save_checkpoint(const std::string& path) const { write_checkpoint(path, elapsed_before_s_); }

void Trainer::write_checkpoint(const std::string& path, double elapsed_s) const {
  torch::serialize::OutputArchive archive, gen_ar, ema_ar, opt_ar;
  generator_->save(gen_ar);
  ema_->save(ema_ar);
  optimizer_->save(opt_ar);
  archive.write("config", bytes_to_tensor(config_.to_json().dump()));
  archive.write("generator_config", bytes_to_tensor(generator_->config().to_json().dump()));
  archive.write("generator", gen_ar);
  archive.write("ema", ema_ar);
  archive.write("optimizer", opt_ar);
  archive.write("step", torch::tensor(step_));
  archive.write("elapsed_s", torch::tensor(elapsed_s, torch::kFloat64));
  archive.write("rng", rng_.get_state());
  std::ostringstream out;
  archive.save_to(out);
  write_checkpoint_bytes(path, out.str());
}

namespace {

// A checkpoint reader: `read` gets the opened archive. Past the checksum, an archive not written by
// driftx can still fail in LibTorch (c10::Error, or torch::jit::ErrorReport for damaged code) or in the
// JSON parser; every reader (train --resume, eval, sample, export) reports that in one line naming the
// file (found by fuzz/fuzz_checkpoint). driftx's own errors pass through.
template <typename Read>
auto read_checkpoint(const std::string& path, Read&& read) {
  try {
    auto archive = open_checkpoint(path);
    return read(archive);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("checkpoint '{}' has a valid checksum but cannot be read ({}): was it written by driftx?", path,
         exception_line(e));
  }
}

}  // namespace

void Trainer::load_checkpoint(const std::string& path) {
  read_checkpoint(path, [&](torch::serialize::InputArchive& archive) {
    torch::serialize::InputArchive gen_ar, ema_ar, opt_ar;
    torch::Tensor step, elapsed, rng;
    archive.read("generator", gen_ar);
    archive.read("ema", ema_ar);
    archive.read("optimizer", opt_ar);
    generator_->load(gen_ar);
    ema_->load(ema_ar);
    optimizer_->load(opt_ar);
    archive.read("step", step);
    archive.read("elapsed_s", elapsed);
    archive.read("rng", rng);
    step_ = step.item<int64_t>();
    elapsed_before_s_ = elapsed.item<double>();
    rng_.set_state(rng);
  });
}

TrainConfig checkpoint_config(const std::string& checkpoint_path) {
  return read_checkpoint(checkpoint_path, [](torch::serialize::InputArchive& archive) {
    torch::Tensor cfg;
    archive.read("config", cfg);
    return TrainConfig::from_json(nlohmann::json::parse(tensor_to_bytes(cfg)));
  });
}

Generator load_generator(const std::string& checkpoint_path, bool ema, GeneratorConfig* config) {
  return read_checkpoint(checkpoint_path, [&](torch::serialize::InputArchive& archive) {
    torch::serialize::InputArchive gen_ar;
    torch::Tensor gc;
    archive.read("generator_config", gc);
    auto cfg = GeneratorConfig::from_json(nlohmann::json::parse(tensor_to_bytes(gc)));
    Generator g(cfg);
    archive.read(ema ? "ema" : "generator", gen_ar);
    g->load(gen_ar);
    g->eval();
    if (config) *config = cfg;
    return g;
  });
}

// ---- the loop -------------------------------------------------------------------------------------

namespace {

// log.jsonl: one JSON object per line, each appended with one write() and checked, so a full disk is
// an error (not half a line and training going on).
class StepLog {
 public:
  // resume_step > 0: keep the lines up to that step (a killed run logged steps after its last
  // checkpoint, which the resumed run trains and logs again) and drop a torn last line.
  StepLog(std::string path, int64_t resume_step) : path_(std::move(path)) {
    if (resume_step > 0 && std::filesystem::exists(path_)) {
      std::istringstream in(read_file(path_));
      std::string kept, line;
      while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= resume_step)
          kept += line + "\n";
      }
      write_file_atomic(path_, kept);
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume_step > 0 ? 0 : O_TRUNC), 0644);
    DRIFTX_CHECK(fd_ >= 0, "cannot write '{}': {}", path_, std::strerror(errno));
  }
  ~StepLog() { ::close(fd_); }
  void append(const nlohmann::json& entry) {
    const std::string line = entry.dump() + "\n";
    ssize_t n;
    do n = ::write(fd_, line.data(), line.size()); while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(line.size())) {
      const std::string why = n < 0 ? std::strerror(errno) : "short write (disk full?)";
      if (n > 0) {  // a torn line must not stay behind as the log's last line
        const off_t end = ::lseek(fd_, 0, SEEK_END);
        if (::ftruncate(fd_, end - n) != 0) {
          // the error below stops the run either way; a resume drops the torn line
        }
      }
      fail("cannot write '{}': {}; training stopped, the last checkpoint is kept", path_, why);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

int64_t Trainer::run(const std::atomic<bool>* stop) {
  const auto t0 = Clock::now();
  const double budget = config_.time_budget_s;
  const bool tty = isatty(fileno(stdout));
  // A resumed run appends to its log (cut back to the checkpoint's step first: the steps after it are
  // trained again); a fresh run in an old directory starts a new one. Rank 0 writes.
  const bool main = comm_->is_main();
  const std::string log_path = config_.out_dir + "/log.jsonl";
  std::unique_ptr<StepLog> log;
  on_main_agreed([&] { log = std::make_unique<StepLog>(log_path, step_); });
  const std::string ckpt = config_.out_dir + "/checkpoint.pt";
  auto elapsed = [&] { return elapsed_before_s_ + seconds_since(t0); };
  if (config_.steps == 0 && budget == 0) fail("no stopping rule: give --steps N or --time-budget T");
  int64_t done = 0, steps_since = 0;
  double interval_s = 0;
  std::string stop_reason = "step limit";
  while (true) {
    if (config_.steps > 0 && step_ >= config_.steps) break;
    // Ranks stop together: one rank's deadline or Ctrl-C stops every rank before the same step.
    if (comm_->any(budget > 0 && elapsed() >= budget)) { stop_reason = "time budget"; break; }
    if (comm_->any(stop && stop->load())) { stop_reason = "interrupted"; break; }
    const StepStats s = step();
    ++done;
    ++steps_since;
    interval_s += s.step_seconds;
    const bool log_due = step_ % config_.log_every == 0 || (config_.steps > 0 && step_ == config_.steps);
    const bool sample_due = config_.sample_every > 0 && step_ % config_.sample_every == 0;
    const bool checkpoint_due = config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0;
    if (log_due || sample_due || checkpoint_due) on_main_agreed([&] {
      if (log_due) {
        const double per_step = interval_s / static_cast<double>(steps_since);
        const double ips = static_cast<double>(config_.classes_per_step * config_.gen_per_class) / std::max(per_step, 1e-9);
        nlohmann::json groups;
        for (size_t g = 0; g < groups_.size(); ++g) groups[groups_[g]->name] = s.group_loss[g];
        log->append(nlohmann::json{{"step", step_}, {"wall_s", elapsed()}, {"loss", s.loss}, {"loss_per_group", groups},
                                   {"images_per_s", ips}, {"clamped_fraction", s.clamped_fraction}, {"step_s", per_step}});
        double remaining = std::numeric_limits<double>::infinity();
        if (config_.steps > 0) remaining = (config_.steps - step_) * per_step;
        if (budget > 0) remaining = std::min(remaining, budget - elapsed());
        const std::string line = fmt::format("step {}{} loss {:.4f} {:.0f} img/s clamped {:.3f} ETA {}", step_,
                                             config_.steps > 0 ? fmt::format("/{}", config_.steps) : "", s.loss, ips,
                                             s.clamped_fraction, format_eta(remaining));
        if (tty) std::cout << "\r" << line << "\033[K" << std::flush; else std::cout << line << std::endl;
        steps_since = 0, interval_s = 0;
      }
      if (sample_due) write_samples(fmt::format("{}/samples/step_{:07d}.png", config_.out_dir, step_), generator_);
      if (checkpoint_due) write_checkpoint(ckpt, elapsed());
    });
    crash_point("step");
  }
  elapsed_before_s_ = elapsed();
  if (!main) return done;
  if (tty) std::cout << std::endl;
  save_checkpoint(ckpt);
  write_samples(config_.out_dir + "/samples/final.png", generator_);
  write_samples(config_.out_dir + "/samples/final_ema.png", ema_);
  std::cout << fmt::format("stopped ({}) at step {} after {:.1f}s; checkpoint {}; samples {}/samples/final_ema.png\n",
                           stop_reason, step_, elapsed_before_s_, ckpt, config_.out_dir);
  return done;
}

}  // namespace driftx
