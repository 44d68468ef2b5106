#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <set>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/landmarks.h"

using namespace driftx;

namespace {

struct Data {
  torch::Tensor x, y;
};

// `blobs` well-separated Gaussian blobs (centres 20 e_k, sigma 0.5) in D = 8, `per` samples each; label = blob.
Data blobs(int64_t per = 100, int64_t count = 4, uint64_t seed = 7) {
  torch::manual_seed(seed);
  auto centres = 20.0 * torch::eye(8).slice(0, 0, count);
  auto y = torch::arange(count, torch::kLong).repeat_interleave(per);
  return {centres.index_select(0, y) + 0.5 * torch::randn({per * count, 8}), y};
}

LandmarkConfig config(LandmarkStrategy s, int64_t total, uint64_t seed = 0) {
  LandmarkConfig c;
  c.strategy = s;
  c.total = total;
  c.seed = seed;
  return c;
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Landmarks per class, in class order.
std::vector<int64_t> class_counts(const torch::Tensor& idx, const torch::Tensor& y, int64_t classes) {
  return to_vector(torch::bincount(y.index_select(0, idx), {}, classes));
}

std::vector<LandmarkStrategy> all_strategies() {
  std::vector<LandmarkStrategy> out;
  for (const auto& name : landmark_strategy_names()) out.push_back(parse_landmark_strategy(name));
  return out;
}

// Brute-force float64 distances from every sample to every landmark (no matrix-product shortcut).
torch::Tensor direct_distances(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return (a64.unsqueeze(1) - b64.unsqueeze(0)).pow(2).sum(-1).sqrt();
}

}  // namespace

TEST(Landmarks, StrategyNamesRoundTripAndUnknownListsThem) {
  EXPECT_EQ(landmark_strategy_names(),
            (std::vector<std::string>{"random_global", "random_per_class", "kmeans_global", "kmeans_per_class",
                                      "kcenter", "facility_location", "density_weighted_kcenter"}));
  for (const auto& name : landmark_strategy_names()) EXPECT_EQ(to_string(parse_landmark_strategy(name)), name);
  try {
    parse_landmark_strategy("kmeans");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'kmeans'"), std::string::npos);
    EXPECT_NE(what.find("density_weighted_kcenter"), std::string::npos);
  }
}

TEST(Landmarks, EveryStrategyGivesDistinctInRangeReproducibleIndices) {
  auto d = blobs();
  for (auto s : all_strategies()) {
    SCOPED_TRACE(to_string(s));
    auto idx = select_landmarks(d.x, d.y, config(s, 12, 3));
    ASSERT_EQ(idx.scalar_type(), torch::kLong);
    ASSERT_EQ(idx.numel(), 12);
    auto v = to_vector(idx);
    EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()).size(), v.size());
    EXPECT_GE(*std::min_element(v.begin(), v.end()), 0);
    EXPECT_LT(*std::max_element(v.begin(), v.end()), d.x.size(0));
    EXPECT_TRUE(idx.equal(select_landmarks(d.x, d.y, config(s, 12, 3))));
    if (s != LandmarkStrategy::RandomPerClass && s != LandmarkStrategy::KMeansPerClass)  // labels unused
      EXPECT_TRUE(idx.equal(select_landmarks(d.x, torch::Tensor(), config(s, 12, 3))));
  }
  for (auto s : {LandmarkStrategy::RandomGlobal, LandmarkStrategy::RandomPerClass}) {
    SCOPED_TRACE(to_string(s));
    EXPECT_FALSE(select_landmarks(d.x, d.y, config(s, 12, 3)).equal(select_landmarks(d.x, d.y, config(s, 12, 4))));
  }
}

TEST(Landmarks, BudgetEqualToNTakesEverySample) {
  auto d = blobs(5);
  for (auto s : all_strategies()) {
    SCOPED_TRACE(to_string(s));
    auto v = to_vector(std::get<0>(select_landmarks(d.x, d.y, config(s, 20)).sort()));
    for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(v[i], i);
  }
}

