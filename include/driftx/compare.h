// The equal-wall-clock comparison (the DriftXpress paper's protocol, SPEC §6): every method trains with
// the same generator, features, seed and batch layout under the same deadline, and FID is measured on
// the same schedule of training-clock times. Evaluation happens between training segments, outside the
// clock. An optional small hyperparameter search per method runs first, and each method then competes
// with its best setting.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "driftx/train.h"

namespace driftx {

struct CompareConfig {
  std::string dataset = "mnist";
  std::string data_dir;
  std::vector<std::string> methods{"standard", "driftxpress"};
  double time_budget_s = 1200;
  double eval_every_s = 120;
  int64_t n_eval = 2000;          // generated samples (and real test images) per FID evaluation
  double search_budget_s = 0;     // > 0: per-method search, each candidate trained this long
  std::string out_dir = "runs/compare";
  uint64_t seed = 0;
  // Training seeds per method: seed, seed + 1, ..., seed + seeds - 1 (the search, the evaluation subset
  // and the sample grids use `seed`); the report shows mean +- std over them.
  int64_t seeds = 1;
  // Data-parallel ranks per training run, as threads of this process (on_local_threads), sharing the
  // intra-op threads; 0: local_ranks_for(classes per step, threads) - one rank per core on a CPU machine,
  // the fastest way to use it. Every method gets the same ranks, so the comparison stays equal.
  int ranks = 0;
  // The search keeps the lowest FID among candidates whose class accuracy is at least this; when none
  // reaches it, the lowest FID. Default 0 (FID alone): at a search budget of minutes a high class
  // accuracy mostly marks a collapsed generator (MNIST, 4 minutes: the standard method's 10 x 50 batch
  // scored 99.9% at FID 947), so a quality bar belongs on the full-length runs, not on the search.
  double search_min_accuracy = 0;
  // Per method, TrainConfig fields (JSON) applied on top of the shared base before the search.
  std::map<std::string, nlohmann::json> overrides;
  TrainConfig base;               // shared settings (generator, features, batch layout, ...)

  nlohmann::json to_json() const;
  void validate() const;
};

// The candidates each method's search tries, as TrainConfig overrides: the method's default, then one
// change at a time: temperatures 0.05/0.1/0.2, half and twice its learning rate, width 128, 50
// generated samples per class, and 64 positives per class (standard) / 2000 landmarks per group
// (DriftXpress).
std::vector<nlohmann::json> search_candidates(const std::string& method);

struct CurvePoint {
  double time_s = 0;   // training-clock seconds (precompute included)
  int64_t step = 0;
  double fid = 0;
  double accuracy = -1;  // evaluator accuracy on the requested classes (-1: unconditional)
  // Improved precision / recall (k = 3) against the same real test subset as the FID (-1: not measured,
  // e.g. a curve read back from an older compare.json).
  double precision = -1, recall = -1;
};

struct MethodRun {
  std::string method;
  nlohmann::json config;           // the full resolved TrainConfig
  std::vector<CurvePoint> curve;
  double precompute_s = 0, images_per_s = 0;
  int64_t steps = 0;
  uint64_t seed = 0;  // the training seed
};

struct SearchTrial {
  std::string method;
  nlohmann::json overrides;
  double fid = 0, accuracy = -1;
  int64_t steps = 0;
};

// The search's choice among one method's trials: the lowest finite FID among those with accuracy >=
// min_accuracy (unconditional trials, accuracy -1, always qualify); when none qualifies, the lowest FID.
size_t choose_candidate(const std::vector<SearchTrial>& trials, double min_accuracy);

// The first evaluated time at which the curve's FID is <= `fid` (the evaluation grid's resolution).
std::optional<double> time_to_reach(const std::vector<CurvePoint>& curve, double fid);

// Scores generators against a fixed real test subset: FID and improved precision / recall in the shipped
// evaluator's feature space and (conditional generators) the evaluator's accuracy on the requested classes.
class FidScorer {
 public:
  FidScorer(const std::string& dataset, const std::string& data_dir, int64_t n, uint64_t seed);
  ~FidScorer();
  CurvePoint score(Generator& generator);  // n samples drawn with the scorer's seed; time_s and step left 0
  // The same scores for given images (N x 1 x H x W in [-1, 1], as generated); labels (N, the requested
  // classes) or undefined (accuracy -1).
  CurvePoint score_images(const torch::Tensor& images, const torch::Tensor& labels);
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CompareResult {
  std::vector<SearchTrial> search;
  std::vector<MethodRun> runs;
};

// Runs the search (if asked) and the comparison; writes under out_dir: compare.json (configuration and
// every number), report.md, fid_vs_time.png, samples_<method>.png and samples_side_by_side.png.
CompareResult run_comparison(const CompareConfig& config);

// One method over its seeds: the mean curve (FID, accuracy, time, steps averaged point by point over
// the runs' common length), with the sample standard deviation of FID per point (0 for one seed).
struct MethodSummary {
  MethodRun mean;
  std::vector<double> fid_std;
  std::vector<double> final_fids;  // per seed, in run order
};
std::vector<MethodSummary> summarize_runs(const std::vector<std::string>& methods, const std::vector<MethodRun>& runs);

// report.md from a result (also used by tests on synthetic curves).
std::string comparison_report(const CompareConfig& config, const CompareResult& result);

}  // namespace driftx
