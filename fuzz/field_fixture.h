// The small projected field the summary-cache target loads into, and make_seeds saves from: 3 classes,
// 6 landmarks in 4 dimensions, temperatures 0.05 and 0.2, one shard.
#pragma once

#include "driftx/projected_field.h"

namespace driftx::fuzz {

inline const char* kCacheStrategy = "random_per_class";
inline const char* kCacheFingerprint = "fuzz-data";

inline ProjectedField fixture_field() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto landmarks = torch::randn({6, 4}, gen, torch::kFloat32);
  ProjectedFieldConfig cfg;
  cfg.temperatures = {0.05, 0.2};
  return ProjectedField(landmarks, torch::Tensor(), ShardLayout{3, 1}, 1.5, cfg);
}

inline void fixture_data(torch::Tensor& real, torch::Tensor& labels) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  real = torch::randn({12, 4}, gen, torch::kFloat32);
  labels = torch::arange(12, torch::kLong).remainder(3);
}

}  // namespace driftx::fuzz
