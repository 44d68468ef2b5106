// The projected field against a literal float64 transcription of SPEC §3 (unfolded psi features,
// explicit per-shard maps), and against the exact full-data attraction.
#include <gtest/gtest.h>

#include <cstdio>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/projected_field.h"

using namespace driftx;

namespace {

torch::Tensor f64(const torch::Tensor& t) { return t.to(torch::kFloat64); }

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((f64(a) - f64(b)).norm() / f64(b).norm()).item<double>();
}

torch::Tensor kern(const torch::Tensor& a, const torch::Tensor& b, double tau_eff) {
  return torch::exp(-torch::cdist(a, b).pow(2).clamp_min(1e-8).sqrt() / tau_eff);
}

// Returns the target x/S + sum_tau normalised(b+ - b-) in float64.
torch::Tensor reference_target(torch::Tensor X, torch::Tensor Y, torch::Tensor ylab, torch::Tensor U, torch::Tensor ulab,
                               int64_t classes, int64_t shards, double S, const std::vector<double>& taus,
                               double ridge, bool conditional, torch::Tensor xlab, bool projected_repulsion,
                               int64_t* clamped, torch::Tensor mass = {}) {
  const double eps = 1e-8;
  X = f64(X) / S, Y = f64(Y) / S, U = f64(U) / S;
  const int64_t D = X.size(1), B = X.size(0);
  auto drift = torch::zeros_like(X);
  for (double tau : taus) {
    const double te = tau * std::sqrt(double(D));
    auto num = torch::zeros_like(X), den = torch::zeros({B}, torch::kFloat64);
    auto unum = torch::zeros_like(X), uden = torch::zeros({B}, torch::kFloat64);  // all classes (guidance)
    std::vector<torch::Tensor> psis;
    for (int64_t k = 0; k < shards; ++k) {
      auto in_shard = [&](const torch::Tensor& lab) { return (lab * shards).div(classes, "floor") == k; };
      auto Uk = shards == 1 ? U : U.index({in_shard(ulab)});
      auto W = kern(Uk, Uk, te) + ridge * torch::eye(Uk.size(0), torch::kFloat64);
      auto [ev, V] = at::linalg_eigh(W, "L");
      auto A = V.matmul(torch::diag(ev.clamp_min(1e-8).rsqrt())).matmul(V.t());
      auto psi_x = kern(X, Uk, te).matmul(A);
      psis.push_back(psi_x);
      for (int64_t i = 0; i < B; ++i) {
        auto mask = shards == 1 ? torch::ones({Y.size(0)}, torch::kBool) : in_shard(ylab);
        {
          auto Ya = Y.index({mask});
          auto psi_a = kern(Ya, Uk, te).matmul(A);
          unum[i] += psi_x[i].matmul(psi_a.t().matmul(Ya));
          uden[i] += psi_x[i].dot(psi_a.sum(0));
        }
        if (conditional) mask = mask.logical_and(ylab == xlab[i]);
        auto Yi = Y.index({mask});
        if (Yi.size(0) == 0) continue;
        auto psi_y = kern(Yi, Uk, te).matmul(A);
        num[i] += psi_x[i].matmul(psi_y.t().matmul(Yi));
        den[i] += psi_x[i].dot(psi_y.sum(0));
      }
    }
    *clamped += (den < eps).sum().item<int64_t>();
    auto attract = num / den.clamp_min(eps).unsqueeze(1);
    auto repel = torch::zeros_like(X);
    auto groups = conditional ? xlab : torch::zeros({B}, torch::kLong);
    auto psi = torch::cat(psis, 1);
    for (int64_t i = 0; i < B; ++i) {
      auto same = (groups == groups[i]).clone();
      same[i] = false;
      auto Xj = X.index({same});
      auto w = projected_repulsion ? psi.index({same}).matmul(psi[i]) : kern(X[i].unsqueeze(0), Xj, te).squeeze(0);
      auto rnum = w.matmul(Xj), rden = w.sum();
      if (mass.defined() && uden[i].item<double>() > 0) {
        // Guidance: the unconditional real set as extra negatives of total weight mass_i (SPEC §2).
        const double beta = mass[i].item<double>() / static_cast<double>(Y.size(0));
        rnum = rnum + beta * unum[i], rden = rden + beta * uden[i];
      }
      repel[i] = rnum / rden.clamp_min(eps);
    }
    auto v = attract - repel;
    drift += v / (v.pow(2).mean().sqrt() + eps);
  }
  return X + drift;
}

