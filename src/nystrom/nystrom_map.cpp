#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/projected_field.h"

namespace driftx {

NystromMap::NystromMap(const torch::Tensor& landmarks, double tau_eff, double ridge)
    : landmarks_(landmarks.to(torch::kFloat32).contiguous()), tau_eff_(tau_eff) {
  DRIFTX_CHECK(landmarks.dim() == 2 && landmarks.size(0) >= 1, "Nystrom map: landmarks must be M x D with M >= 1, got {}",
               shape_str(landmarks.sizes()));
  DRIFTX_CHECK(tau_eff > 0 && ridge >= 0, "Nystrom map: need tau_eff > 0 and ridge >= 0 (got {}, {})", tau_eff, ridge);
  // float64 for the eigendecomposition: W's spectrum spans many decades.
  auto U = landmarks.to(torch::kFloat64);
  auto W = laplace_kernel(U, U, tau_eff);
  W.diagonal().add_(ridge);
  auto [evals, evecs] = at::linalg_eigh(W, "L");
  constexpr double kMinEigenvalue = 1e-8;  // SPEC §3: clamp before the inverse square root
  clamped_ = (evals < kMinEigenvalue).sum().item<int64_t>();
  evals = evals.clamp_min(kMinEigenvalue);
  condition_ = (evals.max() / evals.min()).item<double>();
  amap_ = torch::matmul(evecs * evals.rsqrt().unsqueeze(0), evecs.t());
  inverse_ = torch::matmul(evecs * evals.reciprocal().unsqueeze(0), evecs.t());
}

torch::Tensor NystromMap::kernel(const torch::Tensor& x) const {
  return laplace_kernel(x, landmarks_.to(x.scalar_type()), tau_eff_);
}

torch::Tensor NystromMap::features(const torch::Tensor& x) const {
  return torch::matmul(kernel(x), amap_.to(x.scalar_type()));
}

Repulsion parse_repulsion(const std::string& name) {
  if (name == "exact") return Repulsion::Exact;
  if (name == "projected") return Repulsion::Projected;
  fail("unknown repulsion '{}': use exact or projected", name);
}

}  // namespace driftx
