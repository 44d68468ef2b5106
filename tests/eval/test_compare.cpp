// The equal-wall-clock comparison: its bookkeeping on synthetic curves, the plot it draws, and one
// tiny end-to-end run on MNIST (seconds).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "driftx/compare.h"
#include "driftx/distributed.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/parse.h"
#include "driftx/plot.h"

using namespace driftx;

namespace {

std::vector<CurvePoint> curve(std::vector<double> fids, double every = 60) {
  std::vector<CurvePoint> c;
  for (size_t i = 0; i < fids.size(); ++i) c.push_back({every * (i + 1), int64_t(10 * (i + 1)), fids[i], 0.9});
  return c;
}

int64_t count_colour(const torch::Tensor& img, const std::array<uint8_t, 3>& c) {
  auto target = torch::tensor({c[0], c[1], c[2]}, torch::kUInt8).reshape({1, 1, 3});
  return (img == target).all(2).sum().item<int64_t>();
}

}  // namespace

TEST(Compare, TimeToReachIsTheFirstEvaluationAtOrBelowTheThreshold) {
  auto c = curve({900, 400, 120, 150, 90});
  EXPECT_DOUBLE_EQ(*time_to_reach(c, 400), 120);
  EXPECT_DOUBLE_EQ(*time_to_reach(c, 130), 180);
  EXPECT_DOUBLE_EQ(*time_to_reach(c, 90), 300);
  EXPECT_FALSE(time_to_reach(c, 50).has_value());
}

