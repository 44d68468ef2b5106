// driftx lab (issue 13): targets, the set distance, the fields' agreement at full rank, flows and the
// report's documented keys. Tiny configurations: each test runs in a few seconds.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/kernel.h"
#include "driftx/lab.h"
#include "test_support.h"

namespace driftx {
namespace {

// ---- targets ---------------------------------------------------------------------------------------

TEST(LabTargets, DeterministicForASeedAndDifferentAcrossSeeds) {
  for (const auto& name : lab_target_names()) {
    SCOPED_TRACE(name);
    auto a = sample_lab_target(name, 500, 7), b = sample_lab_target(name, 500, 7), c = sample_lab_target(name, 500, 8);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{500, 2}));
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_FALSE(torch::equal(a, c));
    EXPECT_LT(a.abs().max().item<double>(), 3.0);  // the documented box, about [-2.5, 2.5]^2
    auto lifted = sample_lab_target(name, 300, 7, 5), again = sample_lab_target(name, 300, 7, 5);
    ASSERT_EQ(lifted.sizes(), (std::vector<int64_t>{300, 5}));
    EXPECT_TRUE(torch::equal(lifted, again));
  }
  auto e = lab_embedding(6);
  EXPECT_TRUE(torch::allclose(torch::matmul(e.t(), e), torch::eye(2), 1e-5, 1e-5));  // orthonormal plane
}

TEST(LabTargets, UnknownTargetIsRefused) {
  testing_support::expect_error([] { sample_lab_target("spiral", 10, 0); }, {"unknown target", "spiral"});
}

// ---- sliced Wasserstein ----------------------------------------------------------------------------

TEST(LabDistance, SlicedWassersteinIsZeroForIdenticalSetsAndPositiveOtherwise) {
  auto a = sample_lab_target("two_moons", 400, 1);
  EXPECT_EQ(sliced_wasserstein(a, a), 0.0);
  auto perm = torch::randperm(400, at::detail::createCPUGenerator(3));
  EXPECT_EQ(sliced_wasserstein(a, a.index_select(0, perm)), 0.0);  // a set: row order does not matter
  auto b = sample_lab_target("two_moons", 400, 2);
  const double ab = sliced_wasserstein(a, b);
  EXPECT_GT(ab, 0.0);
  EXPECT_DOUBLE_EQ(ab, sliced_wasserstein(b, a));
  EXPECT_GT(sliced_wasserstein(a, sample_lab_target("eight_gaussians", 400, 2)), 3 * ab);  // another target is farther
  // A translation by v: SW^2 = mean over directions (theta . v)^2, whose expectation is |v|^2 / D.
  auto v = torch::tensor({0.6f, -0.8f});  // |v| = 1
  const double shifted = sliced_wasserstein(a, a + v, 4096);
  EXPECT_NEAR(shifted, 1 / std::sqrt(2.0), 0.03);
  // Sets of different sizes are compared through their quantile functions.
  EXPECT_GT(sliced_wasserstein(a, b.narrow(0, 0, 100)), 0.0);
}

// ---- fields ------------------------------------------------------------------------------------------

