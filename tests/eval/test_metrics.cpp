// FID / KID / precision-recall against closed forms, direct formulas and hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "driftx/error.h"
#include "driftx/metrics.h"

using namespace driftx;

namespace {

torch::Tensor f64(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v), torch::kFloat64); }
torch::Tensor mat(std::initializer_list<double> v, int64_t d) { return f64(v).reshape({d, d}); }

// N samples of N(mu, L L^T).
torch::Tensor gaussian(int64_t n, const torch::Tensor& mu, const torch::Tensor& chol, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({n, mu.numel()}, gen, torch::kFloat64).mm(chol.t()) + mu;
}

}  // namespace

TEST(Fid, IdenticalFeatureSetsGiveZero) {
  torch::manual_seed(0);
  auto f = torch::randn({500, 32}) * 3 + 1;
  EXPECT_LT(fid(f, f), 1e-6);
  EXPECT_LT(fid(f, f.clone()), 1e-6);
}

TEST(Fid, DiagonalCovariancesMatchClosedForm) {
  // Commuting covariances: tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a_i) - sqrt(b_i))^2.
  auto mu1 = f64({0, 1, -2, 0.5}), mu2 = f64({1, 1, 0, 0});
  auto a = f64({1.0, 4.0, 0.25, 2.0}), b = f64({9.0, 1.0, 0.25, 0.0});  // one zero variance: singular S2
  const double expected = (mu1 - mu2).pow(2).sum().item<double>() + (a.sqrt() - b.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(frechet_distance(mu1, torch::diag(a), mu2, torch::diag(b)), expected, 1e-12);
  EXPECT_NEAR(expected, 5.25 + 4 + 1 + 0 + 2, 1e-12);
}

TEST(Fid, NonCommutingCovariancesMatchReferenceSqrtm) {
  // References: numpy, Denman-Beavers sqrtm of S1 S2 (checked: sqrtm^2 == S1 S2 to 1e-13), and for 2x2
  // the closed form tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), which agrees to 1e-15.
  auto mu1 = f64({0.5, -1.0}), mu2 = f64({1.5, 0.25});
  auto s1 = mat({2.0, 0.6, 0.6, 1.0}, 2), s2 = mat({1.0, -0.4, -0.4, 3.0}, 2);
  ASSERT_FALSE(torch::allclose(s1.mm(s2), s2.mm(s1)));
  EXPECT_NEAR(frechet_distance(mu1, s1, mu2, s2), 3.6173188564958974, 1e-12);
  EXPECT_NEAR(frechet_distance(mu2, s2, mu1, s1), 3.6173188564958974, 1e-12);  // symmetric

  auto mu3 = f64({0.0, 1.0, 2.0}), mu4 = f64({0.1, 0.9, 2.5});
  auto s3 = mat({1.0, 0.3, 0.1, 0.3, 0.5, -0.2, 0.1, -0.2, 0.8}, 3);
  auto s4 = mat({0.2, 0.05, 0.0, 0.05, 1.5, 0.4, 0.0, 0.4, 0.9}, 3);
  EXPECT_NEAR(frechet_distance(mu3, s3, mu4, s4), 1.095034704353836, 1e-12);
}

TEST(Fid, GaussianSamplesApproachTheClosedForm) {
  auto mu1 = f64({0.5, -1.0}), mu2 = f64({1.5, 0.25});
  auto s1 = mat({2.0, 0.6, 0.6, 1.0}, 2), s2 = mat({1.0, -0.4, -0.4, 3.0}, 2);
  auto x = gaussian(40000, mu1, torch::linalg_cholesky(s1), 1), y = gaussian(40000, mu2, torch::linalg_cholesky(s2), 2);
  // Sampling error of ~1/sqrt(n) per moment: 0.05 on a value of 3.6 is a few standard errors.
  EXPECT_NEAR(fid(x, y), 3.6173188564958974, 0.05);
  EXPECT_NEAR(fid(x.to(torch::kFloat32), y.to(torch::kFloat32)), 3.6173188564958974, 0.05);
}

TEST(Fid, RejectsBadShapes) {
  EXPECT_THROW(fid(torch::randn({10, 3}), torch::randn({10, 4})), Error);
  EXPECT_THROW(fid(torch::randn({1, 3}), torch::randn({10, 3})), Error);
  EXPECT_THROW(frechet_distance(f64({0, 0}), torch::eye(3), f64({0, 0}), torch::eye(2)), Error);
  auto bad = torch::randn({10, 3});
  bad[0][0] = NAN;
  EXPECT_THROW(fid(bad, torch::randn({10, 3})), Error);
}

TEST(Kid, UnbiasedMmdMatchesDirectSum) {
  torch::manual_seed(1);
  auto x = torch::randn({5, 3}, torch::kFloat64), y = torch::randn({4, 3}, torch::kFloat64) + 0.5;
  auto k = [&](const torch::Tensor& a, const torch::Tensor& b) {
    return std::pow(a.dot(b).item<double>() / 3.0 + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      if (i != j) xx += k(x[i], x[j]);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      if (i != j) yy += k(y[i], y[j]);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) xy += k(x[i], y[j]);
  const double expected = xx / 20 + yy / 12 - 2 * xy / 20;
  EXPECT_NEAR(mmd2_unbiased_polynomial(x, y), expected, 1e-12 * std::max(1.0, std::abs(expected)));
}

TEST(Kid, SameDistributionIsZeroShiftedIsPositive) {
  auto gen = at::detail::createCPUGenerator(3);
  auto x = torch::randn({2000, 16}, gen), y = torch::randn({2000, 16}, gen);
  auto same = kid(x, y, 50, 500, 0);
  EXPECT_EQ(same.subset_size, 500);
  EXPECT_GT(same.std, 0);
  EXPECT_LT(std::abs(same.mean), 3 * same.std);
  auto shifted = kid(x, y + 0.5, 50, 500, 0);
  EXPECT_GT(shifted.mean, 10 * shifted.std);
  EXPECT_GT(shifted.mean, 20 * std::abs(same.mean));
  // The subset size is capped at the smaller set.
  EXPECT_EQ(kid(x.narrow(0, 0, 100), y, 5, 1000, 0).subset_size, 100);
}

TEST(PrecisionRecall, IdenticalSetsAndFarApartSets) {
  torch::manual_seed(2);
  auto x = torch::randn({300, 8});
  auto same = precision_recall(x, x.clone());
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  auto far = precision_recall(x, torch::randn({300, 8}) + 100);
  EXPECT_DOUBLE_EQ(far.precision, 0.0);
  EXPECT_DOUBLE_EQ(far.recall, 0.0);
}

TEST(PrecisionRecall, HandComputedOneDimensionalCase) {
  // k = 1. Real {0,1,2,3,6}: radii 1,1,1,1,3. Generated {0.5,1.5,20,21}: radii 1,1,1,1.
  // Precision: 0.5 and 1.5 fall in real balls, 20 and 21 do not -> 2/4.
  // Recall: 0, 1, 2 lie within 1 of a generated point, 3 (1.5 from 1.5) and 6 do not -> 3/5.
  auto real = f64({0, 1, 2, 3, 6}).unsqueeze(1), gen = f64({0.5, 1.5, 20, 21}).unsqueeze(1);
  auto pr = precision_recall(real, gen, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.5);
  EXPECT_DOUBLE_EQ(pr.recall, 0.6);
  EXPECT_THROW(precision_recall(real, gen, 4), Error);  // needs k + 1 points per set
}

TEST(ClassAccuracy, CountsArgmaxMatches) {
  auto logits = torch::tensor({{2.f, 1.f, 0.f}, {0.f, 3.f, 1.f}, {0.f, 0.f, 1.f}, {5.f, 0.f, 0.f}});
  EXPECT_DOUBLE_EQ(class_accuracy(logits, torch::tensor({0, 1, 2, 1}, torch::kLong)), 0.75);
  EXPECT_THROW(class_accuracy(logits, torch::tensor({0, 1}, torch::kLong)), Error);
}
