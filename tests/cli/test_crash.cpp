// Crashes, signals, full disks and concurrent runs, with the driftx binary as a real process (issue 14,
// "what survives what" in the README). Tiny MNIST runs: ~1 s of precompute and training per process.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "driftx/data.h"
#include "driftx/train.h"
#include "test_support.h"

namespace driftx {
namespace {

// 6 steps of a tiny DriftXpress run, a checkpoint every 2 steps, one thread and one rank: the same
// seed gives the same numbers bit for bit, in one process or across a kill and a --resume.
const std::string kTiny =
    "--threads 1 train --dataset mnist --features pool4 --classes-per-step 2 --gen-per-class 4 --landmarks 20 "
    "--width 8 --noise-dim 8 --lr 1e-3 --warmup 0 --log-every 1 --sample-every 0 --checkpoint-every 2 --seed 3 "
    "--ranks 1 --steps 6";

bool have_mnist() { return std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte"); }

class Crash : public testing_support::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
  // A tiny run in {dir}/<name>/run with its cache in {dir}/<name>/cache.
  static std::string tiny(const std::string& name, const std::string& extra = "") {
    return kTiny + " --out {dir}/" + name + "/run --cache-dir {dir}/" + name + "/cache " + extra;
  }
  std::string ckpt(const std::string& name) const { return path(name + "/run/checkpoint.pt"); }

  // Generator and EMA parameters of two checkpoints are equal bit for bit.
  static void expect_same_generators(const std::string& a, const std::string& b) {
    for (bool ema : {false, true}) {
      auto ga = load_generator(a, ema), gb = load_generator(b, ema);
      auto pa = ga->parameters(), pb = gb->parameters();
      ASSERT_EQ(pa.size(), pb.size());
      for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << (ema ? "EMA " : "") << "parameter " << i;
    }
  }
  // Waits (at most a minute) until `ready` holds; the spawned process's output goes to `log`.
  template <typename Ready>
  void wait_until(Ready ready, const std::string& log) const {
    const auto t0 = std::chrono::steady_clock::now();
    while (!ready()) {
      ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60)) << read_file(log);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::vector<int64_t> logged_steps(const std::string& name) const {
    std::vector<int64_t> steps;
    std::istringstream log(read_file(path(name + "/run/log.jsonl")));
    for (std::string line; std::getline(log, line);) steps.push_back(nlohmann::json::parse(line).at("step").get<int64_t>());
    return steps;
  }
};

// Where a crash test kills the run (DRIFTX_CRASH_AT), and whether it then resumes (a run killed before
// its first checkpoint is started again).
struct KillPoint {
  std::string name, crash_at;
  bool resume;
};
void PrintTo(const KillPoint& p, std::ostream* os) { *os << p.name; }

class KillNine : public Crash, public ::testing::WithParamInterface<KillPoint> {};

// kill -9 after step 3 (between checkpoints), half-way through writing the second checkpoint, and
// half-way through writing the summary cache (before any checkpoint: the run is started again). Each
// time the run then ends bit-identical to the uninterrupted one, logs each step once and leaves no
// temporary file; the lock of the killed process does not block the next.
TEST_P(KillNine, ThenResumeIsBitIdentical) {
  const auto& p = GetParam();
  auto [rc, out] = run(tiny("whole"));
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = run(tiny("killed"), "DRIFTX_CRASH_AT=" + p.crash_at);
  ASSERT_EQ(rc, 128 + SIGKILL) << out;
  if (p.crash_at.rfind("write:", 0) == 0) EXPECT_FALSE(testing_support::temp_files_in(path("killed")).empty());
  std::tie(rc, out) = run(tiny("killed", p.resume ? "--resume" : ""));
  ASSERT_EQ(rc, 0) << out;
  expect_same_generators(ckpt("whole"), ckpt("killed"));
  EXPECT_EQ(logged_steps("killed"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(testing_support::temp_files_in(path("killed")).empty());
}

INSTANTIATE_TEST_SUITE_P(Moments, KillNine,
                         ::testing::Values(KillPoint{"AfterStep3", "step:3", true},
                                           KillPoint{"InTheSecondCheckpointWrite", "write:checkpoint.pt:2", true},
                                           KillPoint{"InTheSummaryCacheWrite", "write:summary-:1", false}),
                         [](const ::testing::TestParamInfo<KillPoint>& info) { return info.param.name; });

// A disk that fills (here the file-size limit, which stops the checkpoint, the largest file) gives one
// line and keeps the previous checkpoint; the run resumes from it once there is room.
TEST_F(Crash, FullDiskKeepsThePreviousCheckpoint) {
  auto [rc, out] = run(tiny("whole"));
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = run(tiny("full", "--steps 2"));
  ASSERT_EQ(rc, 0) << out;
  const std::string before = read_file(ckpt("full"));
  ASSERT_GT(before.size(), 64u * 1024) << "the limit below must stop the checkpoint";
  std::tie(rc, out) = run(tiny("full", "--resume"), "trap '' XFSZ; ulimit -f 64;");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  EXPECT_NE(out.find("error: writing '" + ckpt("full") + "' failed: File too large; the previous file"), std::string::npos) << out;
  EXPECT_EQ(read_file(ckpt("full")), before);
  EXPECT_TRUE(testing_support::temp_files_in(path("full")).empty());
  std::tie(rc, out) = run(tiny("full", "--resume"));
  ASSERT_EQ(rc, 0) << out;
  expect_same_generators(ckpt("whole"), ckpt("full"));
}

// Issue 14, defect 1: export onto a full disk used to abort with a stack dump (rc 134) and truncate
// the previous generator.pt; now one line, and the previous file is whole.
TEST_F(Crash, ExportOntoAFullDiskKeepsThePreviousGenerator) {
  auto [rc, out] = run(tiny("run", "--steps 1"));
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = run("export --ckpt " + ckpt("run") + " --out {dir}/generator.pt");
  ASSERT_EQ(rc, 0) << out;
  const std::string before = read_file(path("generator.pt"));
  std::tie(rc, out) = run("export --ckpt " + ckpt("run") + " --ema --out {dir}/generator.pt", "trap '' XFSZ; ulimit -f 8;");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "not one line: " << out;
  EXPECT_NE(out.find("failed: File too large"), std::string::npos) << out;
  EXPECT_EQ(read_file(path("generator.pt")), before);
  EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
}

// Issue 14, defect 4: a second train on a directory in use is refused in one line before it loads
// anything (it used to die later, or interleave its log with the first run's), on every rank at once.
TEST_F(Crash, SecondTrainOnTheSameDirectoryIsRefused) {
  std::filesystem::create_directories(path("busy/run"));
  {
    DirectoryLock held(path("busy/run"), "run directory");  // as a running driftx train holds it
    // Two ranks as threads: rank 1 must stop with rank 0, not wait for it until --dist-timeout.
    auto [rc, out] = run(tiny("busy", "--ranks 2 --dist-timeout 60s"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_EQ(testing_support::error_lines(out), 1) << out;
    EXPECT_NE(out.find("is in use by another driftx process (pid " + std::to_string(::getpid())), std::string::npos) << out;
    EXPECT_EQ(out.find("summaries"), std::string::npos) << "refused after the precompute: " << out;
    EXPECT_FALSE(std::filesystem::exists(ckpt("busy")));
    EXPECT_EQ(out.find("rank 1"), std::string::npos) << out;
  }
  auto [rc, out] = run(tiny("busy", "--steps 1"));
  EXPECT_EQ(rc, 0) << out;
}

// Issue 14, defect 2: SIGTERM during the summary precompute (pixels, 1000 landmarks: seconds) used to be
// ignored until the precompute ended; now the process stops at once with one line and status 143, and
// the summary cache being written is removed.
TEST_F(Crash, SigtermDuringThePrecomputeStopsAtOnce) {
  const pid_t pid = spawn({"--threads", "1", "train", "--dataset", "mnist", "--features", "pool4,pixels", "--landmarks",
                           "1000", "--steps", "1", "--ranks", "1", "--out", path("run"), "--cache-dir", path("cache")},
                          path("log.txt"));
  // The first group's cache appears when its summaries are done; the pixels group then takes seconds.
  wait_until([&] { return std::filesystem::exists(path("cache")) && !std::filesystem::is_empty(path("cache")); },
             path("log.txt"));
  ::kill(pid, SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  const int rc = wait_exit(pid);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  const std::string out = read_file(path("log.txt"));
  EXPECT_EQ(rc, 143) << out;
  EXPECT_LT(seconds, 1.0) << out;
  EXPECT_NE(out.find("error: interrupted by SIGTERM: stopped"), std::string::npos) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
  EXPECT_FALSE(std::filesystem::exists(path("run/checkpoint.pt")));
}

// Ctrl-C while training: the step finishes, a checkpoint is saved, one line says where, status 130;
// the run resumes from it.
TEST_F(Crash, SigintWhileTrainingSavesACheckpoint) {
  std::vector<std::string> args{"--threads", "1", "train", "--dataset", "mnist", "--features", "pool4", "--classes-per-step", "2",
                                "--gen-per-class", "4", "--landmarks", "20", "--width", "8", "--noise-dim", "8",
                                "--sample-every", "0", "--checkpoint-every", "2", "--steps", "1000000000", "--ranks", "1",
                                "--out", path("run"), "--cache-dir", path("cache")};
  const pid_t pid = spawn(args, path("log.txt"));
  wait_until([&] { return std::filesystem::exists(path("run/checkpoint.pt")); }, path("log.txt"));
  ::kill(pid, SIGINT);
  const int rc = wait_exit(pid);
  const std::string out = read_file(path("log.txt"));
  EXPECT_EQ(rc, 130) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  const auto at = out.find("error: interrupted by SIGINT at step ");
  ASSERT_NE(at, std::string::npos) << out;
  const int64_t step = std::stoll(out.substr(at + std::strlen("error: interrupted by SIGINT at step ")));
  torch::Tensor saved;
  open_checkpoint(path("run/checkpoint.pt")).read("step", saved);
  EXPECT_EQ(saved.item<int64_t>(), step);
  EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
}

// Issue 14, defect 5: with --config, a flag given on the command line wins even when it equals its
// default (it used to be overridden by the file); an unknown or misspelt key is an error naming it.
TEST_F(Crash, ConfigFileMergesWithTheFlagsGiven) {
  write_json(path("c.json"), {{"width", 16}, {"seed", 9}, {"landmarks", 20}});
  auto [rc, out] = run(tiny("run", "--steps 1 --config {dir}/c.json --width 64"));
  ASSERT_EQ(rc, 0) << out;
  const auto used = read_json(path("run/run/config.json"));
  EXPECT_EQ(used["width"], 64);  // the flag, equal to the default
  EXPECT_EQ(used["seed"], 3);    // the flag
  write_json(path("bad.json"), {{"width", 16}, {"lerning_rate", 1e-3}});
  std::tie(rc, out) = run("train --steps 1 --config {dir}/bad.json --out {dir}/bad");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  EXPECT_NE(out.find("unknown key 'lerning_rate'"), std::string::npos) << out;
}

// Issue 14, defects 8 and 10: --resume takes the run's configuration from its config.json (omitted
// flags do not fall back to the defaults); a flag that would change what is learned is refused in one
// line naming it; a resume without a checkpoint fails at once, before any precompute.
TEST_F(Crash, ResumeTakesTheRunsOwnConfiguration) {
  auto [rc, out] = run(tiny("run", "--steps 2"));
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = run("--threads 1 train --out {dir}/run/run --resume --steps 3 --width 16 --lr 0.01");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(testing_support::error_lines(out), 1) << out;
  EXPECT_NE(out.find("--width 16 (the run has 8), --lr 0.01 (the run has 0.001)"), std::string::npos) << out;
  std::tie(rc, out) = run("--threads 1 train --out {dir}/run/run --resume --steps 3");  // nothing else given
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("stopped (step limit) at step 3"), std::string::npos) << out;
  std::tie(rc, out) = run("train --out {dir}/none --resume --steps 3");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("error: --resume: no checkpoint at"), std::string::npos) << out;
  EXPECT_EQ(out.find("summaries"), std::string::npos) << out;
}

}  // namespace
}  // namespace driftx
