// Fields and training steps on a non-default device (issue 12): the same computation with CUDA tensors
// as with CPU tensors. Skipped, with a message, where LibTorch sees no CUDA device (every CI machine here);
// run on a GPU machine with `build/driftx_tests --gtest_filter='*OnCuda*'` (BENCHMARKS.md, "GPU").
//
// Tolerance (all three tests): float32 throughout, TF32 switched off so cuBLAS/cuDNN round like the CPU
// (u = 6e-8 per operation). The two devices differ only in summation order, so each distance differs by
// about sqrt(D) u |x||y| / d relative (D <= 784 here: ~2e-6 / d). The kernel exponent multiplies a
// distance error by d / tau_eff <= 1 / tau for the standard field's normalised distances (tau = 0.02:
// a factor 50) and by d / (tau sqrt(D)) for the projected one, so kernel weights differ by <= ~1e-4
// relative; ratios of weighted sums and the drift normalisation keep that order. The generator's
// forward (a few convolutions, ~1e-6) adds less. 2e-3 relative L2 leaves a margin of ~20 over it while
// still catching a wrong device path (a missing shift or a different summary differs by O(1)).
#include <functional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "driftx/data.h"
#include "driftx/projected_field.h"
#include "driftx/standard_field.h"
#include "driftx/train.h"
#include "test_support.h"

namespace driftx {
namespace {

constexpr double kRelTol = 2e-3;

double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) {
  auto r = ref.to(torch::kCPU, torch::kFloat64);
  return (a.to(torch::kCPU, torch::kFloat64) - r).norm().item<double>() / r.norm().item<double>();
}

class OnCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available())
      GTEST_SKIP() << "no CUDA device visible to LibTorch: the device path is checked on a GPU machine only";
    // Round like the CPU: TF32 would add ~1e-3 relative error per product and hide nothing we test.
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  const torch::Device cuda{torch::kCUDA};
};

// n real samples of C Gaussian classes `spacing` apart in D dimensions, m of them the landmarks.
ProjectedField class_field(int64_t C, int64_t D, int64_t n, int64_t m, double spacing, int64_t shards,
                           const ProjectedFieldConfig& pc) {
  auto labels = torch::arange(n) % C;
  auto real = torch::randn({n, D}) + labels.to(torch::kFloat32).unsqueeze(1) * spacing;
  auto U_idx = torch::randperm(n).narrow(0, 0, m);
  return build_projected_field(real, labels, real.index_select(0, U_idx), labels.index_select(0, U_idx), {C, shards},
                               std::nullopt, pc);
}

TEST_F(OnCuda, ProjectedFieldMatchesTheCpuAndKeepsItsResultOnTheDevice) {
  const int64_t C = 3, D = 16, B = 24;
  for (auto repulsion : {Repulsion::Exact, Repulsion::Projected}) {
    ProjectedFieldConfig pc;
    pc.repulsion = repulsion;
    torch::manual_seed(5);
    auto field = class_field(C, D, 600, 90, 3.0, 1, pc);
    auto x = torch::randn({B, D}) * 2.0;
    auto q = torch::arange(B) % C;
    auto mass = torch::rand({B}) * 5.0;  // guidance: the all-data sums and extra negatives too
    auto cpu = field.compute(x, q, mass);
    auto gpu_x = x.to(cuda).requires_grad_(true);
    auto gpu = field.compute(gpu_x, q, mass);  // labels and mass given on the CPU are moved by the field
    EXPECT_TRUE(gpu.drift.is_cuda());
    EXPECT_TRUE(gpu.target.is_cuda());
    EXPECT_LT(rel_l2(gpu.drift, cpu.drift), kRelTol);
    EXPECT_NEAR(gpu.loss.item<double>(), cpu.loss.item<double>(), kRelTol * cpu.loss.item<double>());
    gpu.loss.backward();
    ASSERT_TRUE(gpu_x.grad().defined());
    EXPECT_TRUE(gpu_x.grad().is_cuda());
    // And back: the field refolds for CPU queries after serving CUDA ones.
    EXPECT_LT(rel_l2(field.compute(x, q, mass).drift, cpu.drift), 1e-6);
  }
}

// The query paths added after the first GPU run: blockwise attraction (several landmark blocks per
// shard), class shards (a conditional query meets only its own shard), batched class blocks and bf16
// products, each on CUDA against the same call on the CPU. float32: kRelTol as above. bf16: the
// products round to 8 bits (u = 2^-9 = 2e-3 per factor), which the CPU test bounds at 5e-2 relative
// (ProjectedField.Bf16ProductsStayCloseToFloat32); the GPU's bf16 products are held to the same bound
// against the CPU's float32 ones.
TEST_F(OnCuda, BlockwiseShardedAndBf16AttractionsMatchTheCpu) {
  torch::manual_seed(7);
  const int64_t C = 4, D = 12, B = 32;
  ProjectedFieldConfig pc;
  pc.landmark_block = 7;
  pc.class_batching = ClassBatching::Batched;
  auto field = class_field(C, D, 800, 120, 2.0, 2, pc);
  auto xs = (torch::randn({B, D}) * 2.0 + 3.0) / field.scale();
  auto q = torch::arange(B) / (B / C);  // class-major blocks: the batched path
  for (const auto& query_labels : {q, torch::Tensor()}) {
    const bool conditional = query_labels.defined();
    torch::Tensor touched_cpu, touched_gpu;
    field.set_query_options(7, ProductPrecision::Float32);
    auto cpu = field.attractions(xs, query_labels, nullptr, &touched_cpu);
    auto gpu = field.attractions(xs.to(cuda), conditional ? query_labels.to(cuda) : query_labels, nullptr,
                                 &touched_gpu);
    EXPECT_TRUE(torch::equal(touched_gpu.to(torch::kCPU), touched_cpu)) << "the GPU meets the same landmarks";
    field.set_query_options(7, ProductPrecision::BFloat16);
    auto gpu_bf16 = field.attractions(xs.to(cuda), conditional ? query_labels.to(cuda) : query_labels);
    for (size_t t = 0; t < cpu.size(); ++t) {
      EXPECT_TRUE(gpu[t].is_cuda());
      EXPECT_LT(rel_l2(gpu[t] - xs.to(cuda), cpu[t] - xs), kRelTol) << "tau " << pc.temperatures[t];
      const double bf16_err = rel_l2(gpu_bf16[t] - xs.to(cuda), cpu[t] - xs);
      EXPECT_LT(bf16_err, 5e-2) << "tau " << pc.temperatures[t];
      EXPECT_GT(bf16_err, 0.0) << "bf16 must change the products";
    }
  }
}