TEST(Compare, ReportStatesWinnersSpeedupAndGoalHonestly) {
  CompareConfig cc;
  cc.time_budget_s = 300, cc.eval_every_s = 60;
  CompareResult r;
  r.runs.push_back({"standard", {}, curve({900, 600, 400, 300, 250}), 0.5, 1200, 500});
  r.runs.push_back({"driftxpress", {}, curve({800, 240, 150, 120, 100}), 12, 1000, 400});
  const auto md = comparison_report(cc, r);
  // driftxpress reaches the standard's final FID (250) at the second evaluation: 120 s, 300/120 = 2.5x.
  EXPECT_NE(md.find("| driftxpress | 400 | 1000 | 12.0 | 800.0 | 240.0 | 150.0 | 120.0 | 100.0 | 0.900 | 120s | 2.50x |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| standard | 500 | 1200 | 0.5 | 900.0 | 600.0 | 400.0 | 300.0 | 250.0 | 0.900 | 300s | 1.00x |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("- 1m: **driftxpress** (standard 900.0, driftxpress 800.0)"), std::string::npos) << md;
  EXPECT_NE(md.find("reached, but later than a third / FID at the deadline no worse"), std::string::npos) << md;
  // The machine line names the training device (it said "CPU (no GPU)" even for a run on a GPU).
  EXPECT_NE(md.find("(threads of one process), training on CPU; "), std::string::npos) << md;
  // A DriftXpress curve that never gets there is reported as such, and loses where it is worse.
  r.runs[1].curve = curve({1000, 700, 500, 400, 300});
  const auto md2 = comparison_report(cc, r);
  EXPECT_NE(md2.find("not reached | - |"), std::string::npos) << md2;
  EXPECT_NE(md2.find("- 5m: **standard**"), std::string::npos) << md2;
  EXPECT_NE(md2.find("not reached / FID at the deadline worse"), std::string::npos) << md2;
}

TEST(Compare, SearchChoosesTheLowestFidThatMeetsTheAccuracyBar) {
  std::vector<SearchTrial> t{{"driftxpress", {}, 120.0, 0.97, 10}, {"driftxpress", {}, 80.0, 0.93, 10},
                             {"driftxpress", {}, 95.0, 0.96, 10}, {"driftxpress", {}, NAN, 0.99, 10}};
  EXPECT_EQ(choose_candidate(t, 0.95), 2u);  // 80 misses the bar, NaN never wins
  EXPECT_EQ(choose_candidate(t, 0.0), 1u);
  EXPECT_EQ(choose_candidate(t, 0.999), 1u);  // nobody qualifies: the lowest FID
  std::vector<SearchTrial> uncond{{"standard", {}, 50.0, -1, 10}, {"standard", {}, 40.0, -1, 10}};
  EXPECT_EQ(choose_candidate(uncond, 0.95), 1u);  // no class accuracy: FID alone
}

TEST(Compare, MethodListsAreTrimmedAndEmptyNamesRefused) {
  EXPECT_EQ(parse_name_list(" standard, driftxpress ", "--methods"),
            (std::vector<std::string>{"standard", "driftxpress"}));
  EXPECT_THROW(parse_name_list("standard,,driftxpress", "--methods"), Error);
  EXPECT_THROW(parse_name_list("", "--methods"), Error);
}

TEST(Plot, DrawsAxesLegendAndOneColouredLinePerSeries) {
  LinePlot p;
  p.title = "FID vs time";
  p.x_label = "minutes";
  p.y_label = "FID";
  p.log_y = true;
  p.series = {{"standard", {2, 4, 6}, {900, 500, 300}}, {"driftxpress", {2, 4, 6}, {400, 100, 50}}};
  auto img = render_line_plot(p);
  ASSERT_EQ(img.size(0), 560);
  ASSERT_EQ(img.size(1), 900);
  // Each series' colour covers at least its markers (3 x 9 x 9 px) and a line between them.
  for (size_t s = 0; s < 2; ++s) EXPECT_GT(count_colour(img, series_colour(s)), 3 * 81 + 100) << "series " << s;
  EXPECT_EQ(count_colour(img, series_colour(2)), 0);
  // Axes and text are black; most of the canvas stays white.
  EXPECT_GT(count_colour(img, {0, 0, 0}), 2000);
  EXPECT_GT(count_colour(img, {255, 255, 255}), 560 * 900 / 2);
  // The lower series is drawn lower: its mean row index is larger.
  auto rows = torch::arange(560).reshape({560, 1}).expand({560, 900});
  auto mean_row = [&](size_t s) {
    auto target = torch::tensor({series_colour(s)[0], series_colour(s)[1], series_colour(s)[2]}, torch::kUInt8).reshape({1, 1, 3});
    auto mask = (img == target).all(2);
    return rows.masked_select(mask).to(torch::kFloat64).mean().item<double>();
  };
  EXPECT_GT(mean_row(1), mean_row(0) + 50);
  // Nothing drawable is an error, not an empty picture.
  LinePlot empty;
  empty.log_y = true;
  empty.series = {{"bad", {1, 2}, {0, -1}}};
  EXPECT_THROW(render_line_plot(empty), Error);
  LinePlot mismatch;
  mismatch.series = {{"bad", {1, 2}, {3}}};
  EXPECT_THROW(render_line_plot(mismatch), Error);
}

// The legend goes to the corner its box would hide the fewest drawn points in (top right on a tie), so it
// never covers a curve that passes through the top right. Legend text is the only black inside the axes.
TEST(Plot, LegendAvoidsTheData) {
  auto black_in = [](const torch::Tensor& img, int64_t c0, int64_t c1) {
    return count_colour(img.narrow(0, 56, 40).narrow(1, c0, c1 - c0), {0, 0, 0});
  };
  LinePlot up, down;
  up.series = {{"rising", {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}}};
  down.series = {{"falling", {0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}}};
  const auto a = render_line_plot(up), b = render_line_plot(down);
  EXPECT_GT(black_in(a, 100, 300), 50) << "a rising curve sends the legend to the top left";
  EXPECT_EQ(black_in(a, 570, 865), 0);
  EXPECT_GT(black_in(b, 570, 865), 50) << "a falling curve leaves it top right";
  EXPECT_EQ(black_in(b, 100, 300), 0);
}

TEST(Plot, ErrorBarsAddPixelsAndMustMatchThePoints) {
  LinePlot p;
  p.series = {{"m", {1, 2, 3}, {10, 20, 15}}};
  const auto plain = count_colour(render_line_plot(p), series_colour(0));
  p.series[0].y_lo = {5, 12, 14};
  p.series[0].y_hi = {15, 28, 16};
  // Bars of 10, 16 and 2 FID units (plus caps) in the series' colour: more of it than without.
  EXPECT_GT(count_colour(render_line_plot(p), series_colour(0)), plain + 50);
  p.series[0].y_hi = {15, 28};
  EXPECT_THROW(render_line_plot(p), Error);
}

// --seeds K: the report's numbers are means over the seeds with the sample std, per method.
TEST(Compare, SeveralSeedsReportMeanAndSpread) {
  CompareConfig cc;
  cc.time_budget_s = 180, cc.eval_every_s = 60, cc.seeds = 2, cc.seed = 4;
  CompareResult r;
  r.runs.push_back({"standard", {}, curve({900, 500, 300}), 1, 1000, 300, 4});
  r.runs.push_back({"standard", {}, curve({700, 300, 200}), 3, 1200, 310, 5});
  r.runs.push_back({"driftxpress", {}, curve({400, 200, 100}), 10, 900, 250, 4});
  r.runs.push_back({"driftxpress", {}, curve({600, 250, 140}), 12, 1100, 270, 5});
  r.runs[2].curve.back().precision = 0.6, r.runs[2].curve.back().recall = 0.4;
  r.runs[3].curve.back().precision = 0.8, r.runs[3].curve.back().recall = 0.6;
  const auto s = summarize_runs(cc.methods, r.runs);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].mean.method, "standard");
  EXPECT_DOUBLE_EQ(s[0].mean.curve[0].fid, 800);
  EXPECT_DOUBLE_EQ(s[0].fid_std[0], std::sqrt(2.0) * 100);  // sample std of {900, 700}
  EXPECT_DOUBLE_EQ(s[1].mean.curve[2].fid, 120);
  EXPECT_DOUBLE_EQ(s[1].mean.images_per_s, 1000);
  EXPECT_EQ(s[1].mean.steps, 260);
  EXPECT_EQ(s[1].final_fids, (std::vector<double>{100, 140}));
  const auto md = comparison_report(cc, r);
  // Means with their spread; driftxpress's mean curve (500, 225, 120) reaches standard's mean final 250 at 2m.
  EXPECT_NE(md.find("| standard | 305 | 1100 | 2.0 | 800.0 ± 141.4 | 400.0 ± 141.4 | 250.0 ± 70.7 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| driftxpress | 260 | 1000 | 11.0 | 500.0 ± 141.4 | 225.0 ± 35.4 | 120.0 ± 28.3 | 0.900 | 120s | 1.50x | "
                    "0.700 / 0.500 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.900 | 180s | 1.00x | n/a |"), std::string::npos) << md;  // standard: not measured
  EXPECT_NE(md.find("- driftxpress: 100.0, 140.0"), std::string::npos) << md;
  EXPECT_NE(md.find("2 training seeds (4..5)"), std::string::npos) << md;
  cc.seeds = 0;
  EXPECT_THROW(cc.validate(), Error);
}