TEST(Landmarks, SplitClassBudgetIsBalancedAndCapped) {
  EXPECT_EQ(split_class_budget({100, 100, 100, 100}, 10), (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(split_class_budget({100, 100, 100, 1}, 10), (std::vector<int64_t>{3, 3, 3, 1}));
  EXPECT_EQ(split_class_budget({5, 2, 100}, 30), (std::vector<int64_t>{5, 2, 23}));
  EXPECT_EQ(split_class_budget({4, 9, 9, 3}, 25), (std::vector<int64_t>{4, 9, 9, 3}));
  EXPECT_EQ(split_class_budget({3, 8, 8}, 15), (std::vector<int64_t>{3, 6, 6}));
  EXPECT_THROW(split_class_budget({1, 1}, 3), Error);
}

TEST(Landmarks, PerClassStrategiesBalanceAndRedistribute) {
  auto d = blobs();
  // A tiny class: blob 3 keeps one sample (the other 99 are dropped).
  auto x = d.x.slice(0, 0, 301), y = d.y.slice(0, 0, 301);
  for (auto s : {LandmarkStrategy::RandomPerClass, LandmarkStrategy::KMeansPerClass}) {
    SCOPED_TRACE(to_string(s));
    EXPECT_EQ(class_counts(select_landmarks(d.x, d.y, config(s, 10)), d.y, 4), (std::vector<int64_t>{3, 3, 2, 2}));
    EXPECT_EQ(class_counts(select_landmarks(x, y, config(s, 10)), y, 4), (std::vector<int64_t>{3, 3, 3, 1}));
    auto c = config(s, 0);
    c.per_class = 5;  // 20 in all; the tiny class gives 1, its other 4 go to the rest
    EXPECT_EQ(class_counts(select_landmarks(x, y, c), y, 4), (std::vector<int64_t>{7, 6, 6, 1}));
    EXPECT_EQ(select_landmarks(x, y, config(s, 301)).numel(), 301);
    EXPECT_THROW(select_landmarks(x, y, config(s, 302)), Error);
  }
}

TEST(Landmarks, KMeansCoversEveryBlob) {
  auto d = blobs();
  for (uint64_t seed = 0; seed < 5; ++seed) {
    auto counts = class_counts(select_landmarks(d.x, d.y, config(LandmarkStrategy::KMeansGlobal, 8, seed)), d.y, 4);
    for (int64_t c : counts) EXPECT_GE(c, 1) << "seed " << seed;
  }
  // Landmarks are real samples close to their blob centre, not arbitrary members.
  auto idx = select_landmarks(d.x, d.y, config(LandmarkStrategy::KMeansPerClass, 4));
  auto centres = 20.0 * torch::eye(8).slice(0, 0, 4);
  auto dist = (d.x.index_select(0, idx) - centres.index_select(0, d.y.index_select(0, idx))).norm(2, 1);
  auto typical = (d.x - centres.index_select(0, d.y)).norm(2, 1).median();
  EXPECT_LT(dist.max().item<double>(), typical.item<double>());
}

TEST(Landmarks, KCenterPicksOneBlobEachAndBeatsRandomOnMaxDistance) {
  auto d = blobs();
  for (uint64_t seed = 0; seed < 3; ++seed)
    EXPECT_EQ(class_counts(select_landmarks(d.x, d.y, config(LandmarkStrategy::KCenter, 4, seed)), d.y, 4),
              (std::vector<int64_t>{1, 1, 1, 1}));
  // Greedy k-center is a 2-approximation of the optimal max distance, so it is within 2x of any random
  // draw, and not worse than random's on average (random often misses a blob with M = 8).
  auto max_distance = [&](const torch::Tensor& idx) {
    return landmark_coverage(d.x, d.x.index_select(0, idx), 1.0, 1e-3).max_distance;
  };
  const double kc = max_distance(select_landmarks(d.x, d.y, config(LandmarkStrategy::KCenter, 8)));
  double random_mean = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const double rnd = max_distance(select_landmarks(d.x, d.y, config(LandmarkStrategy::RandomGlobal, 8, seed)));
    EXPECT_LE(kc, 2 * rnd);
    random_mean += rnd / 10;
  }
  EXPECT_LE(kc, random_mean);
}

TEST(Landmarks, FacilityLocationCoversBetterThanRandomOnAverage) {
  auto d = blobs();
  double fl = 0, rnd = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    auto a = select_landmarks(d.x, d.y, config(LandmarkStrategy::FacilityLocation, 6, seed));
    auto b = select_landmarks(d.x, d.y, config(LandmarkStrategy::RandomGlobal, 6, seed));
    fl += landmark_coverage(d.x, d.x.index_select(0, a), 1.0, 1e-3).mean_distance;
    rnd += landmark_coverage(d.x, d.x.index_select(0, b), 1.0, 1e-3).mean_distance;
  }
  EXPECT_LT(fl, 0.9 * rnd);
  // Fewer candidates than M: M candidates are used, so every sample is still selectable.
  auto c = config(LandmarkStrategy::FacilityLocation, 50);
  c.candidates = 8;
  EXPECT_EQ(select_landmarks(d.x, d.y, c).numel(), 50);
}

TEST(Landmarks, DensityWeightingAvoidsOutliersThatKCenterTakes) {
  auto d = blobs();
  // Four isolated outliers far from every blob and from each other.
  auto outliers = 40.0 * torch::eye(8).slice(0, 4, 8);
  auto x = torch::cat({d.x, outliers});
  auto is_outlier = [&](const torch::Tensor& idx) { return (idx >= d.x.size(0)).sum().item<int64_t>(); };
  EXPECT_EQ(is_outlier(select_landmarks(x, torch::Tensor(), config(LandmarkStrategy::KCenter, 8))), 4);
  EXPECT_LE(is_outlier(select_landmarks(x, torch::Tensor(), config(LandmarkStrategy::DensityWeightedKCenter, 8))), 1);
}