TEST_F(OnCuda, StandardFieldMatchesTheCpu) {
  torch::manual_seed(6);
  StandardFieldConfig sc;
  StandardField field(sc);
  StandardFieldInput in{torch::randn({3, 20, 32}), torch::randn({3, 40, 32}) + 0.5, torch::randn({3, 8, 32}),
                        torch::full({3}, 0.7)};
  auto cpu = field.compute(in);
  StandardFieldInput g{in.generated.to(cuda), in.positives.to(cuda), in.negatives.to(cuda), in.negative_weight};
  auto gpu = field.compute(g);
  EXPECT_TRUE(gpu.drift.is_cuda());
  EXPECT_LT(rel_l2(gpu.drift, cpu.drift), kRelTol);
  EXPECT_NEAR(gpu.coord_scale, cpu.coord_scale, 1e-5 * cpu.coord_scale);
}

// One training step of each method on CUDA from the same initial weights and batch as on the CPU.
class OnCudaTrainer : public OnCuda, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    OnCuda::SetUp();
    if (IsSkipped()) return;
    if (!std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte") &&
        !std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
  std::filesystem::path fresh_dir(const std::string& tag) const {
    const auto dir = std::filesystem::path(testing::TempDir()) /
                     fmt::format("driftx_cuda_{}_{}_{}", tag, GetParam(), getpid());
    std::filesystem::remove_all(dir);
    return dir;
  }
  // Trainers on the CPU and on CUDA from one configuration (the tiny one, then `adjust`): the drift
  // targets and loss of the same batch agree within kRelTol, the GPU's stay on the device, and a full
  // step (backward, clipping, AdamW, EMA) gives the CPU step's loss.
  void expect_same_step(const std::string& tag, const std::function<void(TrainConfig&)>& adjust, const torch::Tensor& z,
                        const torch::Tensor& labels, const torch::Tensor& alpha = {}) const {
    const auto dir = fresh_dir(tag);
    auto config = [&](const std::string& device) {
      TrainConfig c = testing_support::tiny_train_config(GetParam(), dir.string());
      c.sample_every = c.checkpoint_every = 0;
      c.out_dir = (dir / device).string();
      c.device = device;
      adjust(c);
      return c;
    };
    Trainer cpu(config("cpu")), gpu(config("cuda"));
    auto [loss_cpu, targets_cpu] = cpu.drift_targets(z, labels, alpha);
    auto [loss_gpu, targets_gpu] = gpu.drift_targets(z, labels, alpha);
    ASSERT_EQ(targets_cpu.size(), targets_gpu.size());
    for (size_t g = 0; g < targets_cpu.size(); ++g) {
      EXPECT_TRUE(targets_gpu[g].is_cuda()) << "group " << g;
      EXPECT_LT(rel_l2(targets_gpu[g], targets_cpu[g]), kRelTol) << "group " << g;
    }
    EXPECT_NEAR(loss_gpu, loss_cpu, kRelTol * loss_cpu);
    auto s = gpu.step_on(z, labels, alpha);
    EXPECT_TRUE(std::isfinite(s.loss));
    EXPECT_NEAR(s.loss, cpu.step_on(z, labels, alpha).loss, kRelTol * s.loss);
  }
};

TEST_P(OnCudaTrainer, StepMatchesTheCpuStep) {
  torch::manual_seed(9);
  auto z = torch::randn({24, 8});
  auto labels = torch::tensor({1, 4, 7}, torch::kLong).repeat_interleave(8);
  auto alpha = torch::tensor({1.0f, 2.5f, 4.0f}).repeat_interleave(8);
  expect_same_step("pixels", [](TrainConfig& c) { c.gen_per_class = 8, c.guidance = true, c.seed = 4; }, z, labels, alpha);
}

// Encoder space (issue 11) on CUDA: per-location fields of an encoder layer (16 vectors of 64) and a
// global group, the standard method's positives gathered from the feature cache on the device, and
// DriftXpress with one shard per class. The encoder's forward adds at most ~6e-5 relative per feature
// (EncoderTest.FeaturesOfAFixedBatchMatchTheRecordedDigest derives it): kRelTol still holds.
TEST_P(OnCudaTrainer, EncoderPerLocationStepMatchesTheCpuStep) {
  torch::manual_seed(9);
  auto z = torch::randn({18, 8});
  auto labels = torch::tensor({2, 5, 8}, torch::kLong).repeat_interleave(6);
  const bool projected = GetParam() == "driftxpress";
  expect_same_step("encoder", [projected](TrainConfig& c) {
    c.features = "encoder:mnist/l3.loc,encoder:mnist/l1.mean_std";
    c.per_location = true;
    c.landmark_shards = projected ? 10 : 1;
    c.landmarks = 200;
  }, z, labels);
}

INSTANTIATE_TEST_SUITE_P(Methods, OnCudaTrainer, ::testing::Values("driftxpress", "standard"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace driftx