// The scorer's precision / recall are the right way round: real test images of every class score high on
// both (measured 0.91 / 0.91), images of one class only are inside the real manifold (precision 0.92) but
// cover a tenth of it (recall 0.12), and noise covers none of it (recall 0). Noise's precision is 1: its
// evaluator features collapse to one point inside the real manifold, which is why precision is read
// with recall. Accuracy is the evaluator's on the given labels; real images have the lowest FID.
TEST(Compare, ScorerPrecisionRecallTellQualityFromCoverage) {
  if (!std::filesystem::exists(resolve_data_dir() + "/mnist/t10k-labels-idx1-ubyte")) GTEST_SKIP() << "MNIST not found";
  FidScorer scorer("mnist", resolve_data_dir(), 1000, 0);
  const auto test = load_dataset("mnist", "test", resolve_data_dir());
  torch::Tensor labels;
  const auto all = seeded_subset(test, 2000, 7, &labels).narrow(0, 1000, 1000);  // mostly not the scorer's subset
  labels = labels.narrow(0, 1000, 1000);
  const auto ones_idx = (test.labels == 1).nonzero().squeeze(1).narrow(0, 0, 1000);
  const auto ones = test.images.index_select(0, ones_idx);
  torch::manual_seed(3);
  const auto noise = torch::rand_like(ones) * 2 - 1;  // the images' range [-1, 1]
  const auto a = scorer.score_images(all, labels);
  const auto o = scorer.score_images(ones, {});
  const auto n = scorer.score_images(noise, {});
  EXPECT_GT(a.precision, 0.6);
  EXPECT_GT(a.recall, 0.6);
  EXPECT_GT(a.accuracy, 0.95);
  EXPECT_GT(o.precision, 0.5) << "ones are real digits";
  EXPECT_LT(o.recall, 0.3) << "ones cover about a tenth of the real manifold";
  EXPECT_LT(n.recall, 0.05) << "noise covers none of the real manifold";
  EXPECT_EQ(o.accuracy, -1);
  EXPECT_LT(a.fid, o.fid);
  EXPECT_LT(a.fid, n.fid);
}