TEST(Landmarks, CoverageMatchesBruteForce) {
  auto d = blobs(30);
  auto idx = torch::tensor({0, 35, 70, 95, 110}, torch::kLong);
  auto u = torch::cat({d.x.index_select(0, idx), torch::full({1, 8}, 3.0)});  // one landmark off the data
  const double tau = 4.0, ridge = 1e-3;
  auto cov = landmark_coverage(d.x, u, tau, ridge);

  auto nearest = direct_distances(d.x, u).amin(1);
  EXPECT_NEAR(cov.min_distance, nearest.min().item<double>(), 2e-4);  // 0 vs the 1e-4 distance floor
  EXPECT_NEAR(cov.mean_distance, nearest.mean().item<double>(), 1e-5);
  EXPECT_NEAR(cov.max_distance, nearest.max().item<double>(), 1e-5);
  // The 1e-4 distance floor moves k at the 5 landmark samples by 2.5e-5 each.
  EXPECT_NEAR(cov.mean_max_kernel, (-nearest / tau).exp().mean().item<double>(), 2e-6);
  EXPECT_NEAR(cov.min_max_kernel, (-nearest / tau).exp().min().item<double>(), 1e-6);

  auto w = (-direct_distances(u, u) / tau).exp() + ridge * torch::eye(6, torch::kFloat64);
  auto eig = torch::linalg_eigvalsh(w);
  const double expected = eig[-1].item<double>() / eig[0].item<double>();
  EXPECT_NEAR(cov.condition_number, expected, 1e-3 * expected);
}

TEST(Landmarks, DuplicateLandmarksGiveLargeFiniteConditionNumber) {
  auto d = blobs(10);
  auto u = d.x.index_select(0, torch::tensor({0, 12, 25, 12}, torch::kLong));
  for (double ridge : {0.0, 1e-9}) {
    const double cond = landmark_coverage(d.x, u, 2.0, ridge).condition_number;
    EXPECT_TRUE(std::isfinite(cond)) << ridge;
    EXPECT_GT(cond, 1e8) << ridge;
  }
  EXPECT_LT(landmark_coverage(d.x, d.x.index_select(0, torch::tensor({0, 12, 25}, torch::kLong)), 2.0, 0.0)
                .condition_number,
            10.0);
}

TEST(Landmarks, ErrorsAreOneLineDriftxErrors) {
  auto d = blobs(10);
  auto expect_error = [](auto&& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  const auto global = LandmarkStrategy::RandomGlobal, per_class = LandmarkStrategy::RandomPerClass;
  expect_error([&] { select_landmarks(d.x, d.y, config(global, 41)); }, "exceeds");
  expect_error([&] { select_landmarks(d.x, d.y, config(global, 0)); }, "positive");
  expect_error([&] { select_landmarks(d.x, d.y, config(global, -3)); }, "positive");
  auto gap = d.y.clone();
  gap.masked_fill_(gap == 1, 2);  // labels 0, 2, 3: class 1 is empty
  expect_error([&] { select_landmarks(d.x, gap, config(per_class, 8)); }, "class 1");
  expect_error([&] { select_landmarks(d.x, d.y.slice(0, 0, 39), config(per_class, 8)); }, "39");
  expect_error([&] { select_landmarks(d.x, d.y.slice(0, 0, 39), config(global, 8)); }, "39");
  expect_error([&] { select_landmarks(d.x, torch::Tensor(), config(per_class, 8)); }, "needs labels");
  expect_error([&] { select_landmarks(d.x, torch::Tensor(), config(LandmarkStrategy::KMeansPerClass, 8)); },
               "needs labels");
  auto budget = config(global, 8);
  budget.per_class = 2;
  expect_error([&] { select_landmarks(d.x, torch::Tensor(), budget); }, "needs labels");
  for (double bad : {NAN, INFINITY}) {
    auto x = d.x.clone();
    x[5][3] = bad;
    for (auto s : all_strategies()) expect_error([&] { select_landmarks(x, d.y, config(s, 8)); }, "NaN or Inf");
  }
  expect_error([&] { landmark_coverage(d.x, torch::zeros({3, 5}), 1.0, 0.0); }, "same D");
  expect_error([&] { landmark_coverage(d.x, d.x.slice(0, 0, 3), 0.0, 0.0); }, "tau_eff");
}

TEST(Landmarks, HeavyDuplicatesStillGiveDistinctSamples) {
  // Three distinct points, 20 copies each: k-means snapping must fall back past taken duplicates.
  auto x = (5.0 * torch::randn({3, 8})).repeat_interleave(20, 0);
  auto y = torch::arange(3, torch::kLong).repeat_interleave(20);
  for (auto s : all_strategies()) {
    SCOPED_TRACE(to_string(s));
    auto v = to_vector(select_landmarks(x, y, config(s, 50)));
    EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()).size(), 50u);
  }
}
