#include "driftx/kernel.h"

#include "driftx/error.h"

namespace driftx {

torch::Tensor euclidean_distances(const torch::Tensor& x, const torch::Tensor& y, double min_sq) {
  auto xx = (x * x).sum(-1).unsqueeze(-1);  // ... x n x 1
  auto yy = (y * y).sum(-1).unsqueeze(-2);  // ... x 1 x m
  auto sq = torch::matmul(x, y.transpose(-1, -2)).mul_(-2.0).add_(xx).add_(yy);
  return sq.clamp_min_(min_sq).sqrt_();
}

torch::Tensor laplace_kernel(const torch::Tensor& x, const torch::Tensor& y, double tau_eff) {
  return euclidean_distances(x, y).div_(-tau_eff).exp_();
}

double effective_temperature(double tau, int64_t dim) { return tau * std::sqrt(static_cast<double>(dim)); }

torch::Tensor normalize_drift(const torch::Tensor& drift, DriftNorm guard, double eps, const SumReducer& reduce) {
  auto ms = drift.pow(2).mean();
  if (reduce) {
    auto stats = torch::stack({drift.pow(2).sum().to(torch::kFloat64),
                               torch::scalar_tensor(static_cast<double>(drift.numel()), ms.options().dtype(torch::kFloat64))});
    reduce(stats);
    ms = (stats[0] / stats[1]).to(drift.scalar_type());
  }
  if (guard == DriftNorm::ClampMeanSquare) return drift / ms.clamp_min(1e-8).sqrt();
  return drift / (ms.sqrt() + eps);
}

}  // namespace driftx
