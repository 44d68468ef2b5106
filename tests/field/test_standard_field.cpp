// The standard field against a literal float64 transcription of SPEC §2 (different code path:
// torch::cdist, explicit softmaxes, the product before the square root).
#include <gtest/gtest.h>

#include "driftx/error.h"
#include "driftx/standard_field.h"

using namespace driftx;
using torch::indexing::Slice;

namespace {

struct Reference {
  torch::Tensor goal, loss;
  double s = 0, c = 0;
};

// X: G x N x D, Yn: G x U x D (may be empty), Yp: G x P x D, w: G.
Reference reference_field(torch::Tensor X, torch::Tensor Yn, torch::Tensor Yp, torch::Tensor w,
                          const std::vector<double>& taus, double floor) {
  X = X.to(torch::kFloat64), Yn = Yn.to(torch::kFloat64), Yp = Yp.to(torch::kFloat64);
  const int64_t G = X.size(0), N = X.size(1), U = Yn.size(1), D = X.size(2);
  auto T = torch::cat({X, Yn, Yp}, 1);
  auto wT = torch::ones({G, T.size(1)}, torch::kFloat64);
  for (int64_t g = 0; g < G; ++g) wT.index_put_({g, Slice(N, N + U)}, w[g].item<double>());
  auto dist = torch::cdist(X, T).pow(2).clamp_min(1e-8).sqrt();
  double s = (dist * wT.unsqueeze(1)).mean().item<double>() / wT.mean().item<double>();
  double c = std::max(s / std::sqrt(double(D)), 1e-3);
  auto Xs = X / c, Ts = T / c;
  auto dn = dist / std::max(s, 1e-3);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t i = 0; i < N; ++i) dn.index_put_({g, i, i}, dn.index({g, i, i}) + 100.0);
  auto total = torch::zeros_like(Xs);
  for (double tau : taus) {
    auto logits = -dn / tau;
    auto p = torch::softmax(logits, 2) * torch::softmax(logits, 1);
    auto A = p.clamp_min(floor).sqrt() * wT.unsqueeze(1);
    auto An = A.index({Slice(), Slice(), Slice(0, N + U)}), Ap = A.index({Slice(), Slice(), Slice(N + U)});
    auto coef = torch::cat({-An * Ap.sum(2, true), Ap * An.sum(2, true)}, 2);
    auto F = torch::matmul(coef, Ts) - coef.sum(2, true) * Xs;
    total += F / F.pow(2).mean().clamp_min(1e-8).sqrt();
  }
  Reference r;
  r.goal = Xs + total;
  r.loss = (Xs - r.goal).pow(2).mean();
  r.s = s, r.c = c;
  return r;
}

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm() / b.to(torch::kFloat64).norm()).item<double>();
}

struct Case {
  int64_t G, N, U, P, D;
  std::vector<double> taus;
  double floor;
};

}  // namespace

class StandardFieldVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(StandardFieldVsReference, MatchesFloat64Reference) {
  const Case c = GetParam();
  torch::manual_seed(c.G * 1000 + c.N + c.U + c.P + c.D);
  auto X = torch::randn({c.G, c.N, c.D});
  auto Yn = torch::randn({c.G, c.U, c.D}) * 1.3 + 0.2;
  auto Yp = torch::randn({c.G, c.P, c.D}) + 0.5;
  auto w = torch::rand({c.G}) * 3;
  StandardFieldConfig cfg;
  cfg.temperatures = c.taus;
  cfg.affinity_floor = c.floor;
  StandardFieldInput in{X, Yp, c.U > 0 ? Yn : torch::Tensor(), w};
  auto got = StandardField(cfg).compute(in);
  auto ref = reference_field(X, Yn, Yp, w, c.taus, c.floor);
  EXPECT_NEAR(got.scale, ref.s, 1e-5 * ref.s);
  EXPECT_NEAR(got.coord_scale, ref.c, 1e-5 * ref.c);
  EXPECT_LT(rel_err(got.goal, ref.goal), 1e-5);
  EXPECT_NEAR(got.loss.item<double>(), ref.loss.item<double>(), 1e-5 * ref.loss.item<double>());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, StandardFieldVsReference,
    ::testing::Values(Case{1, 16, 0, 24, 8, {0.02, 0.05, 0.2}, 1e-6}, Case{1, 16, 0, 24, 8, {0.02, 0.05, 0.2}, 0.0},
                      Case{3, 10, 6, 12, 5, {0.05}, 1e-6}, Case{2, 32, 8, 64, 49, {0.02, 0.2}, 0.0},
                      Case{4, 8, 4, 8, 196, {0.02, 0.05, 0.2}, 1e-6}, Case{1, 64, 16, 128, 784, {0.1, 1.0}, 1e-6}),
    // e.g. "G3_N10_U6_P12_D5_T1_floor": readable in ctest's list and in a failure.
    [](const ::testing::TestParamInfo<Case>& info) {
      const auto& c = info.param;
      return "G" + std::to_string(c.G) + "_N" + std::to_string(c.N) + "_U" + std::to_string(c.U) + "_P" +
             std::to_string(c.P) + "_D" + std::to_string(c.D) + "_T" + std::to_string(c.taus.size()) +
             (c.floor > 0 ? "_floor" : "_nofloor");
    });

