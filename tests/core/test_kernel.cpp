#include <gtest/gtest.h>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/parse.h"

using namespace driftx;

TEST(Kernel, PairwiseDistanceMatchesDirectDifference) {
  torch::manual_seed(1);
  auto x = torch::randn({7, 5}, torch::kFloat64), y = torch::randn({9, 5}, torch::kFloat64);
  auto direct = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1).clamp_min(1e-8).sqrt();
  EXPECT_LT((euclidean_distances(x, y) - direct).abs().max().item<double>(), 1e-12);
}

TEST(Kernel, ParseTemperaturesRejectsBadLists) {
  EXPECT_EQ(parse_temperatures("0.02,0.05,0.2"), (std::vector<double>{0.02, 0.05, 0.2}));
  EXPECT_THROW(parse_temperatures("0.02,abc"), Error);
  EXPECT_THROW(parse_temperatures("-1"), Error);
  EXPECT_THROW(parse_temperatures(""), Error);
}