// The projected field with every real sample as a landmark is the exact field up to float32 rounding:
// psi(x) . psi(y) = k(x, U) (W + ridge I)^-1 k(U, y) and for y = u_j, (W + ridge I)^-1 W e_j = e_j + O(ridge).
TEST(LabField, ProjectedWithAllDataAsLandmarksEqualsTheExactField) {
  // 12 points on a jittered 4 x 3 lattice of spacing 1, centred; queries in the same box at least 0.1
  // from every point (the float32 distance error grows as 1/d, see below).
  auto gen = at::detail::createCPUGenerator(5);
  auto lattice = torch::stack({torch::arange(12) % 4, torch::arange(12).div(4, "floor")}, 1).to(torch::kFloat32);
  auto data = lattice - torch::tensor({1.5f, 1.0f}) + 0.05 * torch::randn({12, 2}, gen);
  auto cand = torch::rand({400, 2}, gen) * torch::tensor({3.6f, 2.6f}) - torch::tensor({1.8f, 1.3f});
  auto dmin = std::get<0>(torch::cdist(cand, data).min(1));
  auto queries = cand.index_select(0, torch::nonzero(dmin > 0.1).reshape(-1));
  ASSERT_GT(queries.size(0), 100);
  const std::vector<double> temps{0.1, 0.2, 0.4};  // tau_eff = tau sqrt(2); scale 1: raw = scaled coordinates
  const double ridge = 1e-12;
  LabField exact({"exact", "exact", 0}, data, 1.0, temps, ridge, 0);
  LabField full({"projected", "random_global", 12}, data, 1.0, temps, ridge, 0);
  LabField half({"projected", "random_global", 6}, data, 1.0, temps, ridge, 0);
  ASSERT_EQ(full.landmarks().size(0), 12);
  auto e = exact.attractions(queries), p = full.attractions(queries), h = half.attractions(queries);
  EXPECT_EQ(full.clamped(), 0);
  // Tolerance from float32 rounding (u = 2^-24). Distances come from ||x||^2 + ||y||^2 - 2 x.y in float32:
  // absolute error in d^2 <= 8 u R^2 (R = largest norm), so in d <= 8 u R^2 / (2 d_min), and each kernel
  // value exp(-d / tau_eff) carries a relative error eps_k <= 4 u R^2 / (d_min tau_eff_min) (+ a few u for
  // exp). The data sums are multiplied by (W + ridge I)^-1, which amplifies a relative perturbation of the
  // kernel values by at most cond(W + ridge I); the result is a weighted mean of points of norm <= R. So
  // |b+_projected - b+_exact| <= (cond + 2) (eps_k + 4 u) R + ridge cond R. Here cond ~ 2.7 and the bound is
  // ~8e-4, a worst case; the measured error is ~6e-7 (a few float32 ulps of R).
  const double u = std::ldexp(1.0, -24), R = std::max(data.norm(2, {1}).max().item<double>(), queries.norm(2, {1}).max().item<double>());
  const double tau_min = 0.1 * std::sqrt(2.0), eps_k = 4 * u * R * R / (0.1 * tau_min);
  const double tol = (full.condition_number() + 2) * (eps_k + 4 * u) * R + ridge * full.condition_number() * R;
  ASSERT_LT(full.condition_number(), 100);  // a well-conditioned W keeps the bound small
  for (size_t t = 0; t < temps.size(); ++t) {
    SCOPED_TRACE(temps[t]);
    const double err = (p[t] - e[t]).abs().max().item<double>();
    EXPECT_LE(err, tol) << "tolerance " << tol;
    // The comparison has teeth: half the points as landmarks is far off.
    EXPECT_GT((h[t] - e[t]).abs().max().item<double>(), 100 * tol);
  }
  // The whole field (the same exact repulsion in both) agrees to the same bound, summed over temperatures.
  auto vd = (full.drift(queries, false) - exact.drift(queries, false)).abs().max().item<double>();
  EXPECT_LE(vd, static_cast<double>(temps.size()) * tol);
}

TEST(LabField, MinibatchWithEveryPositiveIsTheExactField) {
  auto data = sample_lab_target("eight_gaussians", 64, 3);
  LabField exact({"exact", "exact", 0}, data, 1.0, {0.05, 0.2}, 1e-4, 0);
  LabField mb({"minibatch", "minibatch", 1000}, data, 1.0, {0.05, 0.2}, 1e-4, 0);  // capped at |Y| = 64
  EXPECT_EQ(mb.spec().rank, 64);
  auto q = torch::randn({32, 2}, at::detail::createCPUGenerator(1));
  auto a = exact.attractions(q), b = mb.attractions(q);
  for (size_t t = 0; t < a.size(); ++t) EXPECT_TRUE(torch::allclose(a[t], b[t], 1e-5, 1e-5));  // sum order only
}

TEST(LabField, PerClassStrategiesAreRefused) {
  testing_support::expect_error([] { canonical_lab_strategy("random_per_class"); }, {"needs class labels"});
  EXPECT_EQ(canonical_lab_strategy("kmeans"), "kmeans_global");
  EXPECT_EQ(canonical_lab_strategy("random"), "random_global");
}

// ---- flows --------------------------------------------------------------------------------------------