TEST(StandardField, RowBlockingDoesNotChangeTheField) {
  // The N x T work runs over blocks of rows (config.block_elements); the column logsumexp and the
  // row/column minima are accumulated across blocks. Blocks of 1, 7 and all rows, with several
  // groups, extra negatives and the floor, against the float64 reference.
  torch::manual_seed(11);
  const int64_t G = 3, N = 20, U = 5, P = 17, D = 9, T = N + U + P;
  auto X = torch::randn({G, N, D}), Yn = torch::randn({G, U, D}) * 1.3 + 0.2, Yp = torch::randn({G, P, D}) + 0.5;
  auto w = torch::rand({G}) * 3;
  const std::vector<double> taus{0.02, 0.05, 0.2};
  auto ref = reference_field(X, Yn, Yp, w, taus, 1e-6);
  for (int64_t rows : {int64_t(1), int64_t(7), N}) {
    StandardFieldConfig cfg;
    cfg.temperatures = taus;
    cfg.block_elements = rows * G * T;
    auto got = StandardField(cfg).compute({X, Yp, Yn, w});
    EXPECT_NEAR(got.scale, ref.s, 1e-5 * ref.s) << rows << " rows per block";
    EXPECT_LT(rel_err(got.goal, ref.goal), 1e-5) << rows << " rows per block";
  }
}

// bf16 products (coef @ targets): A's entries and the targets rounded to 8 significant bits (2^-9
// relative each) and the product once more (2^-9), float32 accumulation inside the product: each F
// entry moves by <= 3 * 2^-9 * (|coef| @ |Ts|), which relative to |F| is the cancellation factor
// kappa of attraction minus repulsion (~3 for these Gaussian inputs): <= 1.8e-2, the normalised drift
// likewise. Both paths of the products (one for all temperatures, one per temperature) are covered.
TEST(StandardField, Bf16ProductsStayCloseToFloat32) {
  torch::manual_seed(21);
  auto X = torch::randn({2, 24, 32}), Yp = torch::randn({2, 40, 32}) + 0.3;
  for (int64_t block : {int64_t(1) << 20, int64_t(64)}) {
    StandardFieldConfig f32, b16;
    f32.block_elements = b16.block_elements = block;
    b16.products = ProductPrecision::BFloat16;
    auto a = StandardField(f32).compute({X, Yp, {}, {}}), b = StandardField(b16).compute({X, Yp, {}, {}});
    EXPECT_LT(rel_err(b.drift, a.drift), 3e-2) << "block " << block;
    EXPECT_GT(rel_err(b.drift, a.drift), 0.0) << "bf16 must change the products";
    EXPECT_GT(torch::cosine_similarity(b.drift.flatten(0, 1), a.drift.flatten(0, 1), 1).min().item<double>(), 0.99);
  }
}

