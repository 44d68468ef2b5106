// Argument checks of the driftx CLI (issue 14, defects 2, 7, 8, 10, 12, 13): each bad value is refused in one
// line naming the flag, before any data, checkpoint or dataset is read (the checkpoint paths below do not
// exist, so a check that ran too late would report the missing file instead). Every case ran to exit 0
// or gave a misleading message before these checks.
#include <torch/torch.h>

#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/npy.h"
#include "test_support.h"

namespace driftx {
namespace {

struct BadArgs {
  std::string name;      // test name
  std::string args;      // after "driftx"; {dir} is replaced by the test's directory
  std::string expected;  // must appear in the one-line error
};

void PrintTo(const BadArgs& c, std::ostream* os) { *os << c.name; }

using CliArguments = testing_support::CliTest;

class CliBadArguments : public CliArguments, public ::testing::WithParamInterface<BadArgs> {};

TEST_P(CliBadArguments, RefusedInOneLineNamingTheFlag) {
  const auto& c = GetParam();
  // Files a check might read: 4 valid images and labels outside the 10 classes.
  write_npy(path("samples.npy"), torch::zeros({4, 1, 28, 28}));
  write_npy(path("labels.npy"), torch::tensor({0, 3, 10, 2}, torch::kLong));
  const auto [rc, out] = run(c.args);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find(c.expected), std::string::npos) << "'" << c.expected << "' not in: " << out;
  EXPECT_EQ(out.find("error:"), out.rfind("error:")) << "more than one error line: " << out;
  EXPECT_EQ(out.find("cannot open"), std::string::npos) << "checked too late: " << out;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadArguments,
    ::testing::Values(
        BadArgs{"ThreadsFarBeyondTheCores", "--threads 100000 sample --ckpt {dir}/none.pt --out {dir}/g.png", "--threads"},
        BadArgs{"NegativeSeed", "sample --ckpt {dir}/none.pt --out {dir}/g.png --seed -1", "must be an integer >= 0"},
        BadArgs{"NegativeClass", "sample --ckpt {dir}/none.pt --out {dir}/g.png --class -1", "--class"},
        BadArgs{"ZeroColumns", "sample --ckpt {dir}/none.pt --out {dir}/g.png --columns 0", "--columns"},
        BadArgs{"SampleAlphaNan", "sample --ckpt {dir}/none.pt --out {dir}/g.png --alpha nan", "--alpha must be a number in [1, 100]"},
        BadArgs{"SampleAlphaHuge", "sample --ckpt {dir}/none.pt --out {dir}/g.png --alpha 1e30", "--alpha must be a number in [1, 100]"},
        BadArgs{"SampleAlphaBelowOne", "sample --ckpt {dir}/none.pt --out {dir}/g.png --alpha 0", "--alpha must be a number in [1, 100]"},
        BadArgs{"EvalAlphaInf", "eval --ckpt {dir}/none.pt --alpha inf", "--alpha must be a number in [1, 100]"},
        BadArgs{"EvalLabelsOutsideTheClasses", "eval --samples {dir}/samples.npy --labels {dir}/labels.npy",
                "classes must lie in [0, 10), got [0, 10]"},
        BadArgs{"StepsBeyondInt64", "train --steps 99999999999999999999 --out {dir}/run", "--steps must be <= 1e12"},
        BadArgs{"NegativeCheckpointEvery", "train --steps 1 --checkpoint-every -1 --out {dir}/run", "--checkpoint-every must be >= 0"},
        BadArgs{"WidthBeyondMemory", "train --steps 1 --width 1000000 --out {dir}/run", "--width must be a multiple of 8 in [8, 1024]"},
        BadArgs{"NoiseDimBeyondMemory", "train --steps 1 --noise-dim 100000000 --out {dir}/run", "--noise-dim must be in [1, 4096]"},
        BadArgs{"SamplesBeyondMemory", "sample --ckpt {dir}/none.pt --out {dir}/g.npy --n 100000000000", "--n must be in [1, 1000000]"},
        BadArgs{"ZeroProjectedScale",
                "field projected --gen {dir}/none.npy --data {dir}/none.npy --out-drift {dir}/d.npy --out-target {dir}/t.npy --scale 0",
                "--scale must be a positive number"}),
    [](const ::testing::TestParamInfo<BadArgs>& info) { return info.param.name; });

// The checks refuse only what is wrong: in-range values get past them to the missing checkpoint.
TEST_F(CliArguments, InRangeValuesReachTheCheckpoint) {
  for (const std::string args : {"--alpha 1.5 --seed 7 --class 3 --columns 5", "--alpha 100"}) {
    const auto [rc, out] = run("--threads 1 sample --ckpt {dir}/none.pt --out {dir}/g.png " + args);
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("none.pt"), std::string::npos) << args << ": " << out;
    EXPECT_EQ(out.find("--alpha"), std::string::npos) << args << ": " << out;
  }
}

// `encoder train --out <the evaluator>` is refused before the minutes of training, not at save time.
TEST_F(CliArguments, EncoderOutOntoTheEvaluatorIsRefusedBeforeTraining) {
  const auto [rc, out] = run("encoder train --dataset mnist --out " + evaluator_weights_path("mnist"));
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("is the FID evaluator of mnist"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch"), std::string::npos) << "trained before refusing: " << out;
}

// `driftx plot` draws what the file holds: the PNG is the renderer's size, the error bars add pixels to the
// same series without them (the renderer's own test compares pixels), and a malformed file is one line.
TEST_F(CliArguments, PlotDrawsTheSeriesOfAFileAndRefusesAMalformedOne) {
  const std::string series = R"({"title": "t", "series": [{"name": "a", "x": [10, 50, 100], "y": [500, 30, 12])";
  write_file_atomic(path("bars.json"), series + R"(, "y_lo": [450, 20, 11], "y_hi": [550, 40, 13]}]})");
  write_file_atomic(path("plain.json"), series + "}]}");
  for (const std::string name : {"bars", "plain"}) {
    const auto [rc, out] = run(fmt::format("plot --series {{dir}}/{0}.json --out {{dir}}/{0}.png --log-y", name));
    ASSERT_EQ(rc, 0) << out;
  }
  const auto bars = read_png(path("bars.png")), plain = read_png(path("plain.png"));
  EXPECT_EQ(bars.sizes(), torch::IntArrayRef({560, 900, 3}));
  auto inked = [](const torch::Tensor& img) { return (img < 255).any(2).sum().item<int64_t>(); };
  EXPECT_GT(inked(bars), inked(plain)) << "the error bars drew nothing";
  write_file_atomic(path("bad.json"), R"({"series": [{"name": "a", "x": [1, 2], "y": [1, "two"]}]})");
  const auto [rc, out] = run("plot --series {dir}/bad.json --out {dir}/bad.png");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("plot: series 'a': 'y' must hold numbers only"), std::string::npos) << out;
  EXPECT_EQ(out.find("error:"), out.rfind("error:")) << out;
  EXPECT_FALSE(std::filesystem::exists(path("bad.png")));
}

}  // namespace
}  // namespace driftx