TEST(LabFlow, ExactFieldAgainstItselfDeviatesByExactlyZero) {
  auto data = sample_lab_target("checkerboard", 300, 4);
  const double S = lab_scale(data);
  auto x0 = torch::randn({32, 2}, at::detail::createCPUGenerator(9)) / S;
  LabField a({"exact", "exact", 0}, data, S, {0.02, 0.05, 0.2}, 1e-4, 0), b({"exact", "exact", 0}, data, S, {0.02, 0.05, 0.2}, 1e-4, 0);
  auto ta = lab_flow(a, x0, 20, 0.2, false), tb = lab_flow(b, x0, 20, 0.2, false);
  ASSERT_EQ(ta.sizes(), (std::vector<int64_t>{21, 32, 2}));
  for (double d : trajectory_deviation(ta, tb)) EXPECT_EQ(d, 0.0);
  EXPECT_GT(trajectory_deviation(ta, lab_flow(a, x0 + 0.01, 20, 0.2, false)).front(), 0.0);
}

TEST(LabFlow, DeviationFromTheExactFlowDecreasesWithRank) {
  auto data = sample_lab_target("eight_gaussians", 500, 11);
  const double S = lab_scale(data);
  auto x0 = torch::randn({64, 2}, at::detail::createCPUGenerator(12)) / S;
  const std::vector<double> temps{0.02, 0.05, 0.2};
  LabField exact({"exact", "exact", 0}, data, S, temps, 1e-4, 0);
  auto ref = lab_flow(exact, x0, 40, 0.2, false);
  for (const std::string strategy : {"random_global", "kmeans_global"}) {
    SCOPED_TRACE(strategy);
    auto mean_dev = [&](int64_t rank) {
      LabField f({"projected", strategy, rank}, data, S, temps, 1e-4, 0);
      auto dev = trajectory_deviation(lab_flow(f, x0, 40, 0.2, false), ref);
      double m = 0;
      for (double d : dev) m += d / static_cast<double>(dev.size());
      return m;
    };
    const double d4 = mean_dev(4), d64 = mean_dev(64);
    EXPECT_LT(d64, 0.5 * d4) << "rank 4: " << d4 << ", rank 64: " << d64;
  }
}

// ---- the report ---------------------------------------------------------------------------------------

// Keys listed in docs/lab.md: the first column of the tables under the heading `### <section>`.
std::set<std::string> documented_keys(const std::string& section) {
  std::istringstream in(read_file(std::string(DRIFTX_SOURCE_DIR) + "/docs/lab.md"));
  std::set<std::string> keys;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#", 0) == 0) inside = line == "### " + section;
    if (inside && line.rfind("| `", 0) == 0) keys.insert(line.substr(3, line.find('`', 3) - 3));
  }
  return keys;
}

std::set<std::string> keys_of(const nlohmann::json& j) {
  std::set<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.insert(it.key());
  return out;
}

class LabReportTest : public testing_support::TempDirTest {};