struct Data {
  torch::Tensor Y, ylab, U, ulab, X, xlab;
};

Data make_data(int64_t n, int64_t D, int64_t C, int64_t M, int64_t B, uint64_t seed) {
  torch::manual_seed(seed);
  Data d;
  d.ylab = torch::arange(n) % C;
  auto centers = torch::randn({C, D}) * 2;
  d.Y = centers.index_select(0, d.ylab) + torch::randn({n, D});
  auto pick = torch::randperm(n).narrow(0, 0, M);
  d.U = d.Y.index_select(0, pick), d.ulab = d.ylab.index_select(0, pick);
  d.xlab = torch::arange(B) % C;
  d.X = centers.index_select(0, d.xlab) + 0.5 * torch::randn({B, D});
  return d;
}

struct Case {
  int64_t D, C, shards, M;
  bool conditional, projected_repulsion;
  std::vector<double> taus;
  bool guided = false;  // CFG: per-query unconditional negative mass
};

}  // namespace

class ProjectedVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(ProjectedVsReference, MatchesFloat64Reference) {
  const Case c = GetParam();
  auto d = make_data(240, c.D, c.C, c.M, 24, 11 + c.D + c.shards);
  ProjectedFieldConfig cfg;
  cfg.temperatures = c.taus;
  cfg.repulsion = c.projected_repulsion ? Repulsion::Projected : Repulsion::Exact;
  cfg.chunk = 64;  // several chunks
  auto field = build_projected_field(d.Y, d.ylab, d.U, d.ulab, {c.C, c.shards}, std::nullopt, cfg);
  // Guidance: alpha in [1, 4] per query, N = 6 samples per group -> mass (alpha - 1)(N - 1).
  auto mass = c.guided ? (torch::linspace(1.0, 4.0, d.X.size(0)) - 1) * 5 : torch::Tensor();
  auto r = field.compute(d.X, c.conditional ? d.xlab : torch::Tensor(), mass);
  int64_t ref_clamped = 0;
  auto ref = reference_target(d.X, d.Y, d.ylab, d.U, d.ulab, c.C, c.shards, field.scale(), c.taus, cfg.ridge,
                              c.conditional, d.xlab, c.projected_repulsion, &ref_clamped,
                              c.guided ? f64(mass) : torch::Tensor());
  if (c.guided) {  // the guidance term must change the field, or this case tests nothing
    auto plain = field.compute(d.X, d.xlab);
    EXPECT_GT(rel_err(r.drift, plain.drift), 1e-2);
  }
  EXPECT_EQ(r.clamped, ref_clamped);
  if (ref_clamped == 0) {
    EXPECT_LT(rel_err(r.target, ref), 5e-4);  // float32 folded products vs float64
    EXPECT_LT(rel_err(r.drift, ref - f64(d.X) / field.scale()), 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ProjectedVsReference,
    ::testing::Values(Case{6, 1, 1, 30, false, false, {0.2, 0.5}}, Case{6, 4, 1, 40, false, false, {0.2, 0.5}},
                      Case{6, 4, 1, 40, true, false, {0.2, 0.3, 0.5}}, Case{8, 4, 2, 40, false, false, {0.2, 0.5}},
                      Case{8, 4, 2, 40, true, false, {0.3}}, Case{6, 4, 1, 40, false, true, {0.2, 0.5}},
                      Case{8, 4, 4, 40, true, true, {0.2, 0.5}},
                      // Guidance (CFG) with exact and projected repulsion, one and two shards
                      Case{6, 4, 1, 40, true, false, {0.2, 0.5}, true}, Case{8, 4, 2, 40, true, true, {0.3}, true},
                      // SPEC default temperatures: some queries fall outside the landmarks' reach and are clamped
                      Case{6, 4, 1, 40, true, false, {0.02, 0.05, 0.2}}));

TEST(ProjectedField, FeatureScaleFollowsSpec) {
  auto d = make_data(300, 5, 3, 600 / 2, 4, 3);
  auto idx = torch::linspace(0, d.U.size(0) - 1, 256, torch::kFloat64).round().to(torch::kLong);
  auto expected = torch::cdist(f64(d.Y), f64(d.U.index_select(0, idx))).mean().item<double>() / std::sqrt(5.0);
  EXPECT_NEAR(projected_feature_scale(d.Y, d.U, 37), expected, 1e-5 * expected);
}

TEST(ProjectedField, AllRealSamplesAsLandmarksRecoverExactAttraction) {
  auto d = make_data(200, 4, 1, 200, 32, 5);
  ProjectedFieldConfig cfg;
  cfg.temperatures = {0.2, 0.5};
  cfg.ridge = 1e-8;
  auto field = build_projected_field(d.Y, {}, d.Y, {}, {}, std::nullopt, cfg);
  auto xs = d.X / field.scale();
  auto proj = field.attractions(xs, {});
  auto exact = exact_attractions(xs, d.Y / field.scale(), {0.2 * 2, 0.5 * 2});
  for (size_t t = 0; t < 2; ++t) EXPECT_LT(rel_err(proj[t] - xs, exact[t] - xs), 2e-2) << "t=" << t;
}

TEST(ProjectedField, SummariesAddOverShards) {
  auto d = make_data(300, 6, 3, 30, 8, 7);
  ProjectedFieldConfig cfg;
  const double S = projected_feature_scale(d.Y, d.U);
  ProjectedField whole(d.U, d.ulab, {3, 3}, S, cfg), a(d.U, d.ulab, {3, 3}, S, cfg), b(d.U, d.ulab, {3, 3}, S, cfg);
  whole.add_data(d.Y, d.ylab);
  a.add_data(d.Y.narrow(0, 0, 110), d.ylab.narrow(0, 0, 110));
  b.add_data(d.Y.narrow(0, 110, 190), d.ylab.narrow(0, 110, 190));
  a.merge_from(b);
  EXPECT_EQ(a.summarised_samples(), 300);
  for (int64_t k = 0; k < 3; ++k)
    for (size_t t = 0; t < 3; ++t) {
      EXPECT_LT(rel_err(a.summary(k, t).kysum, whole.summary(k, t).kysum), 1e-6);
      EXPECT_LT(rel_err(a.summary(k, t).ksum, whole.summary(k, t).ksum), 1e-6);
    }
  EXPECT_LT(rel_err(a.compute(d.X).target, whole.compute(d.X).target), 1e-5);
  ProjectedField other_scale(d.U, d.ulab, {3, 3}, S * 2, cfg);
  EXPECT_THROW(a.merge_from(other_scale), Error);
}

TEST(ProjectedField, CacheRoundTripAndRejectsOtherConfiguration) {
  auto d = make_data(200, 5, 2, 20, 8, 9);
  ProjectedFieldConfig cfg;
  auto field = build_projected_field(d.Y, d.ylab, d.U, d.ulab, {2, 1}, std::nullopt, cfg);
  const std::string path = testing::TempDir() + "/driftx_cache_test.pt";
  const auto fp = tensor_fingerprint(d.Y);
  field.save(path, "given", fp);
  ProjectedField loaded(d.U, d.ulab, {2, 1}, field.scale(), cfg);
  loaded.load(path, "given", fp);
  EXPECT_TRUE(torch::equal(loaded.compute(d.X, d.xlab).target, field.compute(d.X, d.xlab).target));
  EXPECT_THROW(loaded.load(path, "given", tensor_fingerprint(d.Y + 1)), Error);  // other data
  EXPECT_THROW(loaded.load(path, "kcenter", fp), Error);                         // other landmark strategy
  ProjectedFieldConfig other = cfg;
  other.ridge = 1e-3;
  ProjectedField other_ridge(d.U, d.ulab, {2, 1}, field.scale(), other);
  try {
    other_ridge.load(path, "given", fp);
    FAIL() << "expected a mismatch error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ridge"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loaded.load(path + ".missing", "given", fp), Error);
  std::remove(path.c_str());
}

TEST(ProjectedField, AttractionOnTheDataMatchesExactWithAllSamplesAsLandmarks) {
  // Queries are the data themselves and every sample is a landmark: the projected attraction equals the
  // exact one up to the ridge.
  auto d = make_data(64, 3, 1, 64, 8, 13);
  ProjectedFieldConfig cfg;
  cfg.temperatures = {0.5};
  cfg.ridge = 1e-9;
  auto field = build_projected_field(d.Y, {}, d.Y, {}, {}, std::nullopt, cfg);
  auto xs = d.Y / field.scale();
  auto a = field.attractions(xs, {})[0];
  auto exact_all = exact_attractions(xs, xs, {0.5 * std::sqrt(3.0)})[0];
  EXPECT_LT(rel_err(a - xs, exact_all - xs), 2e-2);
}

TEST(ProjectedField, CountsClampedDenominatorsFarFromLandmarks) {
  auto d = make_data(100, 4, 1, 20, 8, 17);
  ProjectedFieldConfig cfg;
  cfg.temperatures = {0.02};
  auto field = build_projected_field(d.Y, {}, d.U, {}, {}, std::nullopt, cfg);
  auto far = d.X + 1000.0;  // kernel to every landmark underflows: denominator 0 -> clamped
  auto r = field.compute(far);
  EXPECT_EQ(r.clamped, far.size(0));
  EXPECT_DOUBLE_EQ(r.clamped_fraction, 1.0);
  EXPECT_EQ(field.compute(d.U.narrow(0, 0, 8)).clamped, 0);  // landmarks themselves are covered
}

TEST(ProjectedField, DuplicateLandmarksStayFinite) {
  auto d = make_data(100, 4, 1, 10, 8, 19);
  auto U = torch::cat({d.U, d.U, d.U.narrow(0, 0, 3) + 1e-7});
  auto field = build_projected_field(d.Y, {}, U, {}, {}, std::nullopt, {});
  EXPECT_TRUE(std::isfinite(field.max_condition_number()));
  EXPECT_GT(field.max_condition_number(), 1e3);
  EXPECT_TRUE(torch::isfinite(field.compute(d.X).target).all().item<bool>());
}

TEST(ProjectedField, GradientReachesOnlyGenerated) {
  auto d = make_data(100, 4, 1, 10, 8, 21);
  auto field = build_projected_field(d.Y, {}, d.U, {}, {}, std::nullopt, {});
  auto x = d.X.clone().requires_grad_(true);
  auto r = field.compute(x);
  r.loss.backward();
  auto expected = 2 * (d.X / field.scale() - r.target) / (field.scale() * x.numel());
  EXPECT_LT(rel_err(x.grad(), expected), 1e-5);
}

TEST(ProjectedField, RejectsBadInputs) {
  auto d = make_data(60, 4, 3, 10, 8, 23);
  ProjectedFieldConfig cfg;
  EXPECT_THROW(build_projected_field(d.Y, {}, torch::randn({10, 5}), {}, {}, std::nullopt, cfg), Error);  // D mismatch
  EXPECT_THROW(build_projected_field(d.Y.narrow(0, 0, 5), {}, d.U, {}, {}, std::nullopt, cfg), Error);  // M > |Y|
  auto lab = d.ylab.clone();
  lab.masked_fill_(lab == 1, 0);  // class 1 empty
  EXPECT_THROW(build_projected_field(d.Y, lab, d.U, d.ulab, {3, 1}, std::nullopt, cfg), Error);
  auto nan = d.Y.clone();
  nan[3][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(build_projected_field(nan, {}, d.U, {}, {}, std::nullopt, cfg), Error);
  auto field = build_projected_field(d.Y, d.ylab, d.U, d.ulab, {3, 1}, std::nullopt, cfg);
  EXPECT_THROW(field.compute(torch::randn({8, 5})), Error);
  EXPECT_THROW(field.compute(d.X, torch::full({8}, 7, torch::kLong)), Error);
  EXPECT_THROW(ProjectedField(d.U, d.ulab, {3, 3}, 0.0, cfg), Error);  // scale must be positive
  EXPECT_THROW(parse_repulsion("approx"), Error);
}

TEST(ExactAttraction, StreamedMatchesDirectFloat64IncludingFarQueries) {
  auto d = make_data(300, 5, 3, 10, 12, 29);
  auto xs = torch::cat({d.X, d.X.narrow(0, 0, 3) + 40.0});  // 3 queries far from the data
  auto xl = torch::cat({d.xlab, d.xlab.narrow(0, 0, 3)});
  for (bool per_class : {false, true}) {
    auto got = exact_attractions(xs, d.Y, {0.3, 2.0}, per_class ? xl : torch::Tensor(),
                                 per_class ? d.ylab : torch::Tensor(), /*chunk=*/64);
    for (size_t t = 0; t < 2; ++t) {
      const double te = t == 0 ? 0.3 : 2.0;
      auto logits = -torch::cdist(f64(xs), f64(d.Y)).pow(2).clamp_min(1e-8).sqrt() / te;
      if (per_class) logits.masked_fill_(xl.unsqueeze(1) != d.ylab.unsqueeze(0), -INFINITY);
      auto w = torch::softmax(logits, 1);  // stable form of k / sum k
      EXPECT_LT(rel_err(got[t], w.matmul(f64(d.Y))), 1e-5) << "per_class=" << per_class << " t=" << t;
    }
  }
}
