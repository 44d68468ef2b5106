// Training a one-step generator with the standard or the DriftXpress field. Both methods share the
// generator, feature map, optimiser and batch layout; only the field differs.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "driftx/data.h"
#include "driftx/distributed.h"
#include "driftx/files.h"
#include "driftx/generator.h"
#include "driftx/projected_field.h"
#include "driftx/standard_field.h"

namespace driftx {

struct TrainConfig {
  // What is learned
  std::string dataset = "mnist";
  std::string data_dir;                       // empty: resolve_data_dir()
  std::string method = "driftxpress";         // driftxpress | standard
  std::string features = "pixels,pool2,pool4";
  bool conditional = true;
  int64_t classes_per_step = 10;              // N_c (1 when unconditional)
  int64_t gen_per_class = 25;                 // N_neg: generated samples per class per step
  int64_t pos_per_class = 256;                // N_pos: real positives per class per step (standard)
  // Standard: where the positives' (and guidance negatives') features come from. "cached": every group's
  // features of the whole training set computed once at start (on the training device, shared by ranks
  // that are threads) and gathered each step; "encode": the drawn images encoded every step. The same
  // numbers up to float32 rounding; cached is faster (BENCHMARKS.md) and costs |Y| x D floats per group.
  std::string positives = "cached";
  // Groups made of several vectors (encoder groups: one per location or patch; features.h
  // feature_vectors): true runs one kernel per vector, s and the drift normalisation shared over all
  // of them (SPEC §2, the papers' recipe); DriftXpress then shares one set of landmarks (a Nystrom map)
  // across a group's vectors and keeps summaries per class and vector. false: the flattened row is one vector.
  bool per_location = true;
  // Empty: the method's default (default_temperatures).
  std::vector<double> temperatures;
  double affinity_floor = 1e-6;               // standard field
  // Both fields: the products with kernel values / coefficients in float32 or bf16 (distances stay
  // float32; BENCHMARKS.md "bf16 products": 1.5-1.9x faster fields on this CPU, fidelity unchanged).
  std::string matmul_dtype = "float32";
  // Classifier-free guidance (SPEC §2): alpha ~ alpha^-k on [1, alpha_max] per class and step, the
  // generator conditioned on alpha, unconditional real samples as extra negatives of total weight
  // (alpha - 1)(N_neg - 1). Standard: U = guidance_negatives real samples per class, w = mass / U each;
  // driftxpress: the expectation of those negatives, from the unconditional summaries (no real encoding).
  bool guidance = false;
  int64_t guidance_negatives = 32;            // U (standard)
  double alpha_max = 4.0;
  double alpha_power = 3.0;                   // k
  // DriftXpress
  std::string landmark_strategy = "random_per_class";  // balanced per class: BENCHMARKS.md, search
  int64_t landmarks = 1000;                   // total landmarks per feature group
  // Block-diagonal Nystrom (class-conditional runs): the classes split into K contiguous shards, each with
  // its own landmarks and map; a query meets only its class's shard. 1: one map shared by all classes.
  // K must divide the number of classes.
  int64_t landmark_shards = 1;
  // One Nystrom map per (class, vector) of each group (class-conditional runs; with per_location a
  // group's V vectors are locations): --landmarks per vector, so landmarks / classes per map, drawn from
  // that class's samples of that vector. A query meets as many landmarks as with landmark_shards =
  // classes, all of its own location; the summaries take what class shards take, the landmarks V times
  // more. V = 1: class shards.
  bool vector_maps = false;
  double ridge = 1e-4;
  std::string repulsion = "exact";
  std::string cache_dir;                      // empty: <out>/../cache
  // Generator and optimiser
  int64_t noise_dim = 64;
  int64_t width = 64;                         // 128 matches the SPEC prototype; 64 learns as fast per minute at 2.4x the steps/s
  double lr = 0;                              // 0: the method's default (default_learning_rate)
  int64_t warmup_steps = 100;
  double weight_decay = 0.0;
  double grad_clip = 2.0;
  double ema = 0.999;
  // Run control
  int64_t steps = 0;                          // 0: no step limit
  double time_budget_s = 0;                   // 0: no deadline; counts precompute too
  int64_t log_every = 10;
  int64_t sample_every = 200;
  int64_t checkpoint_every = 200;
  std::string out_dir = "runs/mnist-driftxpress";
  uint64_t seed = 0;
  std::string device = "cpu";

