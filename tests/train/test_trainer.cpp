// Training on real MNIST with tiny configurations (seconds each).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/parse.h"
#include "driftx/train.h"
#include "test_support.h"

using namespace driftx;

namespace {

bool have_mnist() {
  return std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte");
}

std::string fresh_dir(const std::string& name) {
  // Unique per process: test runs of several checkouts share /tmp.
  auto dir = std::filesystem::path(testing::TempDir()) / ("driftx_train_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

TrainConfig tiny(const std::string& method, const std::string& dir) {
  return testing_support::tiny_train_config(method, dir);
}

int64_t log_lines(const std::string& run_dir) {
  std::ifstream log(run_dir + "/log.jsonl");
  std::string line;
  int64_t n = 0;
  while (std::getline(log, line)) ++n;
  return n;
}

std::vector<torch::Tensor> params_of(Generator& g) {
  std::vector<torch::Tensor> out;
  for (auto& p : g->parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace

class TrainerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
};

TEST_P(TrainerTest, OneStepLowersTheDriftingLossOnAFixedBatch) {
  auto dir = fresh_dir("lower_" + GetParam());
  Trainer t(tiny(GetParam(), dir));
  torch::manual_seed(1);
  auto z = torch::randn({18, 8});
  auto labels = torch::tensor({0, 4, 7}, torch::kLong).repeat_interleave(6);
  // Standard: positives are random per call, so freeze the targets first and compare against them.
  auto [before, targets] = t.drift_targets(z, labels);
  const double start = t.loss_against(z, labels, targets);
  t.step_on(z, labels);
  const double after = t.loss_against(z, labels, targets);
  EXPECT_GT(before, 0);
  EXPECT_LT(after, start) << "one step did not reduce the loss against the frozen drifted targets";
}

// --matmul-dtype bf16 reaches both fields from the trainer: the targets move by the products' rounding
// and no more. bf16 keeps 8 significant bits (unit roundoff 2^-9 = 2e-3) on both factors of the
// kernel-weighted sums, accumulated in float32: a relative error of at most ~4e-3 on each weighted
// mean, and the drift is a normalised difference of two of them, so each per-temperature term moves by
// ~1e-2 of its unit RMS at worst. The target is x/S (exact) plus the drift, with |drift| <= |target|:
// relative L2 of the targets < 2e-2, and > 0 (the flag is not ignored).
TEST_P(TrainerTest, Bf16ProductsMoveTheTargetsOnlyByTheirRounding) {
  torch::manual_seed(1);
  auto z = torch::randn({18, 8});
  auto labels = torch::tensor({0, 4, 7}, torch::kLong).repeat_interleave(6);
  std::vector<std::vector<torch::Tensor>> targets;
  for (const std::string dtype : {"float32", "bf16"}) {
    auto c = tiny(GetParam(), fresh_dir("bf16_" + GetParam() + dtype));
    c.matmul_dtype = dtype;
    Trainer t(c);
    targets.push_back(t.drift_targets(z, labels).second);
  }
  for (size_t g = 0; g < targets[0].size(); ++g) {
    const double rel = ((targets[1][g] - targets[0][g]).norm() / targets[0][g].norm()).item<double>();
    EXPECT_LT(rel, 2e-2) << "group " << g;
    EXPECT_GT(rel, 0) << "group " << g << ": bf16 products changed nothing";
  }
}

TEST_P(TrainerTest, RunsEndToEndAndWritesOutputs) {
  auto dir = fresh_dir("e2e_" + GetParam());
  auto cfg = tiny(GetParam(), dir);
  cfg.steps = 3;
  Trainer t(cfg);
  EXPECT_EQ(t.run(), 3);
  EXPECT_EQ(t.step_count(), 3);
  const auto run = cfg.out_dir;
  EXPECT_TRUE(std::filesystem::exists(run + "/checkpoint.pt"));
  EXPECT_EQ(read_json(run + "/config.json")["method"], GetParam());
  std::ifstream log(run + "/log.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], ++lines);
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
    EXPECT_TRUE(j["loss_per_group"].contains("pool4"));
    EXPECT_GT(j["images_per_s"].get<double>(), 0);
  }
  EXPECT_EQ(lines, 3);
  auto png = read_png(run + "/samples/final_ema.png");  // 10 classes x 10 columns of 28 px (+ padding)
  EXPECT_GT(png.size(0), 280);
  EXPECT_GT(png.size(1), 280);
  EXPECT_TRUE(std::filesystem::exists(run + "/samples/step_0000002.png"));
}

TEST_P(TrainerTest, GuidanceConditionsOnAlphaAndRepelsFromUnconditionalData) {
  auto dir = fresh_dir("guide_" + GetParam());
  auto cfg = tiny(GetParam(), dir);
  cfg.guidance = true;
  cfg.classes_per_step = 2;
  Trainer t(cfg);
  ASSERT_TRUE(t.generator()->config().alpha_conditioning);
  torch::manual_seed(2);
  auto z = torch::randn({12, 8});
  auto labels = torch::tensor({1, 6}, torch::kLong).repeat_interleave(6);
  auto ones = torch::ones({12}), strong = torch::full({12}, 3.0);
  // alpha = 1 adds no guidance mass: the same targets as a batch without alpha (driftxpress is
  // deterministic; the standard field draws fresh positives, so only its shapes are compared).
  auto [l_none, t_none] = t.drift_targets(z, labels);
  auto [l_one, t_one] = t.drift_targets(z, labels, ones);
  auto [l_strong, t_strong] = t.drift_targets(z, labels, strong);
  ASSERT_EQ(t_one.size(), t_strong.size());
  if (GetParam() == "driftxpress") {
    for (size_t g = 0; g < t_one.size(); ++g) EXPECT_TRUE(torch::allclose(t_none[g], t_one[g], 1e-6, 1e-6));
  }
  // alpha = 3: the generator sees alpha and the extra negatives move the targets.
  double moved = 0;
  for (size_t g = 0; g < t_one.size(); ++g) moved += (t_strong[g] - t_one[g]).norm().item<double>() / t_one[g].norm().item<double>();
  EXPECT_GT(moved, 1e-3);
  // One guided step lowers the loss against frozen guided targets.
  const double start = t.loss_against(z, labels, t_strong, strong);
  t.step_on(z, labels, strong);
  EXPECT_LT(t.loss_against(z, labels, t_strong, strong), start);
  // The same noise at alpha 3 gives other images than at alpha 1.
  for (int i = 0; i < 3; ++i) t.step();
  torch::NoGradGuard no_grad;
  auto a = t.generator()->forward(z, labels, ones), b = t.generator()->forward(z, labels, strong);
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Methods, TrainerTest, ::testing::Values("driftxpress", "standard"));

TEST(Trainer, GuidanceScalesFollowThePowerLaw) {
  // p(alpha) ~ alpha^-3 on [1, 4]: mean = (1 - 1/4) / ((1 - 1/16) / 2) = 1.6; P(alpha <= 2) = (1 - 1/4) / (15/16) = 0.8.
  auto u = (torch::arange(100000, torch::kFloat64) + 0.5) / 100000.0;
  auto a = sample_guidance_alpha(u, 4.0, 3.0).to(torch::kFloat64);
  EXPECT_NEAR(a.mean().item<double>(), 1.6, 1e-3);
  EXPECT_NEAR((a <= 2.0).to(torch::kFloat64).mean().item<double>(), 0.8, 1e-3);
  EXPECT_GE(a.min().item<double>(), 1.0);
  EXPECT_LE(a.max().item<double>(), 4.0 + 1e-5);
  // k = 1: log-uniform, median sqrt(alpha_max).
  auto m = sample_guidance_alpha(torch::tensor({0.5}, torch::kFloat64), 4.0, 1.0);
  EXPECT_NEAR(m.item<double>(), 2.0, 1e-5);
}

TEST(Trainer, GuidanceNeedsAConditionalModel) {
  TrainConfig c;
  c.guidance = true;
  c.conditional = false;
  try {
    c.validate();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--guidance needs a class-conditional model"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunExactly) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("resume");
  auto whole = tiny("driftxpress", dir);
  whole.out_dir = dir + "/whole";
  whole.steps = 4;
  Trainer a(whole);
  a.run();

  auto part = whole;
  part.out_dir = dir + "/part";
  part.steps = 2;
  {
    Trainer b(part);
    b.run();
  }
  part.steps = 4;
  std::vector<torch::Tensor> pc, ec;
  {
    Trainer c(part, /*resume=*/true);
    EXPECT_EQ(c.step_count(), 2);
    c.run();
    EXPECT_EQ(c.step_count(), 4);
    EXPECT_EQ(log_lines(part.out_dir), 4);  // the resumed run appended to the log
    pc = params_of(c.generator()), ec = params_of(c.ema_generator());
  }
  {
    auto fresh = part;
    fresh.steps = 1;
    Trainer d(fresh);  // not resumed: starts over, with a new log
    d.run();
    EXPECT_EQ(log_lines(part.out_dir), 1);
  }
  auto pa = params_of(a.generator()), ea = params_of(a.ema_generator());
  ASSERT_EQ(pa.size(), pc.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pc[i])) << "parameter " << i;
    EXPECT_TRUE(torch::equal(ea[i], ec[i])) << "EMA parameter " << i;
  }
}

// Issue 14, defect 7: a killed run logged the steps after its last checkpoint (and maybe half a line);
// the resumed run trains those steps again, so the log is cut back to the checkpoint's step first.
TEST(Trainer, ResumeLogsEveryStepOnce) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("log_once");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 2;
  Trainer(cfg).run();
  {
    std::ofstream log(cfg.out_dir + "/log.jsonl", std::ios::app);
    log << "{\"step\":3,\"loss\":1.0}\n{\"step\":4,\"lo";  // what a kill after step 3 leaves
  }
  cfg.steps = 4;
  Trainer(cfg, /*resume=*/true).run();
  std::ifstream log(cfg.out_dir + "/log.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(log, line);) steps.push_back(nlohmann::json::parse(line).at("step").get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
}

// Issue 14, defect 7: a log line that cannot be written (here /dev/full: ENOSPC, as on a full disk) stops
// the run with one line; it used to write half lines and train on.
TEST(Trainer, LogWriteFailureStopsTheRun) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  auto dir = fresh_dir("log_full");
  auto cfg = tiny("standard", dir);
  cfg.steps = 3;
  std::filesystem::create_directories(cfg.out_dir);
  std::filesystem::create_symlink("/dev/full", cfg.out_dir + "/log.jsonl");
  Trainer t(cfg);
  testing_support::expect_error([&] { t.run(); }, {"cannot write '" + cfg.out_dir + "/log.jsonl'", "No space left on device"});
  EXPECT_EQ(t.step_count(), 1);
}

// Issue 14, defect 9: the summary cache only saves time; when it cannot be written the run goes on
// with a note, and no temporary is left behind.
TEST(Trainer, SummaryCacheWriteFailureIsANote) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("cache_fail");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 1;
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/file", "not a directory");
  cfg.cache_dir = dir + "/file/cache";  // cannot be created
  testing::internal::CaptureStderr();
  Trainer t(cfg);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("note: could not cache summaries: cannot create directory"), std::string::npos) << err;
  EXPECT_EQ(t.run(), 1);
  EXPECT_TRUE(testing_support::temp_files_in(dir).empty());
}

