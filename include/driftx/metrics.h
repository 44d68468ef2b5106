// Sample-quality metrics on feature sets (SPEC §6): FID, KID, precision / recall, class accuracy.
// Feature sets are N x d tensors (any float dtype); everything is computed in float64 on the CPU.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace driftx {

// Mean (d) and unbiased covariance (d x d) of N x d features, float64.
struct GaussianFit {
  torch::Tensor mu, sigma;
};
GaussianFit gaussian_fit(const torch::Tensor& features);

// ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}), with tr (S1 S2)^{1/2} = sum sqrt(eig(S1^{1/2} S2 S1^{1/2})),
// eigenvalues clamped at 0: symmetric eigendecompositions only, so singular covariances are fine.
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2);
double frechet_distance(const GaussianFit& a, const GaussianFit& b);
double fid(const torch::Tensor& features1, const torch::Tensor& features2);  // Gaussian fits of both

// Unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018).
double mmd2_unbiased_polynomial(const torch::Tensor& x, const torch::Tensor& y);
// KID: mmd2_unbiased_polynomial over `subsets` random pairs of subsets of size min(subset_size, n1, n2)
// (drawn without replacement, seeded); mean and standard deviation over the subsets. When the subsets
// are the whole sets (n1 = n2 <= subset_size) they are all equal: one evaluation, std 0. KID's scale
// follows the features' (the evaluator's are O(10), so its KIDs are not comparable to Inception ones).
struct KidResult {
  double mean = 0, std = 0;
  int64_t subsets = 0, subset_size = 0;
};
KidResult kid(const torch::Tensor& features1, const torch::Tensor& features2, int64_t subsets = 100,
              int64_t subset_size = 1000, uint64_t seed = 0);

// Improved precision / recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls
// around its points with radius the distance to the k-th nearest other point. Precision: fraction of
// generated points inside the real manifold; recall: fraction of real points inside the generated one.
struct PrecisionRecall {
  double precision = 0, recall = 0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated, int64_t k = 3);

// Fraction of rows whose argmax logit equals the label.
double class_accuracy(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace driftx
