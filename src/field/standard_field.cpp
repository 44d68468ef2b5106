#include "driftx/standard_field.h"

#include "driftx/error.h"
#include "driftx/kernel.h"

namespace driftx {

namespace {

torch::Tensor as_groups(const torch::Tensor& t) { return t.dim() == 2 ? t.unsqueeze(0) : t; }

}  // namespace

StandardField::StandardField(StandardFieldConfig config) : config_(std::move(config)) {
  DRIFTX_CHECK(!config_.temperatures.empty(), "standard field: at least one temperature is needed");
  for (double t : config_.temperatures)
    DRIFTX_CHECK(t > 0 && std::isfinite(t), "standard field: temperature {} must be positive", t);
  DRIFTX_CHECK(config_.affinity_floor >= 0, "standard field: affinity floor {} must be >= 0", config_.affinity_floor);
}

StandardFieldResult StandardField::compute(const StandardFieldInput& in) const {
  DRIFTX_CHECK(in.generated.defined() && in.positives.defined(), "standard field: generated and positives are required");
  const bool two_d = in.generated.dim() == 2;
  DRIFTX_CHECK(in.generated.dim() == 2 || in.generated.dim() == 3,
               "standard field: generated must be N x D or G x N x D, got {} dims", in.generated.dim());
  auto X_grad = as_groups(in.generated);
  auto Yp = as_groups(in.positives).to(X_grad.scalar_type());
  const int64_t G = X_grad.size(0), N = X_grad.size(1), D = X_grad.size(2);
  DRIFTX_CHECK(Yp.dim() == 3 && Yp.size(0) == G && Yp.size(2) == D,
               "standard field: positives must be {} x P x {} to match generated, got {}", G, D, shape_str(Yp.sizes()));
  DRIFTX_CHECK(N >= 2, "standard field: need at least 2 generated samples per group, got {}", N);
  DRIFTX_CHECK(Yp.size(1) >= 1, "standard field: need at least 1 positive per group");
  torch::Tensor Yn;
  if (in.negatives.defined() && in.negatives.numel() > 0) {
    Yn = as_groups(in.negatives).to(X_grad.scalar_type());
    DRIFTX_CHECK(Yn.dim() == 3 && Yn.size(0) == G && Yn.size(2) == D,
                 "standard field: negatives must be {} x U x {} to match generated, got {}", G, D, shape_str(Yn.sizes()));
    DRIFTX_CHECK(in.negative_weight.defined(), "standard field: extra negatives need a weight (--neg-weight)");
  }
  const int64_t U = Yn.defined() ? Yn.size(1) : 0, P = Yp.size(1), T = N + U + P;
  const auto opts = X_grad.options().requires_grad(false);

  StandardFieldResult out;
  torch::Tensor goal;
  {
    torch::NoGradGuard no_grad;
    auto X = X_grad.detach();
    auto targets = Yn.defined() ? torch::cat({X, Yn, Yp}, 1) : torch::cat({X, Yp}, 1);  // G x T x D
    // Column weights wT = [1..1 | w..w | 1..1] per group.
    auto wT = torch::ones({G, T}, opts);
    if (U > 0) {
      auto w = in.negative_weight.to(opts.dtype()).to(X.device()).reshape({-1});
      DRIFTX_CHECK(w.numel() == 1 || w.numel() == G, "standard field: negative weight must be one value or one per group ({})", G);
      wT.narrow(1, N, U).copy_(w.numel() == 1 ? w.expand({G, 1}).expand({G, U}) : w.unsqueeze(1).expand({G, U}));
    }
    auto dist = euclidean_distances(X, targets);  // G x N x T
    // Step 3: one scale for the whole call.
    auto w_rows = wT.unsqueeze(1);                 // G x 1 x T
    const double s = ((dist * w_rows).mean() / wT.mean()).item<double>();
    const double c = std::max(s / std::sqrt(static_cast<double>(D)), 1e-3);
    out.scale = s;
    out.coord_scale = c;
    auto Xs = X / c;
    auto Ts = targets / c;
    // Normalised distances, with self-exclusion on the generated block's diagonal (step 4).
    auto dn = dist.div_(std::max(s, 1e-3));
    dn.narrow(2, 0, N).diagonal(0, 1, 2).add_(config_.self_exclusion);
    const double sqrt_floor = std::sqrt(config_.affinity_floor);

    // Scratch coefficient matrix reused across temperatures: memory stays at a few G x N x T.
    auto drift_sum = torch::zeros_like(Xs);
    for (double tau : config_.temperatures) {
      auto logits = dn * (-1.0 / tau);
      // sqrt(softmax_row * softmax_col) = exp(l - lse_row/2 - lse_col/2): one exp, no underflow of
      // the product before the square root.
      auto lse_row = logits.logsumexp(2, true);  // G x N x 1 (over targets)
      auto lse_col = logits.logsumexp(1, true);  // G x 1 x T (over generated)
      auto A = logits.sub_(lse_row.mul(0.5)).sub_(lse_col.mul(0.5)).exp_();
      if (sqrt_floor > 0) A.clamp_min_(sqrt_floor);
      A.mul_(w_rows);
      auto An = A.narrow(2, 0, N + U), Ap = A.narrow(2, N + U, P);
      auto rs_n = An.sum(2, true), rs_p = Ap.sum(2, true);  // G x N x 1
      // Coefficients in place: negatives -An * rowsum(Ap), positives Ap * rowsum(An).
      An.mul_(rs_p).neg_();
      Ap.mul_(rs_n);
      auto coef_rowsum = A.sum(2, true);  // zero up to rounding
      auto F = torch::matmul(A, Ts).sub_(coef_rowsum * Xs);
      out.drift_rms.push_back(F.pow(2).mean().sqrt().item<double>());
      drift_sum.add_(normalize_drift(F, DriftNorm::ClampMeanSquare));
    }
    goal = Xs + drift_sum;
    out.drift = two_d ? drift_sum.squeeze(0) : drift_sum;
  }
  // Gradient only through the generated input: goal and c are constants.
  out.loss = (X_grad / out.coord_scale - goal).pow(2).mean();
  out.goal = two_d ? goal.squeeze(0) : goal;
  return out;
}

}  // namespace driftx
