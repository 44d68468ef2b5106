// The standard drifting field of Deng et al. (2026), Algorithm 2, with the official release's
// semantics (SPEC §2). This is the exact field: every approximation is measured against it.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "driftx/kernel.h"

namespace driftx {

struct StandardFieldConfig {
  std::vector<double> temperatures{0.02, 0.05, 0.2};
  double affinity_floor = 1e-6;  // A = sqrt(max(p_row * p_col, floor)); 0 disables the floor
  double self_exclusion = 100.0; // added to the normalised self-distance of each generated sample
  // Performance only: the N x T elementwise work runs over blocks of rows of about this many entries
  // (2^20 float32 = 4 MiB), so it stays in cache. Results do not depend on it beyond rounding.
  int64_t block_elements = int64_t(1) << 20;
  // The per-temperature product coef @ targets in float32 or bf16 (kernel.h); distances stay float32.
  ProductPrecision products = ProductPrecision::Float32;
};

// Inputs for G groups processed in one call (classes, or feature locations), all with the same
// sizes. The scale s and the drift normalisation are shared across the G groups.
struct StandardFieldInput {
  torch::Tensor generated;        // G x N x D (or N x D for one group); may require grad
  torch::Tensor positives;        // G x P x D (or P x D)
  torch::Tensor negatives;        // G x U x D (or U x D), optional extra negatives (undefined: none)
  torch::Tensor negative_weight;  // G (or scalar): weight w of each extra negative of a group
};

struct StandardFieldResult {
  torch::Tensor goal;   // G x N x D (N x D for 2-D input): Xs + sum_tau F_tau, scaled coordinates, no grad
  torch::Tensor drift;  // same shape: sum_tau F_tau (the normalised drift), no grad
  torch::Tensor loss;   // scalar: mean((X / c - goal)^2); gradient flows only into `generated`
  double scale = 0;     // s, the weighted mean distance (step 3)
  double coord_scale = 0;  // c = max(s / sqrt(D), 1e-3): coordinates are divided by it
  std::vector<double> drift_rms;  // per temperature: sqrt(mean(F_tau^2)) before normalisation
};

class StandardField {
 public:
  explicit StandardField(StandardFieldConfig config = {});
  const StandardFieldConfig& config() const { return config_; }

  // Computes goal, drift and loss. Throws driftx::Error on inconsistent shapes. reduce (kernel.h):
  // when the call's groups are one share of a batch split across processes, sums the batch-shared
  // statistics (the scale s and the drift normalisation) over all of them.
  StandardFieldResult compute(const StandardFieldInput& input, const SumReducer& reduce = {}) const;

 private:
  StandardFieldConfig config_;
};

}  // namespace driftx
