// The evaluator network, its pinned weights, and the eval CLI end to end on real images (fast: the
// shipped weights are loaded, never trained here).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <torch/script.h>

#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/npy.h"
#include "driftx/sha256.h"

using namespace driftx;
namespace fs = std::filesystem;

namespace {

class EvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("driftx_evaluator_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

bool have(const std::string& dataset) {
  try {
    load_dataset(dataset, "test");
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small labelled dataset of random images, for training-mechanics tests.
Dataset toy(int64_t n) {
  Dataset d;
  d.name = "toy";
  d.images = torch::rand({n, 1, 28, 28}) * 2 - 1;
  d.labels = torch::arange(n, torch::kLong) % 10;
  return d;
}

}  // namespace

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(EvaluatorTest, ForwardShapes) {
  Evaluator m;
  auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  EXPECT_EQ(m->features(x).sizes(), (std::vector<int64_t>{3, kEvaluatorFeatureDim}));
  EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(evaluator_features(m, torch::zeros({5, 1, 28, 28}), 2).sizes(), (std::vector<int64_t>{5, 128}));
  EXPECT_THROW(m->forward(torch::zeros({3, 28, 28})), Error);
  EXPECT_THROW(m->forward(torch::zeros({3, 3, 28, 28})), Error);
}

TEST_F(EvaluatorTest, TrainingIsDeterministicForASeed) {
  torch::manual_seed(0);
  const auto data = toy(96);
  EvaluatorTrainOptions o;
  o.epochs = 1;
  o.batch = 32;
  o.seed = 5;
  auto a = train_evaluator(data, o), b = train_evaluator(data, o);
  o.seed = 6;
  auto c = train_evaluator(data, o);
  const auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  bool differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
    differs = differs || !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(differs);
  EXPECT_FALSE(a->is_training());  // returned in eval mode: dropout off
}

TEST_F(EvaluatorTest, SaveLoadRoundTripAndChecksumRejection) {
  torch::manual_seed(1);
  Evaluator m;
  const std::string dir = path("models");
  const std::string sha = save_evaluator(m, "mnist", {{"test_accuracy", 0.5}}, dir);
  const std::string weights = dir + "/evaluator-mnist.pt";
  EXPECT_EQ(sha, sha256_file_hex(weights));
  EXPECT_EQ(evaluator_sha256("mnist", dir), sha);
  const auto meta = read_json(dir + "/evaluator-mnist.json");
  EXPECT_EQ(meta["feature_dim"], 128);
  EXPECT_EQ(meta["test_accuracy"], 0.5);

  auto loaded = load_evaluator("mnist", dir);
  auto x = torch::rand({4, 1, 28, 28}) * 2 - 1;
  m->eval();
  EXPECT_TRUE(torch::equal(m->forward(x), loaded->forward(x)));
  // torch::load reads the same archive.
  Evaluator via_torch_load;
  torch::load(via_torch_load, weights);
  via_torch_load->eval();
  EXPECT_TRUE(torch::equal(m->forward(x), via_torch_load->forward(x)));

  // One flipped byte: refused with the fix in the message.
  std::string bytes = read_file(weights);
  bytes[bytes.size() / 2] ^= 0x01;
  write_file_atomic(weights, bytes);
  const std::string msg = error_of([&] { load_evaluator("mnist", dir); });
  EXPECT_NE(msg.find("do not match their recorded SHA-256"), std::string::npos) << msg;
  EXPECT_NE(msg.find("driftx evaluator train --dataset mnist"), std::string::npos) << msg;

  // Missing weights name the command that creates them.
  const std::string missing = error_of([&] { load_evaluator("fashion-mnist", dir); });
  EXPECT_NE(missing.find("driftx evaluator train --dataset fashion-mnist"), std::string::npos) << missing;
}

TEST_F(EvaluatorTest, ModelsDirResolution) {
  EXPECT_EQ(resolve_models_dir("/x/y"), "/x/y");
  ::setenv("DRIFTX_MODELS_DIR", "/from/env", 1);
  EXPECT_EQ(resolve_models_dir(), "/from/env");
  EXPECT_EQ(evaluator_weights_path("mnist"), "/from/env/evaluator-mnist.pt");
  ::unsetenv("DRIFTX_MODELS_DIR");
  EXPECT_EQ(resolve_models_dir(), std::string(DRIFTX_SOURCE_DIR) + "/models");
}

TEST_F(EvaluatorTest, ShippedMnistEvaluatorClassifiesRealDigits) {
  if (!have("mnist")) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  nlohmann::json meta;
  auto model = load_evaluator("mnist", "", &meta);
  EXPECT_GE(meta["test_accuracy"].get<double>(), 0.99);
  const auto test = load_dataset("mnist", "test");
  const double acc = evaluator_accuracy(model, test.images.narrow(0, 0, 1000), test.labels.narrow(0, 0, 1000));
  EXPECT_GE(acc, 0.98);
}

TEST_F(EvaluatorTest, ShippedFashionEvaluatorMeetsItsAccuracy) {
  if (!have("fashion-mnist")) GTEST_SKIP() << "Fashion-MNIST not found: run scripts/setup.sh";
  nlohmann::json meta;
  auto model = load_evaluator("fashion-mnist", "", &meta);
  EXPECT_GE(meta["test_accuracy"].get<double>(), 0.90);
  const auto test = load_dataset("fashion-mnist", "test");
  EXPECT_GE(evaluator_accuracy(model, test.images.narrow(0, 0, 1000), test.labels.narrow(0, 0, 1000)), 0.88);
}

TEST_F(EvaluatorTest, EvalCliOnRealImagesIsNearTheFloor) {
  if (!have("mnist")) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  // Real train images as "samples": their scores must match the floor's, far from noise's.
  const auto train = load_dataset("mnist", "train");
  write_npy(path("real.npy"), train.images.narrow(0, 30000, 1000));
  write_npy(path("labels.npy"), train.labels.narrow(0, 30000, 1000));
  write_npy(path("noise.npy"), torch::rand({1000, 1, 28, 28}) * 2 - 1);
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string(DRIFTX_BINARY) + " --threads 1 eval --kid-subsets 10 " + args + " > " + path("out.txt") + " 2>&1";
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(run("--samples " + path("real.npy") + " --labels " + path("labels.npy") + " --report " + path("r.json")), 0)
      << read_file(path("out.txt"));
  const auto r = read_json(path("r.json"));
  EXPECT_EQ(r["config"]["n"], 1000);
  EXPECT_LT(r["samples"]["fid"].get<double>(), 3 * r["floor"]["fid"].get<double>() + 1.0);
  EXPECT_GT(r["samples"]["precision"].get<double>(), 0.8);
  EXPECT_GT(r["samples"]["class_accuracy"].get<double>(), 0.98);
  EXPECT_EQ(r["features"]["sha256"], evaluator_sha256("mnist"));

  ASSERT_EQ(run("--samples " + path("noise.npy") + " --report " + path("n.json")), 0) << read_file(path("out.txt"));
  const auto noise = read_json(path("n.json"));
  EXPECT_GT(noise["samples"]["fid"].get<double>(), 50 * r["samples"]["fid"].get<double>());
  // Not precision: noise collapses to a tight clump of features that a wide real ball can hold.
  EXPECT_LT(noise["samples"]["recall"].get<double>(), 0.05);
  EXPECT_FALSE(noise["samples"].contains("class_accuracy"));

  // A user feature map instead of the evaluator: 4x4-pooled pixels, 49-d.
  torch::jit::Module pool("Pool");
  pool.define("def forward(self, x):\n  return torch.avg_pool2d(x, [4, 4]).flatten(1)\n");
  pool.save(path("pool.pt"));
  ASSERT_EQ(run("--samples " + path("real.npy") + " --n 500 --fid-features " + path("pool.pt") + " --report " +
                path("p.json")), 0) << read_file(path("out.txt"));
  const auto pooled = read_json(path("p.json"));
  EXPECT_EQ(pooled["features"]["kind"], "torchscript");
  EXPECT_EQ(pooled["config"]["n"], 500);
  EXPECT_LT(pooled["samples"]["fid"].get<double>(), 3 * pooled["floor"]["fid"].get<double>() + 1.0);
  EXPECT_NE(run("--samples " + path("real.npy") + " --fid-features " + path("labels.npy")), 0);
  EXPECT_NE(read_file(path("out.txt")).find("not a loadable TorchScript module"), std::string::npos);

  // Images in [0, 1] instead of [-1, 1] are refused with the fix.
  write_npy(path("bad.npy"), torch::rand({10, 1, 28, 28}) * 2);
  EXPECT_NE(run("--samples " + path("bad.npy")), 0);
  EXPECT_NE(read_file(path("out.txt")).find("must lie in [-1, 1]"), std::string::npos);
}
