#include "driftx/standard_field.h"

#include <algorithm>

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

StandardFieldResult StandardField::compute(const StandardFieldInput& in, const SumReducer& reduce) const {
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
    // Step 3: one scale for the whole call: sum_ij w_j d_ij / sum_ij w_j, via the column sums (no
    // G x N x T temporary). Across processes the weighted distance sums and entry counts add, and the
    // mean weight is the mean of the per-process means (every process holds the same number of groups).
    auto scale_stats = torch::tensor({(dist.sum(1) * wT).sum().item<double>(), static_cast<double>(G * N * T),
                                      wT.mean().item<double>(), 1.0}, torch::kFloat64);
    if (reduce) reduce(scale_stats);
    const auto st = scale_stats.accessor<double, 1>();
    const double s = (st[0] / st[1]) / (st[2] / st[3]);
    const double c = std::max(s / std::sqrt(static_cast<double>(D)), 1e-3);
    out.scale = s;
    out.coord_scale = c;
    auto Ts = targets.div_(c);     // targets are not needed unscaled any more
    auto Xs = Ts.narrow(1, 0, N);  // X / c: the first N targets
    const double sqrt_floor = std::sqrt(config_.affinity_floor);
    torch::Tensor w_neg;  // G x 1 x 1 (or 1 x 1 x 1): the weight of the negatives' columns
    if (U > 0) w_neg = wT.narrow(1, N, 1).unsqueeze(2);

    // The N x T work runs over blocks of rows small enough to stay in cache, so each elementwise step
    // reads and writes cache rather than memory. Every row-wise quantity of a block depends only on
    // that block; column-wise ones (the column logsumexp) are accumulated over the blocks first.
    auto for_blocks = [&](int64_t rows, const auto& body) {
      for (int64_t i0 = 0; i0 < N; i0 += rows) body(i0, std::min(rows, N - i0));
    };
    const auto rows_for = [&](int64_t per_row) {
      return std::clamp<int64_t>(config_.block_elements / std::max<int64_t>(per_row, 1), 1, N);
    };

    // Normalised distances, with self-exclusion on the generated block's diagonal (step 4), and the
    // row and column minima: with k = -1/tau < 0, max_j fl(k d_ij) = fl(k min_j d_ij) exactly, so the
    // logsumexp shifts of every temperature come from these two vectors.
    auto dn = dist;
    const double s_div = std::max(s, 1e-3);
    auto dmin_row = torch::empty({G, N, 1}, opts);
    auto dmin_col = torch::empty({G, 1, T}, opts);
    for_blocks(rows_for(G * T), [&](int64_t i0, int64_t b) {
      auto d = dn.narrow(1, i0, b);
      d.div_(s_div);
      d.narrow(2, i0, b).diagonal(0, 1, 2).add_(config_.self_exclusion);
      auto mr = dmin_row.narrow(1, i0, b);
      at::amin_out(mr, d, {2}, true);
      if (i0 == 0)
        at::amin_out(dmin_col, d, {1}, true);
      else
        dmin_col.copy_(torch::minimum(dmin_col, d.amin(1, true)));
    });

    // Temperatures in passes of p: all of them at once when their G x N x T coefficient matrices fit in
    // a few blocks' worth of memory (small shapes: a third of the elementwise calls, whose fixed cost
    // dominates there, and one larger, faster product for all temperatures), else one at a time (memory
    // stays at two G x N x T: dn and A). Temperatures run along dimension 1 of the G x p x rows x T work.
    const int64_t nt = static_cast<int64_t>(config_.temperatures.size());
    const int64_t p = nt * G * N * T <= 2 * config_.block_elements ? nt : 1;
    const int64_t rows = rows_for(G * p * T);
    auto scratch = torch::empty({G, p, rows, T}, opts);
    auto A = torch::empty({G, p, N, T}, opts);
    auto lse_row = torch::empty({G, p, N, 1}, opts), lse_col = torch::empty({G, p, 1, T}, opts);
    auto rs_n = torch::empty({G, p, N, 1}, opts), rs_p = torch::empty({G, p, N, 1}, opts);
    auto drift_sum = torch::zeros({G, N, D}, opts);
    auto dn4 = dn.unsqueeze(1);  // G x 1 x N x T
    // F_tau = coef @ Ts - rowsum(coef) * Xs with rowsum(coef) = -rowsum(An) rowsum(Ap) + rowsum(Ap) rowsum(An)
    // = 0 identically (SPEC §2 step 5): only the product is computed. Normalised and summed into drift_sum.
    auto add_drift = [&](const torch::Tensor& F) {
      const double norm = F.norm().item<double>();  // one reduction serves drift_rms and the normalisation
      const double ms = norm * norm / static_cast<double>(F.numel());
      out.drift_rms.push_back(std::sqrt(ms));
      drift_sum.add_(F, 1.0 / drift_norm_divisor(F, ms, DriftNorm::ClampMeanSquare, 1e-8, reduce));
    };
    for (int64_t t0 = 0; t0 < nt; t0 += p) {
      // logits = k * dn, k = -1/tau per temperature. sqrt(softmax_row * softmax_col) =
      // exp(l - lse_row/2 - lse_col/2): one exp, no underflow of the product before the square root.
      std::vector<double> ks;
      for (int64_t t = t0; t < t0 + p; ++t) ks.push_back(-1.0 / config_.temperatures[static_cast<size_t>(t)]);
      const auto k = torch::tensor(ks, opts).view({1, p, 1, 1});
      auto max_row = dmin_row.unsqueeze(1) * k, max_col = dmin_col.unsqueeze(1) * k;  // the logits' maxima
      lse_col.zero_();
      // The logits are written into A (overwritten by the coefficients below), so k * dn is formed once.
      for_blocks(rows, [&](int64_t i0, int64_t b) {
        auto L = A.narrow(2, i0, b);
        at::mul_out(L, dn4.narrow(2, i0, b), k);
        auto S = scratch.narrow(2, 0, b);
        at::sub_out(S, L, max_row.narrow(2, i0, b)).exp_();
        auto lr = lse_row.narrow(2, i0, b);
        at::sum_out(lr, S, {3}, true);
        at::sub_out(S, L, max_col).exp_();
        lse_col.add_(S.sum(2, true));
      });
      lse_row.log_().add_(max_row);  // logsumexp = log(sum exp(l - max)) + max
      lse_col.log_().add_(max_col);
      auto half_row = lse_row * 0.5, half_col = lse_col * 0.5;
      for_blocks(rows, [&](int64_t i0, int64_t b) {
        auto Ab = A.narrow(2, i0, b);
        Ab.sub_(half_row.narrow(2, i0, b)).sub_(half_col).exp_();
        if (sqrt_floor > 0) Ab.clamp_min_(sqrt_floor);
        if (U > 0) Ab.narrow(3, N, U).mul_(w_neg.unsqueeze(1));  // column weights: 1 elsewhere
        auto An = Ab.narrow(3, 0, N + U), Ap = Ab.narrow(3, N + U, P);
        auto rn = rs_n.narrow(2, i0, b), rp = rs_p.narrow(2, i0, b);
        at::sum_out(rn, An, {3}, true);
        at::sum_out(rp, Ap, {3}, true);
        // Coefficients in place: negatives -An * rowsum(Ap), positives Ap * rowsum(An).
        An.mul_(rp.neg());
        Ap.mul_(rn);
      });
      auto F = matmul_in(A.view({G, p * N, T}), Ts, config_.products);  // G x (p N) x D
      for (int64_t t = 0; t < p; ++t) add_drift(F.narrow(1, t * N, N));
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