  nlohmann::json to_json() const;
  // Unknown keys are refused by name ("ranks", a record in config.json, is ignored).
  static TrainConfig from_json(const nlohmann::json& j);
  // The keys that decide what is learned: a resumed run must keep them (the rest is run control).
  static const std::vector<std::string>& learned_keys();
  void validate() const;  // throws driftx::Error naming the bad field
};

// alpha ~ alpha^-power on [1, alpha_max] by inverse CDF of uniforms u in [0, 1) (power 1: alpha_max^u).
torch::Tensor sample_guidance_alpha(const torch::Tensor& u, double alpha_max, double power);

// Both methods: 0.02, 0.05, 0.2 (the paper's). Evidence in BENCHMARKS.md.
std::vector<double> default_temperatures(const std::string& method);
// driftxpress: 4e-3, standard: 8e-3 (each method's best at 4 minutes of the MNIST search, whose FID
// still fell from 2e-4 to those values; BENCHMARKS.md).
double default_learning_rate(const std::string& method);

// One logged step.
// Wall-clock split of one step, seconds (the cost model in BENCHMARKS.md): the generator's forward; the
// feature maps of the generated images; the standard method's positives (and guidance negatives) drawn
// and gathered from the feature cache or encoded (TrainConfig::positives); the fields; the backward pass (generator and feature maps); gradient averaging, clipping,
// the optimiser and the EMA. On a GPU the split is exact only with Trainer::set_phase_sync(true).
struct StepPhases {
  double generator = 0, features = 0, positives = 0, fields = 0, backward = 0, optimizer = 0;
};

struct StepStats {
  int64_t step = 0;
  double loss = 0;
  std::vector<double> group_loss;
  double clamped_fraction = 0;
  double step_seconds = 0;
  StepPhases phases;
};

class Trainer {
 public:
  // Loads the dataset, builds the generator, optimiser and (driftxpress) the field summaries.
  // With resume, continues from <out_dir>/checkpoint.pt (the stored configuration must match).
  // comm (default: one process): data-parallel training. Every rank draws the same batch and trains
  // on its share of the classes (classes_per_step / world size each); summaries are built from a
  // share of the data each and all-reduced; gradients are averaged before clipping; only rank 0
  // writes (config, log, samples, checkpoints, summary cache). Every rank reads the checkpoint.
  // Rank 0 holds <out_dir>/.lock while the trainer lives: a second trainer on the same directory, in
  // this process or another, is refused before anything is loaded.
  Trainer(TrainConfig config, bool resume = false, std::shared_ptr<Communicator> comm = nullptr);
  ~Trainer();

  // Trains until steps / time budget / stop flag; writes log, samples and checkpoints.
  // Returns the number of steps done in this call.
  int64_t run(const std::atomic<bool>* stop = nullptr);

  // One optimisation step on a freshly sampled batch / on a given batch (z: B x noise_dim, labels: B,
  // class-major groups of gen_per_class rows, undefined when unconditional). With several ranks, z and
  // labels are the whole batch; this rank uses its share of the rows.
  // alpha: B guidance scales (one per row, constant within a class group), only with guidance.
  StepStats step();
  StepStats step_on(const torch::Tensor& z, const torch::Tensor& labels, const torch::Tensor& alpha = {});
  // Synchronise the device at each phase boundary of a step (StepPhases), for timing on a GPU.
  void set_phase_sync(bool on) { phase_sync_ = on; }

  // The drifting loss of the current generator on a given batch (no update), and the per-group
  // targets, for tests: returns (loss, targets).
  std::pair<double, std::vector<torch::Tensor>> drift_targets(const torch::Tensor& z, const torch::Tensor& labels,
                                                              const torch::Tensor& alpha = {});
  double loss_against(const torch::Tensor& z, const torch::Tensor& labels, const std::vector<torch::Tensor>& targets,
                      const torch::Tensor& alpha = {});