TEST_F(LabReportTest, HasEveryDocumentedKeyAndNothingUndocumented) {
  LabConfig c;
  c.targets = {"two_moons"};
  c.ranks = {4, 16};
  c.strategies = {"kmeans"};
  c.minibatch_sizes = {8};
  c.n_data = 200, c.n_eval = 200, c.grid = 6, c.queries = 32, c.particles = 16, c.flow_steps = 6, c.record_every = 4;
  c.train.steps = 3, c.train.batch = 16, c.seeds = 2;
  auto report = run_lab(c);
  write_lab_outputs(report, dir_.string());
  auto j = read_json(path("report.json"));

  for (const std::string& section : {"top level", "targets", "rows", "summary"}) ASSERT_FALSE(documented_keys(section).empty()) << section;
  EXPECT_EQ(keys_of(j), documented_keys("top level"));
  for (auto& [name, t] : j["targets"].items()) EXPECT_EQ(keys_of(t), documented_keys("targets")) << name;
  ASSERT_EQ(j["rows"].size(), 1u + 1u + 2u);  // exact, minibatch P=8, kmeans M=4 and 16
  for (const auto& row : j["rows"]) {
    EXPECT_EQ(keys_of(row), documented_keys("rows")) << row.dump().substr(0, 200);
    for (const auto& [k, v] : row.items())
      if (v.is_object()) {
        EXPECT_EQ(v["values"].size(), 2u) << k;  // one value per seed
        EXPECT_TRUE(v.contains("mean") && v.contains("std")) << k;
      }
    EXPECT_EQ(row["attr_cos_grid_per_temp"].size(), 3u);  // the default temperatures
    EXPECT_EQ(row["traj_dev_curve"].size(), j["recorded_steps"].size());
  }
  EXPECT_EQ(j["recorded_steps"], nlohmann::json({0, 4, 6}));
  for (const auto& s : j["summary"]) EXPECT_EQ(keys_of(s), documented_keys("summary"));
  // The exact row: field errors and deviations of the exact field against itself.
  const auto& ex = j["rows"][0];
  EXPECT_EQ(ex["field"], "exact");
  EXPECT_EQ(ex["traj_dev_mean"]["mean"].get<double>(), 0.0);
  EXPECT_NEAR(ex["attr_cos_grid"]["mean"].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(ex["endpoint_sw_exact"]["mean"].get<double>(), 0.0);
  // config.json is the configuration; report.md and the pictures exist and are PNGs.
  EXPECT_EQ(read_json(path("config.json")), j["config"]);
  EXPECT_NE(read_file(path("report.md")).find("| kmeans_global | 16 |"), std::string::npos);
  for (const std::string png : {"quiver.png", "trajectories.png", "rank_curves.png", "deviation_vs_step.png"}) {
    auto img = read_png(path(png));
    EXPECT_EQ(img.size(2), 3) << png;
    EXPECT_GT(img.size(0), 100) << png;
  }
}

TEST(LabRun, TheReportDoesNotDependOnTheWorkerCount) {
  LabConfig c;
  c.targets = {"eight_gaussians", "checkerboard"};
  c.ranks = {8};
  c.strategies = {"random"};
  c.minibatch_sizes = {16};
  c.n_data = 150, c.n_eval = 150, c.grid = 5, c.queries = 24, c.particles = 12, c.flow_steps = 4, c.record_every = 2;
  c.train.steps = 2, c.train.batch = 12, c.seeds = 2;
  c.workers = 1;
  auto one = lab_report_json(run_lab(c));
  c.workers = 3;
  auto three = lab_report_json(run_lab(c));
  for (auto* j : {&one, &three}) {
    j->erase("seconds");
    j->erase("config");
    for (auto& row : (*j)["rows"]) row.erase("seconds");
  }
  EXPECT_EQ(one, three);
}

TEST(LabRun, RefusesBadConfigurations) {
  LabConfig c;
  c.targets = {"two_moons"}, c.n_data = 50;
  c.ranks = {64};
  testing_support::expect_error([&] { run_lab(c); }, {"rank 64", "--n-data"});
  c.ranks = {4};
  c.strategies = {"kmeans_per_class"};
  testing_support::expect_error([&] { run_lab(c); }, {"needs class labels"});
}

class LabCli : public testing_support::TempDirTest {
 protected:
  std::pair<int, std::string> run(const std::string& args) {
    const std::string out = path("out.txt");
    const int rc = std::system((std::string(DRIFTX_BINARY) + " lab " + args + " --out " + path("lab") + " > " + out + " 2>&1").c_str());
    return {rc, read_file(out)};
  }
};

TEST_F(LabCli, BadArgumentsAreRefusedInOneLineBeforeAnyWork) {
  for (const auto& [args, expected] : std::vector<std::pair<std::string, std::string>>{
           {"--seeds 0", "--seeds"},
           {"--targets spiral", "unknown target 'spiral'"},
           {"--ranks 0", "--ranks"},
           {"--strategies random_per_class", "needs class labels"},
           {"--n-data 100 --ranks 128", "rank 128"},
           {"--dim 1", "--dim"}}) {
    SCOPED_TRACE(args);
    auto [rc, text] = run(args);
    EXPECT_NE(rc, 0);
    EXPECT_NE(text.find("error: "), std::string::npos) << text;
    EXPECT_NE(text.find(expected), std::string::npos) << text;
    EXPECT_FALSE(std::filesystem::exists(path("lab/report.json")));
  }
}

TEST_F(LabCli, TinyRunWritesEveryOutput) {
  auto [rc, text] = run("--targets two_moons --ranks 4,8 --strategies kmeans --minibatch 8 --n-data 120 --n-eval 120 "
                        "--grid 4 --queries 16 --particles 12 --flow-steps 3 --train-steps 2 --train-batch 8 --seeds 1");
  ASSERT_EQ(rc, 0) << text;
  for (const std::string f : {"report.json", "report.md", "config.json", "quiver.png", "trajectories.png", "rank_curves.png",
                              "deviation_vs_step.png"})
    EXPECT_TRUE(std::filesystem::exists(path("lab/" + f))) << f;
  EXPECT_NE(text.find("[lab 1/1] two_moons seed 0"), std::string::npos) << text;  // progress
}

}  // namespace
}  // namespace driftx
