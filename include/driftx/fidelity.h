// Field fidelity (SPEC §5, the DriftXpress paper's Table 8 protocol): the projected attraction against
// the exact attraction over the same full real set, per landmark budget.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "driftx/landmarks.h"

namespace driftx {

struct FidelityConfig {
  std::vector<int64_t> landmarks_per_class{10, 50, 100, 200, 500};
  LandmarkStrategy strategy = LandmarkStrategy::RandomPerClass;
  std::vector<double> temperatures{0.02, 0.05, 0.2};
  double ridge = 1e-4;
  bool conditional = true;   // per-class summaries, each query attracted by its own class
  int64_t batch = 256;       // queries per timed step
  int repeats = 3;           // timed repeats (median)
  bool bf16 = false;         // also measure the attraction with bf16 products (ProductPrecision)
  uint64_t seed = 0;
};

struct FidelityRow {
  int64_t per_class = 0, total = 0;
  double cosine = 0;            // mean over queries and temperatures of cos(b+_proj - x, b+_exact - x)
  double rel_l2 = 0;            // mean over temperatures of ||b+_proj - b+_exact|| / ||b+_exact - x||
  double target_mse = 0;        // mean((target_proj - target_exact)^2), same repulsion in both
  double clamped_fraction = 0;  // of (query, temperature) pairs
  double precompute_s = 0;      // landmark selection + scale + Nystrom maps + summaries
  double exact_ms = 0, projected_ms = 0;  // attraction for one batch of queries (all temperatures)
  double condition_number = 0;            // max over temperatures of cond(W + ridge I)
  double scale = 0;
  std::vector<double> cosine_per_temperature, rel_l2_per_temperature;
  // With FidelityConfig::bf16: the same for the attraction with bf16 products, and its time.
  double cosine_bf16 = 0, rel_l2_bf16 = 0, projected_bf16_ms = 0;
  std::vector<double> cosine_bf16_per_temperature;
};

// real: |Y| x D features, labels: |Y| int64 (classes 0..C-1); queries: Q x D in the same feature space,
// query_labels: Q. `progress` (may be empty) is told about each finished row.
std::vector<FidelityRow> run_fidelity(const torch::Tensor& real, const torch::Tensor& labels,
                                      const torch::Tensor& queries, const torch::Tensor& query_labels,
                                      const FidelityConfig& config,
                                      const std::function<void(const FidelityRow&)>& progress = {});

}  // namespace driftx