// Issue 14, defect 3: a cache whose sums were damaged (NaN here, which used to fail every later run
// with "loss became nan") is refused with a note and rebuilt: the run trains as with a fresh cache.
TEST(Trainer, CorruptedSummaryCacheIsRebuilt) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("cache_corrupt");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 1;
  double fresh_loss = 0;
  torch::manual_seed(5);
  const auto z = torch::randn({cfg.classes_per_step * cfg.gen_per_class, cfg.noise_dim});
  const auto labels = torch::arange(cfg.classes_per_step).repeat_interleave(cfg.gen_per_class);
  { fresh_loss = Trainer(cfg).drift_targets(z, labels).first; }
  int corrupted = 0;
  for (const auto& entry : std::filesystem::directory_iterator(cfg.cache_dir)) {
    // inside the CRC footer
    auto in = open_archive(read_file_with_crc(entry.path().string(), "summary cache"), "summary cache");
    torch::serialize::OutputArchive out;
    for (const auto& key : in.keys()) {
      torch::Tensor t;
      in.read(key, t);
      if (key == "s0_t0_kysum") t = t.clone().fill_(std::nan("")), ++corrupted;
      out.write(key, t);
    }
    std::ostringstream bytes;
    out.save_to(bytes);
    write_file_with_crc(entry.path().string(), bytes.str());  // a valid footer: the sums' checksum must catch it
  }
  ASSERT_GT(corrupted, 0);
  testing::internal::CaptureStderr();
  Trainer again(cfg);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("note: rebuilding summaries"), std::string::npos) << err;
  EXPECT_NE(err.find("is corrupted"), std::string::npos) << err;
  EXPECT_EQ(again.drift_targets(z, labels).first, fresh_loss);
}