  // Changes the run-control limits (steps, deadline in seconds of training time; 0 = none) between
  // run() calls, e.g. to stop at each evaluation time of an equal-wall-clock comparison.
  void set_stop_rule(int64_t steps, double time_budget_s);
  // Training seconds so far (precompute included), as the deadline counts them.
  double elapsed_seconds() const { return elapsed_before_s_; }

  void save_checkpoint(const std::string& path) const;
  int64_t step_count() const { return step_; }
  Generator& generator() { return generator_; }
  Generator& ema_generator() { return ema_; }
  const TrainConfig& config() const { return config_; }
  double precompute_seconds() const { return precompute_s_; }
  double summary_seconds() const { return summary_s_; }  // part of the precompute: building the summaries
  Communicator& communicator() { return *comm_; }
  // What the fields keep in memory, bytes (printed at start; BENCHMARKS.md): the standard method's
  // cached real features (positives = cached; shared by ranks that are threads, counted once per
  // trainer), DriftXpress's float64 summaries and their copies folded for queries (ProjectedField::
  // folded_bytes; they exist from the first step).
  struct Memory {
    int64_t feature_cache = 0, summaries = 0, folded = 0;
  };
  Memory memory() const;

 private:
  struct Group;
  struct Batch {
    torch::Tensor z, labels, alpha;  // labels undefined when unconditional; alpha only with guidance
  };
  torch::Tensor group_loss(size_t g, const torch::Tensor& images, const Batch& batch, StepStats* stats,
                           std::vector<torch::Tensor>* targets);
  Batch sample_batch();
  torch::Tensor generate(Generator& g, const Batch& batch);
  Batch share_batch(const Batch& batch) const;  // this rank's rows (share_rows of each part)
  void write_checkpoint(const std::string& path, double elapsed_s) const;
  void load_checkpoint(const std::string& path);
  void write_samples(const std::string& path, Generator& g);
  void update_ema();
  // Runs `write` on rank 0 only (the files are rank 0's), and every rank learns whether it failed: a
  // full disk or a busy directory stops all ranks at once, instead of the others waiting for rank 0 in
  // the next collective until --dist-timeout.
  void on_main_agreed(const std::function<void()>& write);
  torch::Tensor share_rows(const torch::Tensor& batch) const;  // this rank's rows of a batch tensor
  void average_gradients(StepStats& stats);                    // all-reduce: gradients and logged numbers

  TrainConfig config_;
  std::unique_ptr<DirectoryLock> lock_;  // rank 0: <out_dir>/.lock for the trainer's lifetime
  std::shared_ptr<Communicator> comm_;
  torch::Device device_;
  Dataset data_;
  bool phase_sync_ = false;
  torch::Tensor real_images_;  // data_.images on the training device (the same tensor on the CPU): encoded positives
  Generator generator_{nullptr}, ema_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<std::unique_ptr<Group>> groups_;
  at::Generator rng_;
  int64_t step_ = 0;
  double precompute_s_ = 0, summary_s_ = 0, elapsed_before_s_ = 0;
  torch::Tensor fixed_z_, fixed_labels_;
};

// Checkpoint files: a LibTorch archive followed by a footer with its length and CRC-32, written to a
// temporary file and renamed. read_checkpoint_bytes verifies the footer and returns the archive bytes;
// a truncated or corrupted file is a driftx::Error naming the path.
void write_checkpoint_bytes(const std::string& path, const std::string& archive_bytes);
std::string read_checkpoint_bytes(const std::string& path);
// read_checkpoint_bytes, then open_archive (files.h): every tensor in it checked against its storage.
torch::serialize::InputArchive open_checkpoint(const std::string& path);

// The training configuration stored in a checkpoint.
TrainConfig checkpoint_config(const std::string& checkpoint_path);

// Loads the (EMA or raw) generator of a checkpoint, with its configuration.
Generator load_generator(const std::string& checkpoint_path, bool ema, GeneratorConfig* config = nullptr);

}  // namespace driftx
