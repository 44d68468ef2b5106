// The self-supervised feature encoder (issue 11): its training, the shipped files, its feature groups
// and both training methods in its feature space.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "driftx/data.h"
#include "driftx/encoder.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/sha256.h"
#include "driftx/train.h"
#include "test_support.h"

using namespace driftx;
using driftx::testing_support::expect_error;

namespace {

bool have_mnist() { return std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte"); }

std::string fresh_dir(const std::string& name) {
  auto dir = std::filesystem::path(testing::TempDir()) / ("driftx_encoder_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string archive_bytes(Encoder& m) {
  torch::serialize::OutputArchive archive;
  m->save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void put_be32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

// The first n images of a split written as an IDX dataset "<dir>/mnist/<split>-{images,labels}" (tiny
// trainer runs without summarising 60k images per group).
void write_idx_subset(const Dataset& d, int64_t n, const std::string& dir, const std::string& prefix) {
  std::filesystem::create_directories(dir + "/mnist");
  std::string images, labels;
  put_be32(images, 0x803);
  put_be32(images, static_cast<uint32_t>(n));
  put_be32(images, 28);
  put_be32(images, 28);
  const auto bytes = ((d.images.narrow(0, 0, n) + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8).contiguous();
  images.append(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(bytes.numel()));
  put_be32(labels, 0x801);
  put_be32(labels, static_cast<uint32_t>(n));
  const auto l = d.labels.narrow(0, 0, n).to(torch::kUInt8).contiguous();
  labels.append(reinterpret_cast<const char*>(l.data_ptr<uint8_t>()), static_cast<size_t>(n));
  std::ofstream(dir + "/mnist/" + prefix + "-images-idx3-ubyte", std::ios::binary) << images;
  std::ofstream(dir + "/mnist/" + prefix + "-labels-idx1-ubyte", std::ios::binary) << labels;
}

class EncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
};

}  // namespace

TEST_F(EncoderTest, AFewStepsLowerTheMaskedReconstructionErrorAndTrainingIsDeterministic) {
  const auto train = load_dataset("mnist", "train");
  const auto images = train.images.narrow(0, 0, 1024);
  EncoderTrainOptions o;
  o.batch = 64;
  o.max_steps = 40;
  o.lr = 3e-3;
  o.seed = 5;
  std::vector<double> losses;
  auto trained = train_encoder(images, o, &losses);
  ASSERT_EQ(losses.size(), 40u);
  Encoder initial{nullptr};
  torch::manual_seed(o.seed);  // train_encoder's initial weights
  initial = Encoder();
  const auto held_out = train.images.narrow(0, 2000, 500);
  const double before = reconstruction_error(initial, held_out, o.mask_ratio, o.patch, 9);
  const double after = reconstruction_error(trained, held_out, o.mask_ratio, o.patch, 9);
  EXPECT_LT(after, 0.6 * before) << "40 steps did not lower the masked reconstruction error on held-out images";
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
  // Same seed: the same bytes; another seed: other weights.
  o.max_steps = 6;
  auto a = train_encoder(images, o), b = train_encoder(images, o);
  EXPECT_EQ(sha256_hex(archive_bytes(a)), sha256_hex(archive_bytes(b)));
  o.seed = 6;
  auto c = train_encoder(images, o);
  EXPECT_NE(sha256_hex(archive_bytes(a)), sha256_hex(archive_bytes(c)));
}

TEST(EncoderShipped, FilesMatchTheirSha256AndRecords) {
  for (const std::string d : {"mnist", "fashion-mnist"}) {
    const auto weights = encoder_weights_path(d);
    ASSERT_TRUE(std::filesystem::exists(weights)) << weights;
    EXPECT_LT(std::filesystem::file_size(weights), 1u << 20) << "shipped encoder should stay under 1 MB";
    nlohmann::json meta;
    auto m = load_encoder(d, "", &meta);  // checks the SHA-256
    EXPECT_EQ(sha256_file_hex(weights), meta["sha256"].get<std::string>());
    EXPECT_EQ(meta["dataset"], d);
    EXPECT_EQ(meta["architecture"], encoder_architecture());
    EXPECT_GT(meta["linear_probe"]["test_accuracy"].get<double>(), d == "mnist" ? 0.95 : 0.8);
    EXPECT_LT(meta["reconstruction_mse_test_masked"].get<double>(), 0.1);
    EXPECT_TRUE(meta["config"].contains("seed"));
    EXPECT_GT(meta["train_seconds"].get<double>(), 0);
    for (const auto& p : m->parameters()) EXPECT_FALSE(p.requires_grad());
  }
}

TEST(EncoderShipped, ATamperedFileOrAnEvaluatorIsRefused) {
  const auto dir = fresh_dir("tamper");
  std::string bytes = read_file(encoder_weights_path("mnist"));
  bytes[bytes.size() / 2] ^= 1;
  write_file_atomic(dir + "/encoder-mnist.pt", bytes);
  std::filesystem::copy_file(encoder_weights_path("mnist").substr(0, encoder_weights_path("mnist").size() - 3) + ".json",
                             dir + "/encoder-mnist.json");
  expect_error([&] { load_encoder("mnist", dir); }, {"do not match their recorded SHA-256", "driftx encoder train"});
  // The FID evaluator under the encoder's name, with a matching checksum: still refused.
  const auto eval_dir = fresh_dir("evaluator");
  std::filesystem::copy_file(evaluator_weights_path("mnist"), eval_dir + "/encoder-mnist.pt");
  write_json(eval_dir + "/encoder-mnist.json", {{"sha256", evaluator_sha256("mnist")}, {"architecture", encoder_architecture()}});
  expect_error([&] { load_encoder("mnist", eval_dir); }, {"FID evaluator"});
  expect_error([&] { load_encoder("mnist", fresh_dir("empty")); }, {"no encoder for mnist", "driftx encoder train"});
  Encoder m;
  expect_error([&] { save_encoder(m, "mnist", {}, evaluator_weights_path("mnist")); }, {"FID evaluator"});
}

TEST(EncoderFeatures, EveryGroupHasItsShapeAndLayout) {
  torch::manual_seed(0);
  const auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  const auto all = parse_feature_groups("encoder:mnist");
  ASSERT_EQ(all.size(), encoder_groups().size());
  // name, count x dim: the README table.
  const std::vector<std::tuple<std::string, int64_t, int64_t>> expected{
      {"l1.mean_std", 1, 64}, {"l1.patch2", 49, 64}, {"l1.patch4", 16, 64},  {"l2.loc", 49, 64},
      {"l2.mean_std", 1, 128}, {"l2.patch2", 16, 128}, {"l2.patch4", 4, 128}, {"l3.loc", 16, 64},
      {"l3.mean_std", 1, 128}, {"l3.patch2", 4, 128}};
  ASSERT_EQ(expected.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [name, count, dim] = expected[i];
    EXPECT_EQ(all[i], "encoder:mnist/" + name);
    EXPECT_EQ(encoder_group(name).count, count);
    EXPECT_EQ(encoder_group(name).dim, dim);
    const auto f = image_features(x, all[i]);
    EXPECT_EQ(f.size(0), 3) << name;
    EXPECT_EQ(f.size(1), count * dim) << name;
    EXPECT_EQ(feature_dim(all[i], 1, 28, 28), count * dim);
    EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  }
  // Combinable with the pixel groups; the fashion-mnist encoder is its own.
  EXPECT_EQ(parse_feature_groups("encoder:mnist/l2.loc,pixels,pool2").size(), 3u);
  EXPECT_EQ(parse_feature_groups("pixels,encoder:fashion-mnist").size(), 1 + encoder_groups().size());
  EXPECT_FALSE(torch::allclose(image_features(x, "encoder:mnist/l3.mean_std"), image_features(x, "encoder:fashion-mnist/l3.mean_std")));
  // Layout: location-major vectors. l2.loc vector k is the l2 map at location k; l2.patch2's last cell
  // covers only the map's corner value (7 = 3 cells of 2 + 1 of 1): mean = that value, std = the floor.
  auto enc = load_encoder("mnist");
  torch::NoGradGuard no_grad;
  const auto l2 = enc->layers(x)[1];  // 3 x 64 x 7 x 7
  const auto loc = image_features(x, "encoder:mnist/l2.loc").reshape({3, 49, 64});
  EXPECT_TRUE(torch::allclose(loc.select(1, 7 * 2 + 5), l2.select(3, 5).select(2, 2), 1e-5, 1e-6));
  const auto p2 = image_features(x, "encoder:mnist/l2.patch2").reshape({3, 16, 128});
  EXPECT_TRUE(torch::allclose(p2.select(1, 15).narrow(1, 0, 64), l2.select(3, 6).select(2, 6), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(p2.select(1, 15).narrow(1, 64, 64), torch::full({3, 64}, 1e-3), 1e-3, 1e-5));
  const auto ms = image_features(x, "encoder:mnist/l2.mean_std");
  EXPECT_TRUE(torch::allclose(ms.narrow(1, 0, 64), l2.mean({2, 3}), 1e-5, 1e-6));
  // One-line errors.
  expect_error([] { parse_feature_groups("encoder:cifar"); }, {"unknown encoder dataset 'cifar'"});
  expect_error([] { parse_feature_groups("encoder:mnist/l9.loc"); }, {"unknown encoder group 'l9.loc'", "l2.loc"});
  expect_error([] { parse_feature_groups("encoder:mnist/"); }, {"unknown encoder group ''"});
  expect_error([] { image_features(torch::zeros({2, 1, 32, 32}), "encoder:mnist/l2.loc"); }, {"28 x 28"});
}

TEST(EncoderFeatures, OneForwardPerBatchForAllGroupsAndGradientsReachTheImages) {
  const auto groups = parse_feature_groups("encoder:mnist");
  auto x = (torch::rand({4, 1, 28, 28}) * 2 - 1).requires_grad_(true);
  image_features(torch::zeros({1, 1, 28, 28}), groups[0]);  // loads the encoder
  const int64_t start = encoder_forward_count();
  torch::Tensor loss = torch::zeros({});
  for (const auto& g : groups) loss = loss + image_features(x, g).pow(2).mean();
  EXPECT_EQ(encoder_forward_count(), start + 1) << "all groups of one batch should share one encoder forward";
  loss.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0);
  // A new tensor, an in-place change and another grad mode each encode again.
  auto y = x.detach().clone();
  image_features(y, groups[3]);
  EXPECT_EQ(encoder_forward_count(), start + 2);
  image_features(y, groups[4]);
  EXPECT_EQ(encoder_forward_count(), start + 2);
  y.mul_(0.5);
  image_features(y, groups[3]);
  EXPECT_EQ(encoder_forward_count(), start + 3);
  {
    torch::NoGradGuard no_grad;
    image_features(y, groups[3]);
  }
  EXPECT_EQ(encoder_forward_count(), start + 4);
  // The no-grad call (the standard method's positives) kept the grad-mode batch.
  image_features(y, groups[5]);
  EXPECT_EQ(encoder_forward_count(), start + 4);
}

// The trainers' precompute: every group of a dataset in one pass, one encoder forward per chunk (it was
// one per chunk and group: ten passes over MNIST for the ten encoder groups), each group's features
// exactly those of the one-group call; pixel-space groups ride along.
TEST(EncoderFeatures, DatasetFeaturesOfAllGroupsTakeOneForwardPerChunk) {
  auto groups = parse_feature_groups("encoder:mnist");
  groups.push_back("pool4");
  torch::manual_seed(3);
  const auto images = torch::rand({10, 1, 28, 28}) * 2 - 1;
  const int64_t start = encoder_forward_count();
  const auto all = dataset_features(images, groups, /*chunk=*/4);  // chunks of 4, 4, 2
  EXPECT_EQ(encoder_forward_count(), start + 3);
  ASSERT_EQ(all.size(), groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto one = dataset_features(images, groups[g], 4);
    EXPECT_EQ(all[g].scalar_type(), torch::kFloat32);
    EXPECT_EQ(all[g].sizes(), one.sizes()) << groups[g];
    EXPECT_TRUE(torch::equal(all[g], one)) << groups[g];
  }
  EXPECT_EQ(encoder_forward_count(), start + 3 + 3 * static_cast<int64_t>(groups.size() - 1));
}

// The same input gives the same gradient, for every group (a permute-based layout once gave run-to-run
// different, wrong gradients through the convolutions' backward).
TEST(EncoderFeatures, GradientsAreDeterministic) {
  auto g = at::detail::createCPUGenerator(77);
  const auto base = torch::rand({6, 1, 28, 28}, g) * 2 - 1;
  for (const auto& group : parse_feature_groups("encoder:mnist")) {
    torch::Tensor first;
    for (int r = 0; r < 3; ++r) {
      auto x = base.clone().requires_grad_(true);
      if (r == 1) {
        torch::NoGradGuard no_grad;
        image_features(torch::rand({4, 1, 28, 28}), group);  // another batch in between
      }
      image_features(x, group).pow(2).sum().backward();
      ASSERT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << group;
      if (r == 0) first = x.grad().clone();
      else EXPECT_TRUE(torch::allclose(x.grad(), first, 1e-4, 1e-6)) << group << " run " << r;
    }
  }
}

// The shipped MNIST encoder on the first 8 MNIST test images: sum of |f| over each group (float64) and
// one value, recorded when the encoder was trained.
//
// Tolerance. Not an exact digest: oneDNN picks its convolution kernels by instruction set and thread
// count, so the summation order (and so the last bits) differ between x86 machines. A float32 dot
// product of length K has a forward error of at most about K u sum|w x| (u = 2^-24 = 6.0e-8); the
// deepest feature chains three of them (K = 9, 288, 576; GELU's slope is at most 1.13), so every value
// moves by at most (9 + 288 + 576) * 1.13 * u = 5.9e-5 relative to its magnitude. A sum of |f| has no
// cancellation and inherits that bound; std entries at the 1e-3 floor move by less. rtol 2e-4 is that
// bound with a margin of 3.
TEST_F(EncoderTest, FeaturesOfAFixedBatchMatchTheRecordedDigest) {
  const auto test = load_dataset("mnist", "test");
  const auto x = test.images.narrow(0, 0, 8);
  // {group, sum |f|, f[0, 1]}
  const std::vector<std::tuple<std::string, double, double>> recorded{
#include "encoder_digest.inc"
  };
  torch::NoGradGuard no_grad;
  if (const char* out = std::getenv("DRIFTX_RECORD_ENCODER_DIGEST")) {  // re-record after re-training the encoder
    std::ofstream inc(out);
    for (const auto& g : encoder_groups()) {
      const auto f = image_features(x, "encoder:mnist/" + g.name);
      inc << fmt::format("    {{\"{}\", {:.9g}, {:.9g}}},\n", g.name, f.to(torch::kFloat64).abs().sum().item<double>(),
                         f[0][1].item<double>());
    }
  }
  ASSERT_EQ(recorded.size(), encoder_groups().size());
  for (const auto& [group, abs_sum, first] : recorded) {
    const auto f = image_features(x, "encoder:mnist/" + group);
    const double s = f.to(torch::kFloat64).abs().sum().item<double>();
    EXPECT_NEAR(s, abs_sum, 2e-4 * abs_sum) << group;
    EXPECT_NEAR(f[0][1].item<double>(), first, 2e-4 * std::abs(first) + 1e-5) << group;
  }
}

// Both methods end to end in encoder space on a tiny configuration: 600 MNIST training images (so the
// DriftXpress summaries take a moment), three encoder groups (16, 4 and 1 vectors), a few steps, with
// per-location fields (one kernel per vector) and with each group's row as one vector.
struct SpaceCase {
  std::string method;
  bool per_location;
  int64_t shards = 1;  // driftxpress: landmark_shards
  bool vector_maps = false;
};
std::string case_name(const SpaceCase& c) {
  return c.method + (c.per_location ? "PerLocation" : "Flat") + (c.shards > 1 ? fmt::format("Shards{}", c.shards) : "") +
         (c.vector_maps ? "VectorMaps" : "");
}
void PrintTo(const SpaceCase& c, std::ostream* os) { *os << case_name(c); }

class EncoderSpaceTraining : public ::testing::TestWithParam<SpaceCase> {
 protected:
  void SetUp() override {
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
};

TrainConfig encoder_space_config(const std::string& method, const std::string& dir) {
  if (!std::filesystem::exists(dir + "/data")) write_idx_subset(load_dataset("mnist", "train"), 600, dir + "/data", "train");
  TrainConfig c = testing_support::tiny_train_config(method, dir);
  c.dataset = "mnist";
  c.data_dir = dir + "/data";
  c.features = "encoder:mnist/l3.loc,encoder:mnist/l2.patch4,encoder:mnist/l1.mean_std";
  c.sample_every = 0;
  c.checkpoint_every = 0;
  return c;
}

TEST_P(EncoderSpaceTraining, RunsWithAFiniteFallingLossOnAFixedBatch) {
  const auto& p = GetParam();
  const auto dir = fresh_dir("space_" + case_name(p));
  TrainConfig c = encoder_space_config(p.method, dir);
  c.per_location = p.per_location;
  c.landmark_shards = p.shards;
  c.vector_maps = p.vector_maps;
  Trainer t(c);
  torch::manual_seed(1);
  auto z = torch::randn({18, 8});
  auto labels = torch::tensor({0, 4, 7}, torch::kLong).repeat_interleave(6);
  auto [before, targets] = t.drift_targets(z, labels);
  ASSERT_EQ(targets.size(), 3u);
  const std::vector<int64_t> dims{16 * 64, 4 * 128, 64};  // l3.loc, l2.patch4, l1.mean_std
  for (size_t g = 0; g < 3; ++g) EXPECT_EQ(targets[g].sizes(), torch::IntArrayRef({18, dims[g]})) << g;
  const double start = t.loss_against(z, labels, targets);
  EXPECT_TRUE(std::isfinite(before));
  EXPECT_GT(start, 0);
  double last = start;
  for (int s = 0; s < 3; ++s) {
    auto stats = t.step_on(z, labels);
    EXPECT_TRUE(std::isfinite(stats.loss));
    ASSERT_EQ(stats.group_loss.size(), 3u);
    const double now = t.loss_against(z, labels, targets);
    EXPECT_LT(now, last) << "step " << s + 1 << " did not lower the loss against the frozen drifted targets";
    last = now;
  }
  // What the fields keep: the standard method's cached features are |Y| x D float32 per group; the
  // summaries are float64 ksum (classes*V x M) and kysum (classes*V x M x d) per temperature. With K
  // class shards each class's rows span only its own shard's M / K landmarks (balanced here: 60 / 10).
  // Vector maps: V M landmarks per group, each (class, vector) row spanning its own M / classes of them:
  // the summaries of 10 class shards, the landmarks (float32, in the folded bytes) V times more.
  const auto m = t.memory();
  const int64_t temps = static_cast<int64_t>(t.config().temperatures.size()), M = c.landmarks;
  if (p.method == "standard") {
    EXPECT_EQ(m.feature_cache, 600 * (16 * 64 + 4 * 128 + 64) * 4);
    EXPECT_EQ(m.summaries, 0);
  } else {
    EXPECT_EQ(m.feature_cache, 0);
    const int64_t per_class_values = p.per_location ? (16 * (M + M * 64) + 4 * (M + M * 128) + (M + M * 64))
                                                    : (M + M * 16 * 64) + (M + M * 4 * 128) + (M + M * 64);
    EXPECT_EQ(m.summaries, 10 * per_class_values * temps * 8 / (p.vector_maps ? 10 : p.shards));
    EXPECT_GT(m.folded, m.summaries / 2);
    if (p.vector_maps) {  // folded: landmarks + per map and temperature [num | den] rows (own, all-data, zero) + Amap
      const int64_t Mk = M / 10;
      auto group = [&](int64_t maps, int64_t d) { return maps * (Mk * d * 4 + temps * (3 * Mk * (d + 1) * 4 + Mk * Mk * 4)); };
      EXPECT_EQ(m.folded, group(160, 64) + group(40, 128) + group(10, 64));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, EncoderSpaceTraining,
                         ::testing::Values(SpaceCase{"standard", true}, SpaceCase{"driftxpress", true},
                                           SpaceCase{"standard", false}, SpaceCase{"driftxpress", false},
                                           SpaceCase{"driftxpress", true, 10}, SpaceCase{"driftxpress", true, 1, true}),
                         [](const ::testing::TestParamInfo<SpaceCase>& info) { return case_name(info.param); });

// Per-location fields reorder the encoder's outputs before the loss; the gradient must reach the
// convolutions' backward the same way on every run (a permute there gave run-dependent gradients under
// LibTorch 1.13, README). Two trainers of one configuration, two steps each: bit-identical generators.
TEST_F(EncoderTest, PerLocationTrainingGivesTheSameGeneratorOnEveryRun) {
  for (const std::string method : {"standard", "driftxpress"}) {
    const auto dir = fresh_dir("determinism_" + method);
    std::vector<std::vector<torch::Tensor>> params;
    for (int run = 0; run < 2; ++run) {
      TrainConfig c = encoder_space_config(method, dir);
      c.out_dir = fmt::format("{}/run{}", dir, run);
      Trainer t(c);
      for (int s = 0; s < 2; ++s) t.step();
      params.emplace_back();
      for (const auto& w : t.generator()->parameters()) params.back().push_back(w.detach().clone());
    }
    for (size_t k = 0; k < params[0].size(); ++k)
      EXPECT_TRUE(torch::equal(params[0][k], params[1][k])) << method << " parameter " << k;
  }
}

// The standard method's positives (and guidance negatives) gathered from the cache of the training
// set's features give the targets of positives encoded every step: the same draws, the same features up
// to float32 rounding of the encoder's convolutions at another batch size (relative ~1e-6 per value).
// The targets are a softmax-weighted mean over positives at tau_eff = 0.02 sqrt(d): a distance error
// e moves a weight by a factor exp(e / tau_eff), with distances ~ sqrt(d) and e ~ 1e-6 sqrt(d) that is
// ~5e-5 relative at most; 1e-4 bounds the relative L2 error of every group's target.
TEST_F(EncoderTest, CachedPositivesGiveTheTargetsOfFreshlyEncodedOnes) {
  const auto dir = fresh_dir("cached_positives");
  std::vector<std::vector<torch::Tensor>> targets;
  for (const std::string source : {"cached", "encode"}) {
    TrainConfig c = encoder_space_config("standard", dir);
    c.positives = source;
    c.guidance = true;  // the guidance negatives come from the same source
    c.out_dir = dir + "/run-" + source;
    Trainer t(c);
    EXPECT_EQ(t.memory().feature_cache > 0, source == "cached");
    torch::manual_seed(1);
    auto z = torch::randn({18, 8});
    auto labels = torch::tensor({0, 4, 7}, torch::kLong).repeat_interleave(6);
    auto alpha = torch::tensor({1.0, 2.5, 4.0}).repeat_interleave(6);
    targets.push_back(t.drift_targets(z, labels, alpha).second);
  }
  ASSERT_EQ(targets[0].size(), 3u);
  for (size_t g = 0; g < 3; ++g) {
    const double rel = ((targets[0][g] - targets[1][g]).norm() / targets[1][g].norm()).item<double>();
    EXPECT_LT(rel, 1e-4) << "group " << g;
  }
}

// Vector maps give every (class, vector) its own map: an unconditional run, or class shards that are not
// one per class, are refused in one line before anything is summarised.
TEST_F(EncoderTest, VectorMapsNeedAClassConditionalRunAndOneShardPerClass) {
  const auto dir = fresh_dir("vector_maps_refused");
  TrainConfig c = encoder_space_config("driftxpress", dir);
  c.vector_maps = true;
  c.landmark_shards = 5;
  expect_error([&] { Trainer t(c); }, {"--vector-maps", "--landmark-shards must be 1 or the 10 classes of mnist"});
  c.landmark_shards = 1;
  c.conditional = false;
  expect_error([&] { Trainer t(c); }, {"--vector-maps", "class-conditional run"});
}

// DriftXpress's unconditional summaries pool every vector of a group: guidance with a per-location group
// is refused in one line (standard supports it, as the test above shows).
TEST_F(EncoderTest, DriftxpressRefusesGuidanceWithPerLocationGroups) {
  const auto dir = fresh_dir("guided_locations");
  TrainConfig c = encoder_space_config("driftxpress", dir);
  c.guidance = true;
  expect_error([&] { Trainer t(c); }, {"--guidance with the per-location group encoder:mnist/l3.loc", "--per-location false"});
  c.per_location = false;
  c.features = "encoder:mnist/l1.mean_std";
  EXPECT_NO_THROW(Trainer t(c));
}
