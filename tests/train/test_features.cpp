#include <gtest/gtest.h>

#include <torch/script.h>

#include "driftx/error.h"
#include "driftx/features.h"

using namespace driftx;

TEST(Features, GroupsHaveTheSpecDimensionsAndValues) {
  auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  EXPECT_EQ(feature_dim("pixels", 1, 28, 28), 784);
  EXPECT_EQ(feature_dim("pool2", 1, 28, 28), 196);
  EXPECT_EQ(feature_dim("pool4", 1, 28, 28), 49);
  EXPECT_EQ(feature_dim("mean_std", 3, 32, 32), 6);
  EXPECT_EQ(feature_dim("patch2_stats", 1, 28, 28), 2 * 196);
  EXPECT_EQ(feature_dim("sq_mean", 3, 32, 32), 3);
  // pool2 entry (0, 0) is the mean of the top-left 2x2 block; mean_std is the global mean and std.
  auto p = image_features(x, "pool2");
  EXPECT_NEAR(p[1][0].item<float>(), x[1][0].narrow(0, 0, 2).narrow(1, 0, 2).mean().item<float>(), 1e-6);
  auto ms = image_features(x, "mean_std");
  EXPECT_NEAR(ms[2][0].item<float>(), x[2].mean().item<float>(), 1e-6);
  EXPECT_NEAR(ms[2][1].item<float>(), x[2].std(false).item<float>(), 1e-4);
  EXPECT_EQ(parse_feature_groups("multiscale").size(), 7u);
  EXPECT_THROW(parse_feature_groups("pixels,edges"), Error);
  EXPECT_THROW(image_features(torch::rand({3, 784}), "pixels"), Error);
}

TEST(Features, TorchScriptEncoderOutputsBecomeGroupsWithGradients) {
  torch::jit::Module m("Encoder");
  m.register_parameter("w", torch::ones({4, 1, 3, 3}) / 9.0, false);
  m.define(R"(
def forward(self, x: Tensor) -> List[Tensor]:
    h = torch.conv2d(x, self.w, None, [1, 1], [1, 1])
    return [torch.avg_pool2d(x, [2, 2]), h.mean([2, 3])]
)");
  const std::string path = testing::TempDir() + "/driftx_encoder.pt";
  m.save(path);
  auto x = (torch::rand({5, 1, 28, 28}) * 2 - 1).requires_grad_(true);
  auto groups = expand_feature_groups(parse_feature_groups("pool4,torchscript:" + path), x.detach().narrow(0, 0, 2));
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[1], "torchscript:" + path + "#0");
  auto f0 = image_features(x, groups[1]);
  EXPECT_TRUE(torch::allclose(f0, image_features(x, "pool2")));
  auto f1 = image_features(x, groups[2]);
  EXPECT_EQ(f1.sizes(), (std::vector<int64_t>{5, 4}));
  f1.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0);
  EXPECT_THROW(image_features(x, "torchscript:" + path + "#7"), Error);
  EXPECT_THROW(image_features(x, "torchscript:/nonexistent/encoder.pt"), Error);
}