TEST(Compare, SeedsRunEachMethodOncePerSeedInItsOwnDirectory) {
  if (!std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte")) GTEST_SKIP() << "MNIST not found";
  CompareConfig cc;
  cc.out_dir =  // unique per process: test runs of several checkouts share /tmp
      (std::filesystem::path(testing::TempDir()) / ("driftx_compare_seeds_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(cc.out_dir);
  cc.methods = {"driftxpress"};
  cc.seeds = 2, cc.seed = 7;
  cc.time_budget_s = cc.eval_every_s = 3;
  cc.n_eval = 100;
  cc.base.features = "pool4";
  cc.base.classes_per_step = 2, cc.base.gen_per_class = 6, cc.base.width = 16, cc.base.noise_dim = 8;
  cc.overrides["driftxpress"] = {{"landmarks", 40}};
  const auto r = run_comparison(cc);
  ASSERT_EQ(r.runs.size(), 2u);
  EXPECT_EQ(r.runs[0].seed, 7u);
  EXPECT_EQ(r.runs[1].seed, 8u);
  EXPECT_EQ(r.runs[1].config["seed"], 8);
  for (uint64_t seed : {7, 8})
    EXPECT_TRUE(std::filesystem::exists(cc.out_dir + "/driftxpress/seed-" + std::to_string(seed) + "/checkpoint.pt"));
  EXPECT_NE(r.runs[0].curve.back().fid, r.runs[1].curve.back().fid);  // other seeds, other generators
  EXPECT_NE(read_file(cc.out_dir + "/report.md").find(" ± "), std::string::npos);
  EXPECT_EQ(read_json(cc.out_dir + "/compare.json")["runs"][1]["seed"], 8);
}

TEST(Compare, TinyEqualWallClockRunOnMnist) {
  if (!std::filesystem::exists(resolve_data_dir() + "/mnist/train-labels-idx1-ubyte")) GTEST_SKIP() << "MNIST not found";
  CompareConfig cc;
  cc.out_dir =  // unique per process: test runs of several checkouts share /tmp
      (std::filesystem::path(testing::TempDir()) / ("driftx_compare_tiny_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(cc.out_dir);
  cc.time_budget_s = 6;
  cc.eval_every_s = 3;
  cc.n_eval = 100;
  cc.base.features = "pool4";
  cc.base.classes_per_step = 2;
  cc.base.gen_per_class = 6;
  cc.base.pos_per_class = 16;
  cc.base.width = 16;
  cc.base.noise_dim = 8;
  cc.overrides["driftxpress"] = {{"landmarks", 40}};
  const auto r = run_comparison(cc);
  ASSERT_EQ(r.runs.size(), 2u);
  for (const auto& m : r.runs) {
    ASSERT_EQ(m.curve.size(), 2u) << m.method;
    EXPECT_GE(m.curve[0].time_s, 3.0);  // the deadline counts precompute and is met before scoring
    EXPECT_GE(m.curve[1].time_s, 6.0);
    EXPECT_LT(m.curve[1].time_s, 9.0);
    EXPECT_GT(m.curve[1].step, m.curve[0].step);
    EXPECT_TRUE(std::isfinite(m.curve[1].fid));
    EXPECT_GE(m.curve[1].accuracy, 0.0);
    EXPECT_EQ(m.config["method"], m.method);
    EXPECT_EQ(m.config["features"], "pool4");  // the shared base reached both methods
  }
  EXPECT_EQ(r.runs[1].config["landmarks"], 40);
  EXPECT_EQ(r.runs[0].config["temperatures"], nlohmann::json({0.02, 0.05, 0.2}));  // each method's default
  EXPECT_EQ(r.runs[0].config["lr"], default_learning_rate("standard"));
  EXPECT_EQ(r.runs[1].config["lr"], default_learning_rate("driftxpress"));
  EXPECT_NE(default_learning_rate("standard"), default_learning_rate("driftxpress"));
  const auto saved = read_json(cc.out_dir + "/compare.json");
  EXPECT_EQ(saved["runs"].size(), 2u);
  EXPECT_EQ(saved["config"]["time_budget_s"], 6.0);
  // --ranks 0 became one rank per core (a divisor of the 2 classes per step), trained as threads.
  EXPECT_EQ(saved["config"]["ranks"], local_ranks_for(2, at::get_num_threads()));
  auto plot = read_png(cc.out_dir + "/fid_vs_time.png");
  EXPECT_EQ(plot.size(1), 900);
  auto grid = read_png(cc.out_dir + "/samples_side_by_side.png");
  EXPECT_GT(grid.size(1), 2 * grid.size(0));  // 21 tiles wide, 10 tall
  EXPECT_NE(read_file(cc.out_dir + "/report.md").find("| driftxpress |"), std::string::npos);
  // Bad input is one clear error.
  CompareConfig bad = cc;
  bad.methods = {"standard", "magic"};
  EXPECT_THROW(run_comparison(bad), Error);
  CompareConfig stray = cc;
  stray.methods = {"standard"};  // overrides for driftxpress would be silently unused
  EXPECT_THROW(stray.validate(), Error);
}
