// Landmark selection in the feature space the field uses (SPEC §4), seeded and reproducible.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace driftx {

enum class LandmarkStrategy {
  RandomGlobal,
  RandomPerClass,
  KMeansGlobal,
  KMeansPerClass,
  KCenter,
  FacilityLocation,
  DensityWeightedKCenter,
};

LandmarkStrategy parse_landmark_strategy(const std::string& name);  // "random_global", ...
std::string to_string(LandmarkStrategy strategy);
std::vector<std::string> landmark_strategy_names();

struct LandmarkConfig {
  LandmarkStrategy strategy = LandmarkStrategy::RandomPerClass;
  int64_t total = 1000;             // total budget M (used when per_class <= 0)
  int64_t per_class = 0;            // > 0: budget per class (needs labels); total = per_class * classes.
                                    // Per-class strategies split it per class; global ones pick that many.
  int kmeans_iterations = 20;       // Lloyd iterations
  int64_t candidates = 4096;        // facility_location: candidate subset size
  int64_t density_k = 10;           // density_weighted_kcenter: k of the kNN density
  uint64_t seed = 0;
};

// Picks landmark rows of `features` (n x D, float32). `labels` (n, int64) may be undefined for the
// global strategies; per-class strategies (and any per_class budget) need it. A budget split across
// classes is balanced (sizes differ by at most one) and never asks a class for more samples than it
// has; M > n, an empty class or a non-positive budget is a driftx::Error. Labels, when given, are
// checked (one per sample, every class 0..max present) whatever the strategy. Returns the sorted-by-
// selection-order int64 indices (M) into `features`; no index repeats.
torch::Tensor select_landmarks(const torch::Tensor& features, const torch::Tensor& labels,
                               const LandmarkConfig& config);

// Splits `total` across classes of the given sizes: as even as possible (shares differ by at most one,
// the lower class ids get the extras); a class smaller than its share gives all its samples and the rest
// is redistributed over the others. total > sum(class_sizes) is a driftx::Error.
std::vector<int64_t> split_class_budget(const std::vector<int64_t>& class_sizes, int64_t total);

// Index (int64, n) of the nearest row of y (m x D) for every row of x (n x D); chunked over x so a
// chunk x m distance block stays <= 64 MiB.
torch::Tensor nearest_index(const torch::Tensor& x, const torch::Tensor& y);

// Coverage of the real samples by the landmarks (SPEC §4).
struct LandmarkCoverage {
  double min_distance = 0;       // min over real samples of the distance to the nearest landmark
  double mean_distance = 0;      // mean over real samples of the distance to the nearest landmark
  double max_distance = 0;       // max over real samples of the distance to the nearest landmark
  double mean_max_kernel = 0;    // mean over real samples of max_j k(y, u_j) at tau_eff
  double min_max_kernel = 0;     // min over real samples of max_j k(y, u_j) at tau_eff
  double condition_number = 0;   // of W + ridge I, W = k(U, U) at tau_eff
};
LandmarkCoverage landmark_coverage(const torch::Tensor& features, const torch::Tensor& landmarks,
                                   double tau_eff, double ridge);

}  // namespace driftx