// Issue 14, defects 4 and 10: a second trainer on a directory in use is refused, and a resume without a
// checkpoint is refused before the precompute (no summaries built, no cache written).
TEST(Trainer, RefusesABusyDirectoryAndAResumeWithoutCheckpointAtOnce) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("busy");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 1;
  testing_support::expect_error([&] { Trainer(cfg, /*resume=*/true); }, {"--resume: no checkpoint at"});
  EXPECT_FALSE(std::filesystem::exists(cfg.cache_dir)) << "the precompute ran before the refusal";
  Trainer first(cfg);
  testing_support::expect_error([&] { Trainer second(cfg); }, {"is in use by another driftx process"});
}

TEST(Trainer, RejectsCorruptedAndTruncatedCheckpoints) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("corrupt");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 1;
  Trainer(cfg).run();
  const auto path = cfg.out_dir + "/checkpoint.pt";
  auto bytes = read_file(path);
  auto flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x5a;
  write_file_atomic(path, flipped);
  try {
    Trainer t(cfg, true);
    FAIL() << "corrupted checkpoint accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupted"), std::string::npos) << e.what();
  }
  write_file_atomic(path, bytes.substr(0, bytes.size() / 3));
  EXPECT_THROW(Trainer(cfg, true), Error);
  EXPECT_THROW(load_generator(path, true), Error);
}

