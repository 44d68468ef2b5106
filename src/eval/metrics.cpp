#include "driftx/metrics.h"

#include <algorithm>
#include <cmath>

#include "driftx/error.h"

namespace driftx {

namespace {

// N x d float64 on the CPU; `what` names the input in messages.
torch::Tensor as_features(const torch::Tensor& t, const char* what, int64_t min_rows = 2) {
  DRIFTX_CHECK(t.defined() && t.dim() == 2, "{}: expected an N x d feature matrix, got shape {}", what,
               t.defined() ? shape_str(t.sizes()) : "undefined");
  DRIFTX_CHECK(t.size(0) >= min_rows && t.size(1) >= 1, "{}: needs at least {} rows of >= 1 feature, got {}", what,
               min_rows, shape_str(t.sizes()));
  auto x = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  DRIFTX_CHECK(torch::isfinite(x).all().item<bool>(), "{}: features contain NaN or Inf", what);
  return x;
}

torch::Tensor symmetrize(const torch::Tensor& a) { return (a + a.t()) * 0.5; }

// Squared Euclidean distances a_i - b_j, clamped at 0 (the expansion can round slightly negative).
torch::Tensor sq_dist(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.pow(2).sum(1, true) + b.pow(2).sum(1).unsqueeze(0) - 2 * a.mm(b.t())).clamp_min(0);
}

constexpr int64_t kChunk = 1024;  // rows per distance block: 1024 x 10k float64 = 80 MB

// Squared distance of each row of x to its k-th nearest other row.
torch::Tensor kth_radius_sq(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.size(0);
  auto out = torch::empty({n}, torch::kFloat64);
  for (int64_t s = 0; s < n; s += kChunk) {
    const int64_t e = std::min(n, s + kChunk);
    auto d = sq_dist(x.slice(0, s, e), x);
    // Exclude the point itself explicitly rather than trusting its rounded distance to be the minimum.
    auto rows = torch::arange(e - s, torch::kLong);
    d.index_put_({rows, rows + s}, std::numeric_limits<double>::infinity());
    out.slice(0, s, e).copy_(std::get<0>(d.kthvalue(k, 1)));
  }
  return out;
}

// Fraction of rows of q inside the union of balls (centres, radius_sq).
double coverage(const torch::Tensor& q, const torch::Tensor& centres, const torch::Tensor& radius_sq) {
  int64_t inside = 0;
  for (int64_t s = 0; s < q.size(0); s += kChunk) {
    auto d = sq_dist(q.slice(0, s, std::min(q.size(0), s + kChunk)), centres);
    inside += (d <= radius_sq.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(q.size(0));
}

}  // namespace

GaussianFit gaussian_fit(const torch::Tensor& features) {
  auto x = as_features(features, "gaussian_fit");
  auto mu = x.mean(0);
  auto xc = x - mu;
  return {mu, xc.t().mm(xc) / static_cast<double>(x.size(0) - 1)};
}

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2) {
  const int64_t d = mu1.numel();
  DRIFTX_CHECK(mu1.dim() == 1 && mu2.dim() == 1 && mu2.numel() == d, "frechet_distance: means must be vectors of one "
               "length, got {} and {}", shape_str(mu1.sizes()), shape_str(mu2.sizes()));
  DRIFTX_CHECK(sigma1.sizes() == torch::IntArrayRef({d, d}) && sigma2.sizes() == torch::IntArrayRef({d, d}),
               "frechet_distance: covariances must be {} x {}, got {} and {}", d, d, shape_str(sigma1.sizes()),
               shape_str(sigma2.sizes()));
  auto f64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  const auto s1 = symmetrize(f64(sigma1)), s2 = symmetrize(f64(sigma2));
  // S1^{1/2} from the symmetric eigendecomposition; eigenvalues below 0 are rounding of a PSD matrix.
  auto [w, v] = torch::linalg_eigh(s1, "L");
  const auto root1 = (v * w.clamp_min(0).sqrt().unsqueeze(0)).mm(v.t());
  // S1 S2 is similar to the symmetric PSD S1^{1/2} S2 S1^{1/2}: same eigenvalues, so
  // tr (S1 S2)^{1/2} is the sum of their square roots, with no non-symmetric sqrtm needed.
  const auto middle = torch::linalg_eigvalsh(symmetrize(root1.mm(s2).mm(root1)), "L").clamp_min(0);
  const auto diff = f64(mu1) - f64(mu2);
  const double value = diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
                       2.0 * middle.sqrt().sum().item<double>();
  return std::max(0.0, value);  // a distance: a tiny negative is cancellation, not signal
}

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}

