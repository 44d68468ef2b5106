// Data-parallel training: Gloo collectives on loopback, summaries and batch statistics reduced
// across ranks equal the single-process numbers, 2 ranks on half-batches train exactly like 1 rank on
// the whole batch, and a failed or missing rank ends the job with a message that names it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "driftx/data.h"
#include "driftx/distributed.h"
#include "driftx/files.h"
#include "driftx/projected_field.h"
#include "driftx/standard_field.h"
#include "driftx/train.h"
#include "test_support.h"

extern char** environ;

using namespace driftx;
using driftx::testing_support::TempDirTest;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

// Runs body(rank, comm) on `world` threads, each one rank of a Gloo group on loopback.
void on_ranks(int world, const std::function<void(int, const std::shared_ptr<Communicator>&)>& body) {
  auto comms = connect_local_ranks(world, kTimeout);
  EXPECT_NO_THROW(on_local_threads(world, [&](int r) { body(r, comms[r]); }));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A child process with extra environment variables, stdout+stderr to a file.
struct Child {
  pid_t pid = -1;
  std::string log;

  Child(const std::vector<std::string>& args, const std::vector<std::string>& extra_env, std::string log_path)
      : log(std::move(log_path)) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    EXPECT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // Exit status, or -1 if still running after `limit`.
  int wait_for(std::chrono::duration<double> limit) {
    const auto t0 = Clock::now();
    while (Clock::now() - t0 < limit) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  // Waits until the log contains `text`; false after `limit`.
  bool wait_output(const std::string& text, std::chrono::duration<double> limit) const {
    const auto t0 = Clock::now();
    while (Clock::now() - t0 < limit) {
      if (read_text(log).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

bool have_mnist() { return std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte"); }

// The tiny training job of the end-to-end tests (seconds per run).
std::vector<std::string> tiny_train(const std::string& method, const std::string& dir, int64_t steps) {
  return {"train", "--method", method, "--features", "pixels", "--landmarks", "50", "--classes-per-step", "2",
          "--gen-per-class", "4", "--pos-per-class", "16", "--width", "64", "--noise-dim", "8", "--lr", "1e-3",
          "--warmup", "0", "--steps", std::to_string(steps), "--log-every", "1", "--sample-every", "0",
          "--checkpoint-every", "1", "--seed", "3", "--out", dir + "/run", "--cache-dir", dir + "/cache",
          "--dist-timeout", "30s"};
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<torch::Tensor> parameters_of(const std::string& checkpoint) {
  std::vector<torch::Tensor> out;
  for (auto& p : load_generator(checkpoint, /*ema=*/false)->parameters()) out.push_back(p.detach().clone());
  return out;
}

std::vector<double> logged_losses(const std::string& run_dir) {
  std::ifstream in(run_dir + "/log.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

}  // namespace

// ---- collectives -------------------------------------------------------------------------------

TEST(Communicator, SingleProcessIsANoOpWithoutAReducer) {
  auto comm = Communicator::single();
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_TRUE(comm->is_main());
  EXPECT_EQ(comm->backend(), "none");
  auto t = torch::tensor({1.5, -2.0}, torch::kFloat64);
  comm->all_reduce_sum(t);
  comm->broadcast(t);
  comm->barrier();
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.5, -2.0}, torch::kFloat64)));
  EXPECT_TRUE(comm->any(true) && !comm->any(false) && comm->all(true) && !comm->all(false));
  EXPECT_FALSE(static_cast<bool>(comm->sum_reducer()));  // the fields keep their single-process code path
}

TEST(Communicator, TwoGlooRanksAllReduceAndBroadcastExactValues) {
  on_ranks(2, [](int r, const std::shared_ptr<Communicator>& c) {
    auto& comm = *c;
    EXPECT_EQ(comm.backend(), "gloo");
    EXPECT_EQ(comm.rank(), r);
    auto f64 = torch::tensor({1.0 + r, 0.25 * r}, torch::kFloat64);
    comm.all_reduce_sum(f64);
    EXPECT_TRUE(torch::equal(f64, torch::tensor({3.0, 0.25}, torch::kFloat64)));
    auto i64 = torch::full({3}, int64_t(10 + r), torch::kLong);
    comm.all_reduce_sum(i64);
    EXPECT_TRUE(torch::equal(i64, torch::full({3}, int64_t(21), torch::kLong)));
    auto strided = torch::arange(6, torch::kFloat32).reshape({2, 3}).t() * (r + 1);  // not contiguous
    comm.all_reduce_sum(strided);
    EXPECT_TRUE(torch::equal(strided, torch::arange(6, torch::kFloat32).reshape({2, 3}).t() * 3));
    auto b = torch::full({2}, float(r == 1 ? 7 : -1));
    comm.broadcast(b, /*root=*/1);
    EXPECT_TRUE(torch::equal(b, torch::full({2}, 7.0f)));
    EXPECT_TRUE(comm.any(r == 1));
    EXPECT_FALSE(comm.all(r == 1));
    EXPECT_TRUE(comm.broadcast_flag(r == 0, 0));
  });
}

// ---- summaries and batch statistics ------------------------------------------------------------

TEST(DistributedSummaries, AllReducedShardsEqualTheSingleProcessSummaries) {
  // 5 classes, 2 landmark shards, chunks of 300 rows: 4,000 rows are 14 chunks, split 7/7 by rank.
  torch::manual_seed(11);
  const int64_t n = 4000, D = 12, C = 5;
  auto real = torch::randn({n, D});
  auto labels = torch::randint(C, {n}, torch::kLong);
  auto idx = torch::randperm(n).narrow(0, 0, 40);
  ProjectedFieldConfig pc;
  pc.chunk = 300;
  const ShardLayout layout{C, 2};
  auto make = [&] {
    return ProjectedField(real.index_select(0, idx), labels.index_select(0, idx), layout,
                          projected_feature_scale(real, real.index_select(0, idx)), pc);
  };
  auto single = make();
  single.add_data(real, labels);
  std::vector<std::unique_ptr<ProjectedField>> fields(2);
  on_ranks(2, [&](int r, const std::shared_ptr<Communicator>& comm) {
    fields[r] = std::make_unique<ProjectedField>(make());
    add_data_distributed(*fields[r], real, labels, *comm);
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(fields[r]);
    EXPECT_EQ(fields[r]->summarised_samples(), n);
    for (int64_t k = 0; k < 2; ++k)
      for (size_t t = 0; t < pc.temperatures.size(); ++t) {
        const auto &a = fields[r]->summary(k, t), &b = single.summary(k, t);
        EXPECT_TRUE(torch::equal(a.counts, b.counts));
        // Same chunks, same float32 products: only the order of the float64 additions differs.
        EXPECT_TRUE(torch::allclose(a.ksum, b.ksum, 1e-12, 0)) << (a.ksum - b.ksum).abs().max().item<double>();
        EXPECT_TRUE(torch::allclose(a.kysum, b.kysum, 1e-12, 1e-12)) << (a.kysum - b.kysum).abs().max().item<double>();
        EXPECT_GT(b.ksum.sum().item<double>(), 0);
      }
  }
  // Rank 1's summaries are bit-identical to rank 0's (one all-reduce result for both).
  for (size_t t = 0; t < pc.temperatures.size(); ++t)
    EXPECT_TRUE(torch::equal(fields[0]->summary(1, t).kysum, fields[1]->summary(1, t).kysum));
  // And the field they give is the single-process field.
  auto x = torch::randn({10, D});
  auto xl = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3, 4, 4}, torch::kLong);
  EXPECT_TRUE(torch::allclose(fields[1]->compute(x, xl).target, single.compute(x, xl).target, 1e-5, 1e-5));
}

TEST(DistributedFields, HalfBatchesWithTheReducerGiveTheWholeBatchTargets) {
  torch::manual_seed(5);
  const int64_t D = 10, N = 6, G = 4, P = 8;
  // Projected field: 4 class groups of 6; each rank holds 2 groups.
  auto real = torch::randn({500, D});
  auto rl = torch::randint(G, {500}, torch::kLong);
  auto field = build_projected_field(real, rl, real.narrow(0, 0, 30), rl.narrow(0, 0, 30), {G, 1}, std::nullopt, {});
  auto x = torch::randn({G * N, D}) * 1.5;
  auto xl = torch::arange(G).repeat_interleave(N);
  const auto whole = field.compute(x, xl);
  // Standard field: 4 groups in one call (s and the drift normalisation shared by all of them).
  StandardField standard;
  auto gen = torch::randn({G, N, D}), pos = torch::randn({G, P, D}) + 0.5;
  const auto whole_std = standard.compute({gen, pos, {}, {}});
  std::vector<torch::Tensor> proj(2), goal(2), loss(2), unreduced(2);
  std::vector<double> scale(2);
  on_ranks(2, [&](int r, const std::shared_ptr<Communicator>& c) {
    auto& comm = *c;
    auto rows = torch::arange(r * 2 * N, (r + 1) * 2 * N);
    proj[r] = field.compute(x.index_select(0, rows), xl.index_select(0, rows), {}, comm.sum_reducer()).target;
    unreduced[r] = field.compute(x.index_select(0, rows), xl.index_select(0, rows)).target;
    auto s = standard.compute({gen.narrow(0, 2 * r, 2), pos.narrow(0, 2 * r, 2), {}, {}}, comm.sum_reducer());
    goal[r] = s.goal, scale[r] = s.scale, loss[r] = s.loss;
  });
  EXPECT_TRUE(torch::allclose(torch::cat(proj), whole.target, 1e-5, 1e-5));
  // Without the reducer each half normalises by its own drift size: different numbers.
  EXPECT_FALSE(torch::allclose(torch::cat(unreduced), whole.target, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(torch::cat(goal), whole_std.goal, 1e-5, 1e-5));
  EXPECT_NEAR(scale[0], whole_std.scale, 1e-6 * whole_std.scale);
  EXPECT_EQ(scale[0], scale[1]);
  // Loss = mean over entries: the mean of the equal halves' losses is the whole batch's.
  EXPECT_NEAR((loss[0].item<double>() + loss[1].item<double>()) / 2, whole_std.loss.item<double>(), 1e-5);
}

// ---- end to end: driftx launch ------------------------------------------------------------------

class DistributedTraining : public TempDirTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
  // Runs `driftx <args>` to completion; returns the exit code, output in `log`.
  int run(const std::vector<std::string>& args, const std::string& log, const std::vector<std::string>& env = {}) {
    Child c(concat({DRIFTX_BINARY, "--threads", "1"}, args), env, log);
    const int code = c.wait_for(std::chrono::seconds(120));
    return code;
  }
};

TEST_P(DistributedTraining, TwoRanksOnHalfBatchesEqualOneRankOnTheWholeBatch) {
  // Plain, and with guidance (per-class alpha, unconditional negatives: every rank draws them for the
  // whole batch and uses its share).
  for (const bool guided : {false, true}) {
    SCOPED_TRACE(guided ? "with --guidance" : "without guidance");
    const std::string tag = guided ? "-cfg" : "";
    const std::string method = GetParam(), one = path("one" + tag), two = path("two" + tag);
    auto args = [&](const std::string& dir) {
      auto a = tiny_train(method, dir, 2);
      if (guided) a.push_back("--guidance");
      return a;
    };
    ASSERT_EQ(run(args(one), path("one" + tag + ".log")), 0) << read_text(path("one" + tag + ".log"));
    ASSERT_EQ(run(concat({"launch", "--nproc", "2", "--"}, args(two)), path("two" + tag + ".log")), 0)
        << read_text(path("two" + tag + ".log"));
    const auto out = read_text(path("two" + tag + ".log"));
    EXPECT_NE(out.find("[rank 0] distributed: 2 ranks (gloo), 1 threads per rank, 1 classes per rank per step"),
              std::string::npos) << out;
    // Rank 0 alone writes the outputs.
    EXPECT_EQ(out.find("[rank 1] step"), std::string::npos) << out;
    // The logged loss is the whole batch's (averaged over ranks), step by step.
    const auto l1 = logged_losses(one + "/run"), l2 = logged_losses(two + "/run");
    ASSERT_EQ(l1.size(), 2u);
    ASSERT_EQ(l2.size(), 2u);
    for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
    // Same parameters after 2 steps (the second step's batch depends on the first step's update)...
    const auto p1 = parameters_of(one + "/run/checkpoint.pt"), p2 = parameters_of(two + "/run/checkpoint.pt");
    ASSERT_EQ(p1.size(), p2.size());
    // ...and the steps moved them (lr 1e-3, Adam: ~1e-3 per parameter and step), so equality is not vacuous.
    Trainer initial(TrainConfig::from_json(read_json(one + "/run/config.json")));  // same seed: the initial generator
    const auto p0 = initial.generator()->parameters();
    double max_diff = 0, max_move = 0, diff_sq = 0, move_sq = 0;
    std::string worst;
    for (size_t i = 0; i < p1.size(); ++i) {
      auto diff = (p1[i] - p2[i]).to(torch::kFloat64), move = (p1[i] - p0[i].detach()).to(torch::kFloat64);
      const double d = diff.abs().max().item<double>();
      if (d > max_diff) max_diff = d, worst = initial.generator()->named_parameters()[i].key();
      max_move = std::max(max_move, move.abs().max().item<double>());
      diff_sq += diff.pow(2).sum().item<double>();
      move_sq += move.pow(2).sum().item<double>();
    }
    // Tolerance from the arithmetic, not from one CPU: the two runs sum each gradient in a different
    // order (halves, then the all-reduce), so an entry differs by ~2^-24 times its terms' magnitude.
    // Adam's update lr * g / (|g| + 1e-8) passes that on unchanged where |g| >> 1e-8, but an entry whose
    // gradient is itself ~1e-8 can move by up to 2 lr between the runs; no per-entry bound holds (one
    // machine saw 1.3e-5, another 1.7e-6). Over all parameters those few entries are a small part of the
    // total movement, while a missing all-reduce (half-batch gradients) changes most entries: a relative
    // L2 difference of O(1).
    const double rel = std::sqrt(diff_sq / move_sq);
    EXPECT_LT(rel, 2e-2) << method << ": relative L2 difference " << rel << ", largest entry " << max_diff << " in "
                         << worst;
    EXPECT_GT(max_move, 1.5e-3) << method;
    // The same 2 ranks as threads of one process (driftx train --ranks 2, what a plain run does on a
    // 2-core machine): the same single-threaded arithmetic and the same Gloo sums, so the same numbers.
    const std::string threads = path("threads" + tag);
    ASSERT_EQ(run(concat(args(threads), {"--ranks", "2"}), path("threads" + tag + ".log")), 0)
        << read_text(path("threads" + tag + ".log"));
    const auto out3 = read_text(path("threads" + tag + ".log"));
    EXPECT_NE(out3.find("distributed: 2 ranks (gloo, threads of this process), 1 threads per rank"), std::string::npos)
        << out3;
    EXPECT_EQ(read_json(threads + "/run/config.json")["ranks"], 2);
    EXPECT_EQ(logged_losses(threads + "/run"), l2);
    const auto p3 = parameters_of(threads + "/run/checkpoint.pt");
    ASSERT_EQ(p3.size(), p2.size());
    for (size_t i = 0; i < p3.size(); ++i) EXPECT_TRUE(torch::equal(p3[i], p2[i])) << "parameter " << i;
  }
}

// The same property without Adam in the way: after one step on the same batch, the gradient every
// rank applies is exactly the whole-batch gradient of one process (no clipping, so it is raw), for
// 4 classes split 2 + 2 (the standard field's scale s is shared by the groups of each rank and
// across ranks). Rank 0 also loads the summaries from the cache the single process wrote and
// broadcasts them.
TEST_P(DistributedTraining, AveragedGradientOfTwoRanksIsTheWholeBatchGradient) {
  TrainConfig c;
  c.method = GetParam();
  c.features = "pixels,pool4";
  c.landmarks = 50;
  c.classes_per_step = 4;
  c.gen_per_class = 4;
  c.pos_per_class = 16;
  c.width = 64;
  c.noise_dim = 8;
  c.grad_clip = 0;
  c.warmup_steps = 0;
  c.sample_every = c.checkpoint_every = 0;
  c.out_dir = path("run");
  c.cache_dir = path("cache");
  c.seed = 3;
  torch::manual_seed(1);
  const auto z = torch::randn({16, 8});
  const auto labels = torch::tensor({1, 4, 6, 9}, torch::kLong).repeat_interleave(4);
  auto grads_of = [](Trainer& t) {
    std::vector<torch::Tensor> g;
    for (auto& p : t.generator()->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  Trainer single(c);
  Generator initial(single.generator()->config());
  copy_parameters(*initial, *single.generator());
  const double loss = single.step_on(z, labels).loss;
  const auto g1 = grads_of(single);
  std::vector<std::vector<torch::Tensor>> g2(2), p2(2);
  std::vector<double> loss2(2);
  std::vector<int> same_init(2, 0);
  auto c2 = c;
  c2.out_dir = path("run2");  // `single` holds run/ (one trainer per run directory)
  on_ranks(2, [&](int r, const std::shared_ptr<Communicator>& comm) {
    Trainer t(c2, false, comm);
    // Both ranks are built at once on threads sharing LibTorch's global generator: the seeded
    // initialisation must still give the single run's weights (the Trainer serialises it).
    auto p = t.generator()->parameters(), q = initial->parameters();
    same_init[r] = 1;
    for (size_t i = 0; i < p.size(); ++i) same_init[r] &= torch::equal(p[i], q[i]) ? 1 : 0;
    loss2[r] = t.step_on(z, labels).loss;
    g2[r] = grads_of(t);
    for (auto& p : t.generator()->parameters()) p2[r].push_back(p.detach().clone());
  });
  ASSERT_EQ(g2[0].size(), g1.size());
  for (size_t i = 0; i < g1.size(); ++i) {
    const double scale = g1[i].abs().max().item<double>();
    EXPECT_GT(scale, 0) << "parameter " << i;
    EXPECT_TRUE(torch::allclose(g2[0][i], g1[i], 1e-4, 1e-5 * scale))
        << "parameter " << i << ": max diff " << (g2[0][i] - g1[i]).abs().max().item<double>() << " of " << scale;
    EXPECT_TRUE(torch::equal(g2[0][i], g2[1][i])) << "ranks applied different gradients to parameter " << i;
    EXPECT_TRUE(torch::equal(p2[0][i], p2[1][i])) << "ranks hold different parameters " << i;
  }
  EXPECT_NEAR(loss2[0], loss, 1e-5 * loss);
  EXPECT_EQ(loss2[0], loss2[1]);
  EXPECT_EQ(same_init, std::vector<int>({1, 1}));
}

TEST(LocalRanks, RanksPerCoreDivideTheClassesAndErrorsReachTheCaller) {
  EXPECT_EQ(local_ranks_for(10, 2), 2);
  EXPECT_EQ(local_ranks_for(10, 4), 2);  // 4 does not divide 10
  EXPECT_EQ(local_ranks_for(10, 16), 10);
  EXPECT_EQ(local_ranks_for(7, 4), 1);
  EXPECT_EQ(local_ranks_for(10, 0), 1);
  std::vector<int> ran(3, 0);
  on_local_threads(3, [&](int r) { ran[r] = 1; });
  EXPECT_EQ(ran, std::vector<int>({1, 1, 1}));
  try {
    on_local_threads(3, [&](int r) {
      if (r >= 1) fail("rank {} failed", r);
    });
    FAIL() << "expected the ranks' error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rank 1 failed");  // the lowest failing rank's, once all threads ended
  }
}

TEST_P(DistributedTraining, ARestartedTwoRankJobResumesFromItsCheckpoint) {
  const std::string method = GetParam(), straight = path("straight"), resumed = path("resumed");
  auto launch2 = [](std::vector<std::string> train) { return concat({"launch", "--nproc", "2", "--"}, train); };
  ASSERT_EQ(run(launch2(tiny_train(method, straight, 3)), path("a.log")), 0) << read_text(path("a.log"));
  ASSERT_EQ(run(launch2(tiny_train(method, resumed, 2)), path("b.log")), 0) << read_text(path("b.log"));
  ASSERT_EQ(run(launch2(concat(tiny_train(method, resumed, 3), {"--resume"})), path("c.log")), 0)
      << read_text(path("c.log"));
  EXPECT_NE(read_text(path("c.log")).find("[rank 0] step 3/3"), std::string::npos) << read_text(path("c.log"));
  const auto a = parameters_of(straight + "/run/checkpoint.pt"), b = parameters_of(resumed + "/run/checkpoint.pt");
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

INSTANTIATE_TEST_SUITE_P(Methods, DistributedTraining, ::testing::Values("driftxpress", "standard"));

// ---- faults -------------------------------------------------------------------------------------

class DistributedFaults : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_mnist()) GTEST_SKIP() << "MNIST not found: run scripts/setup.sh";
  }
};

TEST_F(DistributedFaults, ALoneRankGivesUpAtTheTimeoutNamingTheRendezvous) {
  // Rank 0 alone (hosts the store, nobody joins) and rank 1 alone (no store to reach), 2 s timeout.
  auto args = concat({DRIFTX_BINARY, "--threads", "1"}, tiny_train("driftxpress", path("job"), 1));
  args.back() = "2s";  // --dist-timeout
  const auto t0 = Clock::now();
  std::vector<int> ports;
  std::vector<std::unique_ptr<Child>> ranks;
  for (int r = 0; r < 2; ++r) {
    ports.push_back(free_tcp_port());
    ranks.push_back(std::make_unique<Child>(
        args, std::vector<std::string>{"RANK=" + std::to_string(r), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
                                       "MASTER_PORT=" + std::to_string(ports[r])},
        path(fmt::format("rank{}.log", r))));
  }
  for (int r = 0; r < 2; ++r) {
    const int code = ranks[r]->wait_for(std::chrono::seconds(20));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto out = read_text(ranks[r]->log);
    EXPECT_EQ(code, 1) << out;
    EXPECT_LT(secs, 15.0) << "rank " << r << ": the 2 s timeout was not honoured";
    EXPECT_EQ(out.rfind(fmt::format("error: rank {} of 2: rendezvous at 127.0.0.1:{} failed within 2s (", r, ports[r]), 0),
              0u) << out;
    EXPECT_NE(out.find("are all 2 ranks running"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "one line: " << out;
  }
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - t0).count(), 1.9);  // it did wait for the others
}

TEST_F(DistributedFaults, WhenARankDiesTheOtherStopsWithinTheTimeoutAndSaysWhy) {
  const int port = free_tcp_port();
  auto args = concat({DRIFTX_BINARY, "--threads", "1"}, tiny_train("driftxpress", path("job"), 100000));
  args.back() = "5s";
  const std::vector<std::string> env{"WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)};
  Child rank0(args, concat(env, {"RANK=0"}), path("rank0.log"));
  Child rank1(args, concat(env, {"RANK=1"}), path("rank1.log"));
  ASSERT_TRUE(rank0.wait_output("step 2/", std::chrono::seconds(60))) << read_text(path("rank0.log"));
  ::kill(rank1.pid, SIGKILL);
  const auto t0 = Clock::now();
  const int code = rank0.wait_for(std::chrono::seconds(15));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto out = read_text(path("rank0.log"));
  EXPECT_EQ(code, 1) << out;
  EXPECT_LT(secs, 10.0);
  const auto err = out.substr(out.find("error: "));
  EXPECT_EQ(err.rfind("error: rank 0 of 2: ", 0), 0u) << out;
  EXPECT_NE(err.find("failed: another rank stopped or did not answer within 5s"), std::string::npos) << out;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
}

TEST_F(DistributedFaults, TheLauncherNamesTheRankThatDiedAndStopsTheOthers) {
  auto args = concat({DRIFTX_BINARY, "launch", "--nproc", "2", "--"}, tiny_train("driftxpress", path("job"), 100000));
  args.back() = "5s";
  Child launcher(args, {}, path("launch.log"));
  ASSERT_TRUE(launcher.wait_output("[rank 0] step 2/", std::chrono::seconds(60))) << read_text(path("launch.log"));
  // The launcher prints each rank's pid.
  const auto out0 = read_text(path("launch.log"));
  const auto at = out0.find("launch: rank 1 pid ");
  ASSERT_NE(at, std::string::npos) << out0;
  const pid_t victim = std::stoi(out0.substr(at + 19));
  ::kill(victim, SIGKILL);
  const auto t0 = Clock::now();
  const int code = launcher.wait_for(std::chrono::seconds(20));
  const auto out = read_text(path("launch.log"));
  EXPECT_EQ(code, 1) << out;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 15.0);
  EXPECT_NE(out.find("error: rank 1 was killed by signal 9 (Killed); the other 1 rank(s) were stopped"), std::string::npos)
      << out;
}

TEST_F(DistributedFaults, ClassesPerStepMustSplitEvenlyAcrossRanks) {
  auto train = tiny_train("driftxpress", path("job"), 1);
  train[8] = "3";  // --classes-per-step
  Child launcher(concat({DRIFTX_BINARY, "launch", "--nproc", "2", "--"}, train), {}, path("launch.log"));
  EXPECT_EQ(launcher.wait_for(std::chrono::seconds(60)), 1);
  const auto out = read_text(path("launch.log"));
  EXPECT_NE(out.find("error: --classes-per-step 3 is not divisible by the world size 2"), std::string::npos) << out;
  EXPECT_NE(out.find("error: rank "), std::string::npos) << out;
}