TEST(Trainer, ResumeRefusesAnotherConfiguration) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("other_cfg");
  auto cfg = tiny("driftxpress", dir);
  cfg.steps = 1;
  Trainer(cfg).run();
  cfg.gen_per_class = 7;
  EXPECT_THROW(Trainer(cfg, true), Error);
}

TEST(Trainer, TimeBudgetStopsCleanly) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  auto dir = fresh_dir("budget");
  auto cfg = tiny("driftxpress", dir);
  cfg.time_budget_s = 1e-3;  // already spent by the precompute, which the budget counts
  Trainer t(cfg);
  EXPECT_EQ(t.run(), 0);
  EXPECT_TRUE(std::filesystem::exists(cfg.out_dir + "/checkpoint.pt"));
}

TEST(Trainer, RefusesTheFidEvaluatorAsTrainingFeatures) {
  if (!have_mnist()) GTEST_SKIP() << "MNIST not found";
  const auto weights = evaluator_weights_path("mnist");
  if (!std::filesystem::exists(weights)) GTEST_SKIP() << "no shipped evaluator";
  auto dir = fresh_dir("refuse_eval");
  auto cfg = tiny("driftxpress", dir);
  // A byte-identical copy elsewhere is refused by its SHA-256, the file itself by its location.
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(weights, dir + "/copy.pt");
  for (const auto& path : {weights, dir + "/copy.pt"}) {
    cfg.features = "pixels,torchscript:" + path;
    try {
      Trainer t(cfg);
      FAIL() << "evaluator accepted as a feature map: " << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("FID evaluator"), std::string::npos) << e.what();
    }
  }
}

TEST(Trainer, ParsesDurationsAndValidatesConfig) {
  EXPECT_DOUBLE_EQ(parse_duration("20m"), 1200);
  EXPECT_DOUBLE_EQ(parse_duration("1.5h"), 5400);
  EXPECT_DOUBLE_EQ(parse_duration("90s"), 90);
  EXPECT_DOUBLE_EQ(parse_duration("42"), 42);
  EXPECT_THROW(parse_duration("soon"), Error);
  EXPECT_THROW(parse_duration("5x"), Error);
  TrainConfig c;
  c.method = "exactish";
  EXPECT_THROW(c.validate(), Error);
  c = TrainConfig{};
  c.features = "pixels,edges";
  EXPECT_THROW(c.validate(), Error);
  auto round = TrainConfig::from_json(TrainConfig{}.to_json());
  EXPECT_EQ(round.to_json(), TrainConfig{}.to_json());
}