TEST(StandardField, TwoDimensionalInputIsOneGroup) {
  torch::manual_seed(3);
  auto X = torch::randn({12, 6}), Yp = torch::randn({20, 6});
  auto a = StandardField().compute({X, Yp, {}, {}});
  auto b = StandardField().compute({X.unsqueeze(0), Yp.unsqueeze(0), {}, {}});
  EXPECT_EQ(a.goal.sizes(), X.sizes());
  EXPECT_TRUE(torch::allclose(a.goal, b.goal.squeeze(0)));
}

TEST(StandardField, ScaleAndNormalisationAreSharedAcrossGroups) {
  // Group 1 is group 0 blown up 10x: processed together, both share one s, so group 0's goal differs
  // from processing it alone.
  torch::manual_seed(4);
  auto X0 = torch::randn({1, 10, 4}), P0 = torch::randn({1, 14, 4});
  auto both = StandardField().compute({torch::cat({X0, X0 * 10}), torch::cat({P0, P0 * 10}), {}, {}});
  auto alone = StandardField().compute({X0, P0, {}, {}});
  EXPECT_GT(both.scale, 3 * alone.scale);
  EXPECT_GT(rel_err(both.goal.narrow(0, 0, 1), alone.goal), 1e-2);
}

TEST(StandardField, SelfExclusionChangesTheField) {
  // The reference (which adds +100 to each sample's own normalised distance) pins the exact value;
  // here: without the exclusion each sample is attracted by itself as a negative, so the field moves.
  torch::manual_seed(8);
  auto X = torch::randn({16, 4}), Yp = torch::randn({16, 4});
  StandardFieldConfig off;
  off.self_exclusion = 0;
  auto with = StandardField().compute({X, Yp, {}, {}});
  auto without = StandardField(off).compute({X, Yp, {}, {}});
  EXPECT_GT(rel_err(without.drift, with.drift), 0.05);
}

TEST(StandardField, TranslationInvariantBecauseCoefficientsSumToZero) {
  // Coefficients sum to zero per row: a constant shift of every input leaves the drift unchanged.
  torch::manual_seed(5);
  auto X = torch::randn({16, 3}), Yp = torch::randn({16, 3});
  auto a = StandardField().compute({X, Yp, {}, {}});
  auto b = StandardField().compute({X + 7.0, Yp + 7.0, {}, {}});
  EXPECT_LT(rel_err(b.drift, a.drift), 1e-4);
}

TEST(StandardField, GradientReachesOnlyGeneratedInput) {
  torch::manual_seed(6);
  auto X = torch::randn({10, 5}, torch::requires_grad());
  auto Yp = torch::randn({12, 5}, torch::requires_grad());
  auto Yn = torch::randn({4, 5}, torch::requires_grad());
  auto r = StandardField().compute({X, Yp, Yn, torch::tensor(0.5)});
  EXPECT_FALSE(r.goal.requires_grad());
  r.loss.backward();
  ASSERT_TRUE(X.grad().defined());
  EXPECT_FALSE(Yp.grad().defined());
  EXPECT_FALSE(Yn.grad().defined());
  // d/dX mean((X/c - goal)^2) with goal, c constant = 2 (X/c - goal) / (c * numel).
  auto expected = 2 * (X.detach() / r.coord_scale - r.goal) / (r.coord_scale * X.numel());
  EXPECT_LT(rel_err(X.grad(), expected), 1e-5);
}

TEST(StandardField, LossEqualsMeanSquaredDrift) {
  torch::manual_seed(7);
  auto X = torch::randn({20, 6}), Yp = torch::randn({30, 6});
  auto r = StandardField().compute({X, Yp, {}, {}});
  EXPECT_NEAR(r.loss.item<double>(), r.drift.pow(2).mean().item<double>(), 1e-6);
}

TEST(StandardField, RejectsInconsistentShapes) {
  auto X = torch::randn({10, 5});
  EXPECT_THROW(StandardField().compute({X, torch::randn({10, 4}), {}, {}}), Error);
  EXPECT_THROW(StandardField().compute({X, torch::randn({10, 5}), torch::randn({3, 5}), {}}), Error);
  EXPECT_THROW(StandardField().compute({torch::randn({1, 5}), torch::randn({3, 5}), {}, {}}), Error);
  StandardFieldConfig bad;
  bad.temperatures = {};
  EXPECT_THROW(StandardField{bad}, Error);
}
