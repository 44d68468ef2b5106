// The formulas every field, the trainer and the fidelity tool share (SPEC §2-3). One definition each.
#pragma once

#include <functional>
#include <string>

#include <torch/torch.h>

namespace driftx {

// Sums a small tensor of partial statistics in place over the processes that share one batch
// (data-parallel training: Communicator::sum_reducer()). Empty: the batch is all on this process.
using SumReducer = std::function<void(torch::Tensor&)>;

// Euclidean distances sqrt(max(||x - y||^2, min_sq)) between the rows of x (... x n x d) and
// y (... x m x d); leading dimensions broadcast. Result ... x n x m, in x's dtype. Computed with one
// matrix product (||x||^2 + ||y||^2 - 2 x.y), the way the official releases do.
torch::Tensor euclidean_distances(const torch::Tensor& x, const torch::Tensor& y, double min_sq = 1e-8);

// Laplace kernel on Euclidean distance: exp(-||x - y|| / tau_eff). x: n x d, y: m x d -> n x m.
torch::Tensor laplace_kernel(const torch::Tensor& x, const torch::Tensor& y, double tau_eff);

// Precision of a field's query-time matrix products (kernel values times summaries or targets).
// Float32: everything float32. BFloat16: both operands rounded to bfloat16 (8 significant bits), the
// product accumulated by the BLAS/oneDNN kernel in float32 where LibTorch provides one, its result
// added to float32 accumulators. Distances always stay float32: ||x||^2 + ||y||^2 - 2 x.y cancels,
// and an error of 2^-9 of ||x||^2 would swamp the small distances that dominate a sharp kernel.
enum class ProductPrecision { Float32, BFloat16 };
ProductPrecision parse_product_precision(const std::string& name);  // "float32" | "bf16"
std::string to_string(ProductPrecision p);
// a @ b in the given precision; the result is float32 (or a's dtype when Float32).
torch::Tensor matmul_in(const torch::Tensor& a, const torch::Tensor& b, ProductPrecision p);

// Effective temperature of the projected field: tau * sqrt(D) (SPEC §3).
double effective_temperature(double tau, int64_t dim);

// Drift normalisation, the two guards the two releases use (SPEC §2 step 5 and §3):
//  ClampMeanSquare: F / sqrt(max(mean(F^2), 1e-8))      (standard field)
//  AddEps:          F / (sqrt(mean(F^2)) + eps)          (projected field; mean_i ||F_i||^2 / D == mean(F^2))
// The mean runs over every entry of F, so all groups passed together share one normaliser; with a
// reducer it runs over every entry of every process's F (sum and count reduced).
enum class DriftNorm { ClampMeanSquare, AddEps };
torch::Tensor normalize_drift(const torch::Tensor& drift, DriftNorm guard, double eps = 1e-8,
                              const SumReducer& reduce = {});
// The divisor normalize_drift applies, for a drift whose local mean(F^2) is already known (one reduction
// then serves a report and the normalisation): drift / divisor == normalize_drift(drift, ...).
double drift_norm_divisor(const torch::Tensor& drift, double mean_square, DriftNorm guard, double eps = 1e-8,
                          const SumReducer& reduce = {});

}  // namespace driftx