double fid(const torch::Tensor& features1, const torch::Tensor& features2) {
  DRIFTX_CHECK(features1.dim() == 2 && features2.dim() == 2 && features1.size(1) == features2.size(1),
               "fid: feature sets must have the same number of columns, got {} and {}", shape_str(features1.sizes()),
               shape_str(features2.sizes()));
  return frechet_distance(gaussian_fit(features1), gaussian_fit(features2));
}

double mmd2_unbiased_polynomial(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  const auto x = as_features(x_in, "mmd2 (first set)"), y = as_features(y_in, "mmd2 (second set)");
  DRIFTX_CHECK(x.size(1) == y.size(1), "mmd2: feature sets must have the same number of columns, got {} and {}",
               shape_str(x.sizes()), shape_str(y.sizes()));
  const double d = static_cast<double>(x.size(1)), m = static_cast<double>(x.size(0)),
               n = static_cast<double>(y.size(0));
  auto kernel = [d](const torch::Tensor& a, const torch::Tensor& b) { return (a.mm(b.t()) / d + 1.0).pow(3); };
  const auto kxx = kernel(x, x), kyy = kernel(y, y);
  // Unbiased: the diagonals k(x_i, x_i) are left out of the within-set means.
  const double xx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / (m * (m - 1));
  const double yy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / (n * (n - 1));
  const double xy = kernel(x, y).sum().item<double>() / (m * n);
  return xx + yy - 2.0 * xy;
}

KidResult kid(const torch::Tensor& features1, const torch::Tensor& features2, int64_t subsets, int64_t subset_size,
              uint64_t seed) {
  DRIFTX_CHECK(subsets >= 1 && subset_size >= 2, "kid: need subsets >= 1 and subset_size >= 2, got {} and {}",
               subsets, subset_size);
  const auto x = as_features(features1, "kid (first set)"), y = as_features(features2, "kid (second set)");
  KidResult r;
  r.subsets = subsets;
  r.subset_size = std::min({subset_size, x.size(0), y.size(0)});
  // Subsets covering both whole sets are all the same sets (MMD ignores order): one is enough.
  if (r.subset_size == x.size(0) && r.subset_size == y.size(0)) {
    r.mean = mmd2_unbiased_polynomial(x, y);
    return r;
  }
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    auto ix = torch::randperm(x.size(0), gen, torch::kLong).slice(0, 0, r.subset_size);
    auto iy = torch::randperm(y.size(0), gen, torch::kLong).slice(0, 0, r.subset_size);
    values.push_back(mmd2_unbiased_polynomial(x.index_select(0, ix), y.index_select(0, iy)));
  }
  for (double v : values) r.mean += v / static_cast<double>(subsets);
  for (double v : values) r.std += (v - r.mean) * (v - r.mean) / static_cast<double>(subsets);
  r.std = std::sqrt(r.std);  // population std over subsets, as torch-fidelity / clean-fid report it
  return r;
}

PrecisionRecall precision_recall(const torch::Tensor& real_in, const torch::Tensor& generated_in, int64_t k) {
  DRIFTX_CHECK(k >= 1, "precision_recall: k must be >= 1, got {}", k);
  const auto real = as_features(real_in, "precision_recall (real)", k + 1);
  const auto gen = as_features(generated_in, "precision_recall (generated)", k + 1);
  DRIFTX_CHECK(real.size(1) == gen.size(1), "precision_recall: feature sets must have the same number of columns, "
               "got {} and {}", shape_str(real.sizes()), shape_str(gen.sizes()));
  return {coverage(gen, real, kth_radius_sq(real, k)), coverage(real, gen, kth_radius_sq(gen, k))};
}

double class_accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  DRIFTX_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0) && labels.numel() > 0,
               "class_accuracy: expected N x C logits and N labels, got {} and {}", shape_str(logits.sizes()),
               shape_str(labels.sizes()));
  const auto pred = logits.detach().cpu().argmax(1);
  return pred.eq(labels.cpu().to(torch::kLong)).to(torch::kFloat64).mean().item<double>();
}

}  // namespace driftx
