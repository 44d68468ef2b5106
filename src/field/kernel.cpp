#include "driftx/kernel.h"

#include <algorithm>
#include <cmath>

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

ProductPrecision parse_product_precision(const std::string& name) {
  if (name == "float32" || name == "f32") return ProductPrecision::Float32;
  if (name == "bf16" || name == "bfloat16") return ProductPrecision::BFloat16;
  fail("unknown matmul dtype '{}': use float32 or bf16", name);
}

std::string to_string(ProductPrecision p) { return p == ProductPrecision::BFloat16 ? "bf16" : "float32"; }

torch::Tensor matmul_in(const torch::Tensor& a, const torch::Tensor& b, ProductPrecision p) {
  if (p == ProductPrecision::Float32) return torch::matmul(a, b);
  // No-op conversions when an operand is already bf16 (e.g. cached summaries).
  return torch::matmul(a.to(torch::kBFloat16), b.to(torch::kBFloat16)).to(torch::kFloat32);
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

double drift_norm_divisor(const torch::Tensor& drift, double mean_square, DriftNorm guard, double eps,
                          const SumReducer& reduce) {
  double ms = mean_square;
  if (reduce) {
    const double n = static_cast<double>(drift.numel());
    auto stats = torch::tensor({mean_square * n, n}, torch::kFloat64);
    reduce(stats);
    ms = stats[0].item<double>() / stats[1].item<double>();
  }
  if (guard == DriftNorm::ClampMeanSquare) return std::sqrt(std::max(ms, 1e-8));
  return std::sqrt(ms) + eps;
}

}  // namespace driftx
