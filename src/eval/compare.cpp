#include "driftx/compare.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)

#include "driftx/data.h"
#include "driftx/distributed.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/metrics.h"
#include "driftx/plot.h"
#include "driftx/runtime.h"

namespace driftx {

namespace {

std::string minutes(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  return std::abs(s / 60 - std::round(s / 60)) < 1e-9 ? fmt::format("{:.0f}m", s / 60) : fmt::format("{:.1f}m", s / 60);
}

std::string fid_str(double f) { return std::isfinite(f) ? fmt::format("{:.1f}", f) : "n/a"; }

TrainConfig with_overrides(const TrainConfig& base, const std::string& method, const nlohmann::json& overrides) {
  auto j = base.to_json();
  j["method"] = method;
  for (auto& [k, v] : overrides.items()) {
    DRIFTX_CHECK(j.contains(k), "compare: '{}' is not a training setting (see a run's config.json for the names)", k);
    j[k] = v;
  }
  return TrainConfig::from_json(j);
}

const std::string& reference_method(const std::vector<std::string>& methods) {
  for (const auto& m : methods)
    if (m == "standard") return m;
  return methods.front();
}

}  // namespace

nlohmann::json CompareConfig::to_json() const {
  nlohmann::json ov = nlohmann::json::object();
  for (const auto& [m, j] : overrides) ov[m] = j;
  return {{"dataset", dataset}, {"data_dir", data_dir}, {"methods", methods}, {"time_budget_s", time_budget_s},
          {"eval_every_s", eval_every_s}, {"n_eval", n_eval}, {"search_budget_s", search_budget_s},
          {"out_dir", out_dir}, {"seed", seed}, {"seeds", seeds}, {"ranks", ranks}, {"search_min_accuracy", search_min_accuracy},
          {"overrides", ov}, {"base", base.to_json()}};
}

void CompareConfig::validate() const {
  DRIFTX_CHECK(!methods.empty(), "compare: --methods must name at least one method");
  for (const auto& m : methods)
    DRIFTX_CHECK(m == "standard" || m == "driftxpress", "compare: unknown method '{}' (standard, driftxpress)", m);
  DRIFTX_CHECK(time_budget_s > 0 && eval_every_s > 0, "compare: --time-budget and --eval-every must be positive");
  DRIFTX_CHECK(eval_every_s <= time_budget_s, "compare: --eval-every {}s exceeds --time-budget {}s", eval_every_s,
               time_budget_s);
  DRIFTX_CHECK(n_eval >= 10, "compare: --n-eval must be >= 10");
  DRIFTX_CHECK(search_budget_s >= 0, "compare: --search-budget must be >= 0");
  DRIFTX_CHECK(ranks >= 0, "compare: --ranks must be >= 0 (0: one per core)");
  DRIFTX_CHECK(seeds >= 1 && seeds <= 100, "compare: --seeds must be in [1, 100], got {}", seeds);
  DRIFTX_CHECK(search_min_accuracy >= 0 && search_min_accuracy <= 1, "compare: --search-min-accuracy must be in [0, 1]");
  for (const auto& [m, j] : overrides) {
    DRIFTX_CHECK(std::find(methods.begin(), methods.end(), m) != methods.end(),
                 "compare: --method-config names '{}', which is not one of --methods", m);
    DRIFTX_CHECK(j.is_object(), "compare: overrides for '{}' must be a JSON object", m);
  }
}

std::vector<nlohmann::json> search_candidates(const std::string& method) {
  // Shared: wider temperatures, half and twice the method's learning rate, the prototype's generator
  // width, and twice the generated samples per class (batch layout 10 x 50).
  const double lr = default_learning_rate(method);
  std::vector<nlohmann::json> c{nlohmann::json::object(), {{"temperatures", {0.05, 0.1, 0.2}}}, {{"lr", lr / 2}},
                                {{"lr", lr * 2}}, {{"width", 128}}, {{"gen_per_class", 50}}};
  if (method == "standard") c.push_back({{"pos_per_class", 64}});
  else c.push_back({{"landmarks", 2000}});
  return c;
}

size_t choose_candidate(const std::vector<SearchTrial>& trials, double min_accuracy) {
  DRIFTX_CHECK(!trials.empty(), "compare: no search trials to choose from");
  auto best_of = [&](bool need_accuracy) -> std::optional<size_t> {
    std::optional<size_t> best;
    for (size_t i = 0; i < trials.size(); ++i) {
      const auto& t = trials[i];
      if (!std::isfinite(t.fid) || (need_accuracy && t.accuracy >= 0 && t.accuracy < min_accuracy)) continue;
      if (!best || t.fid < trials[*best].fid) best = i;
    }
    return best;
  };
  if (auto b = best_of(true)) return *b;
  if (auto b = best_of(false)) return *b;
  return 0;
}

std::optional<double> time_to_reach(const std::vector<CurvePoint>& curve, double fid) {
  for (const auto& p : curve)
    if (p.fid <= fid) return p.time_s;
  return std::nullopt;
}

// ---- scoring ------------------------------------------------------------------------------------

struct FidScorer::Impl {
  Evaluator evaluator{nullptr};
  GaussianFit real;
  torch::Tensor real_features;  // for precision / recall
  int64_t n = 0;
  uint64_t seed = 0;
};

FidScorer::FidScorer(const std::string& dataset, const std::string& data_dir, int64_t n, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  impl_->evaluator = load_evaluator(dataset);
  auto test = load_dataset(dataset, "test", data_dir);
  impl_->n = std::min(n, test.size());
  impl_->seed = seed;
  // The same real subset as `driftx eval` (seed 1): a property of the data, not of a run.
  impl_->real_features = evaluator_features(impl_->evaluator, seeded_subset(test, impl_->n, 1));
  impl_->real = gaussian_fit(impl_->real_features);
}

FidScorer::~FidScorer() = default;

CurvePoint FidScorer::score(Generator& generator) {
  torch::Tensor labels;
  const bool was_training = generator->is_training();
  generator->eval();
  auto images = generate_samples(generator, impl_->n, impl_->seed, 1.0, 500, &labels);
  if (was_training) generator->train();
  return score_images(images, labels);
}

CurvePoint FidScorer::score_images(const torch::Tensor& images, const torch::Tensor& labels) {
  CurvePoint p;
  const auto features = evaluator_features(impl_->evaluator, images);
  p.fid = frechet_distance(gaussian_fit(features), impl_->real);
  const auto pr = precision_recall(impl_->real_features, features);
  p.precision = pr.precision, p.recall = pr.recall;
  if (labels.defined()) p.accuracy = class_accuracy(evaluator_logits(impl_->evaluator, images), labels);
  return p;
}

// ---- running ------------------------------------------------------------------------------------

namespace {

// Trains one method from scratch under `budget` seconds, scoring the EMA generator at every multiple of
// `every` (and at the deadline). Summaries are rebuilt inside the clock (fresh cache directory).
MethodRun train_and_score(const CompareConfig& cc, const std::string& method, const nlohmann::json& overrides,
                          uint64_t seed, double budget, double every, const std::string& dir, FidScorer& scorer,
                          const std::function<void(const MethodRun&)>& on_point) {
  TrainConfig tc = with_overrides(cc.base, method, overrides);
  tc.dataset = cc.dataset;
  tc.data_dir = cc.data_dir;
  tc.seed = seed;
  tc.out_dir = dir;
  tc.cache_dir = dir + "/cache";
  tc.steps = 0;
  tc.sample_every = 0;       // no PNG writes inside the clock; grids come from the scored snapshots
  tc.checkpoint_every = 0;   // each segment ends with a checkpoint anyway
  std::filesystem::remove_all(dir);
  tc.time_budget_s = budget;  // recorded in config.json; each segment below stops earlier
  // Ranks as threads: every rank builds its Trainer and runs each segment concurrently; rank 0's EMA
  // generator (the same on every rank) is scored between segments, with all the intra-op threads.
  const int world = cc.ranks;
  auto comms = connect_local_ranks(world, std::chrono::minutes(10));
  std::vector<std::unique_ptr<Trainer>> trainers(world);
  on_local_threads(world, [&](int r) { trainers[r] = std::make_unique<Trainer>(tc, false, comms[r]); });
  Trainer& trainer = *trainers[0];
  MethodRun run;
  run.method = method;
  run.seed = seed;
  run.config = trainer.config().to_json();
  run.precompute_s = trainer.precompute_seconds();
  for (int64_t k = 1;; ++k) {
    const double until = std::min(budget, static_cast<double>(k) * every);
    on_local_threads(world, [&](int r) {
      trainers[r]->set_stop_rule(0, until);
      trainers[r]->run();
    });
    CurvePoint p = scorer.score(trainer.ema_generator());
    p.time_s = trainer.elapsed_seconds();
    p.step = trainer.step_count();
    run.curve.push_back(p);
    run.steps = p.step;
    const double train_s = std::max(1e-9, p.time_s - run.precompute_s);
    run.images_per_s = static_cast<double>(p.step * tc.classes_per_step * tc.gen_per_class) / train_s;
    std::cout << fmt::format("[{} seed {}] t={:.0f}s step {} FID {:.2f} precision {:.3f} recall {:.3f}{}\n", method,
                             seed, p.time_s, p.step, p.fid, p.precision, p.recall,
                             p.accuracy >= 0 ? fmt::format(" class accuracy {:.3f}", p.accuracy) : "")
              << std::flush;
    if (on_point) on_point(run);
    if (until >= budget) break;
  }
  return run;
}

nlohmann::json curve_json(const std::vector<CurvePoint>& c) {
  auto j = nlohmann::json::array();
  for (const auto& p : c)
    j.push_back({{"time_s", p.time_s}, {"step", p.step}, {"fid", p.fid}, {"accuracy", p.accuracy},
                 {"precision", p.precision}, {"recall", p.recall}});
  return j;
}

nlohmann::json result_json(const CompareConfig& cc, const CompareResult& r) {
  nlohmann::json runs = nlohmann::json::array(), search = nlohmann::json::array();
  for (const auto& m : r.runs)
    runs.push_back({{"method", m.method}, {"seed", m.seed}, {"config", m.config}, {"curve", curve_json(m.curve)}, {"steps", m.steps},
                    {"images_per_s", m.images_per_s}, {"precompute_s", m.precompute_s}});
  for (const auto& t : r.search)
    search.push_back({{"method", t.method}, {"overrides", t.overrides}, {"fid", t.fid}, {"accuracy", t.accuracy},
                      {"steps", t.steps}});
  return {{"config", cc.to_json()}, {"search", search}, {"runs", runs}};
}

// 10 x 10 samples of each method from the same noise, one row per class, method grids side by side.
void write_sample_grids(const CompareConfig& cc, const std::vector<std::pair<std::string, Generator>>& gens) {
  std::vector<torch::Tensor> grids;
  for (const auto& [method, g] : gens) {
    auto gen = g;
    gen->eval();
    auto x = generate_samples(gen, 100, cc.seed + 12345);
    if (gen->config().num_classes > 0) {  // sample k has class k % 10: put class r in row r
      std::vector<int64_t> order;
      for (int64_t r = 0; r < 10; ++r)
        for (int64_t c = 0; c < 10; ++c) order.push_back(c * 10 + r);
      x = x.index_select(0, torch::tensor(order));
    }
    write_png_grid(cc.out_dir + "/samples_" + method + ".png", x, 10);
    grids.push_back(x.reshape({10, 10, x.size(1), x.size(2), x.size(3)}));
  }
  // Row r: method A's 10 tiles, one blank (mid-gray) tile, method B's 10 tiles, ...
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < grids.size(); ++i) {
    if (i > 0) parts.push_back(torch::zeros({10, 1, grids[i].size(2), grids[i].size(3), grids[i].size(4)}));
    parts.push_back(grids[i]);
  }
  auto all = torch::cat(parts, 1);
  const int64_t cols = all.size(1);
  write_png_grid(cc.out_dir + "/samples_side_by_side.png", all.reshape({-1, all.size(2), all.size(3), all.size(4)}), cols);
}

}  // namespace

CompareResult run_comparison(const CompareConfig& config) {
  config.validate();
  CompareConfig cc = config;
  if (cc.ranks == 0) cc.ranks = local_ranks_for(cc.base.classes_per_step, at::get_num_threads());
  DRIFTX_CHECK(cc.base.classes_per_step % cc.ranks == 0,
               "compare: --ranks {} does not divide the {} classes per step (each rank trains an equal share)",
               cc.ranks, cc.base.classes_per_step);
  make_dirs(cc.out_dir);
  CompareResult result;
  auto save = [&] { write_json(cc.out_dir + "/compare.json", result_json(cc, result)); };
  save();  // the configuration is on disk before anything runs
  FidScorer scorer(cc.dataset, cc.data_dir, cc.n_eval, cc.seed + 1);

  std::map<std::string, nlohmann::json> chosen;
  for (const auto& m : cc.methods) chosen[m] = cc.overrides.count(m) ? cc.overrides.at(m) : nlohmann::json::object();
  if (cc.search_budget_s > 0) {
    for (const auto& m : cc.methods) {
      std::vector<SearchTrial> trials;
      const auto cands = search_candidates(m);
      for (size_t i = 0; i < cands.size(); ++i) {
        nlohmann::json ov = chosen[m];
        for (auto& [k, v] : cands[i].items()) ov[k] = v;
        std::cout << fmt::format("search [{}] candidate {}/{}: {}\n", m, i + 1, cands.size(), cands[i].dump());
        auto run = train_and_score(cc, m, ov, cc.seed, cc.search_budget_s, cc.search_budget_s,
                                   fmt::format("{}/search/{}-{}", cc.out_dir, m, i), scorer, nullptr);
        trials.push_back({m, ov, run.curve.back().fid, run.curve.back().accuracy, run.steps});
        result.search.push_back(trials.back());
        save();
      }
      const auto& best = trials[choose_candidate(trials, cc.search_min_accuracy)];
      chosen[m] = best.overrides;
      std::cout << fmt::format("search [{}]: chosen {} (FID {:.2f}, class accuracy {:.3f})\n", m, chosen[m].dump(),
                               best.fid, best.accuracy);
    }
  }

  std::vector<std::pair<std::string, Generator>> finals;
  for (const auto& m : cc.methods) {
    for (int64_t k = 0; k < cc.seeds; ++k) {
      const uint64_t seed = cc.seed + static_cast<uint64_t>(k);
      // One seed: <out>/<method> as before; several: <out>/<method>/seed-<seed>.
      const std::string dir = cc.seeds == 1 ? cc.out_dir + "/" + m : fmt::format("{}/{}/seed-{}", cc.out_dir, m, seed);
      result.runs.push_back({});
      const size_t slot = result.runs.size() - 1;
      auto run = train_and_score(cc, m, chosen[m], seed, cc.time_budget_s, cc.eval_every_s, dir, scorer,
                                 [&](const MethodRun& partial) { result.runs[slot] = partial, save(); });
      result.runs[slot] = run;
      save();
      if (k == 0) finals.emplace_back(m, load_generator(dir + "/checkpoint.pt", true));
    }
  }
  write_sample_grids(cc, finals);

  LinePlot plot;
  plot.title = fmt::format("FID vs training wall-clock, {} ({} samples)", cc.dataset, cc.n_eval);
  plot.x_label = "training wall-clock (minutes, precompute included)";
  plot.y_label = "FID (evaluator features)";
  plot.log_y = true;
  for (const auto& m : summarize_runs(cc.methods, result.runs)) {
    PlotSeries s{cc.seeds > 1 ? fmt::format("{} (mean +- std, {} seeds)", m.mean.method, cc.seeds) : m.mean.method,
                 {}, {}, {}, {}};
    for (size_t i = 0; i < m.mean.curve.size(); ++i) {
      s.x.push_back(m.mean.curve[i].time_s / 60), s.y.push_back(m.mean.curve[i].fid);
      if (cc.seeds > 1) s.y_lo.push_back(m.mean.curve[i].fid - m.fid_std[i]), s.y_hi.push_back(m.mean.curve[i].fid + m.fid_std[i]);
    }
    plot.series.push_back(s);
  }
  write_line_plot(cc.out_dir + "/fid_vs_time.png", plot);
  write_file_atomic(cc.out_dir + "/report.md", comparison_report(cc, result));
  return result;
}

std::vector<MethodSummary> summarize_runs(const std::vector<std::string>& methods, const std::vector<MethodRun>& runs) {
  std::vector<MethodSummary> out;
  for (const auto& name : methods) {
    std::vector<const MethodRun*> mine;
    for (const auto& r : runs)
      if (r.method == name) mine.push_back(&r);
    if (mine.empty()) continue;
    size_t len = mine[0]->curve.size();
    for (const auto* r : mine) len = std::min(len, r->curve.size());
    MethodSummary s;
    s.mean = *mine[0];
    s.mean.curve.assign(len, {});
    const double k = static_cast<double>(mine.size());
    s.mean.steps = 0, s.mean.images_per_s = 0, s.mean.precompute_s = 0;
    for (const auto* r : mine) {
      s.mean.steps += r->steps, s.mean.images_per_s += r->images_per_s / k, s.mean.precompute_s += r->precompute_s / k;
      if (!r->curve.empty()) s.final_fids.push_back(r->curve.back().fid);
    }
    s.mean.steps = static_cast<int64_t>(std::llround(static_cast<double>(s.mean.steps) / k));
    for (size_t i = 0; i < len; ++i) {
      auto& p = s.mean.curve[i];
      p.accuracy = p.precision = p.recall = 0;  // the mean of -1 (unconditional, not measured) stays -1
      double sq = 0;
      for (const auto* r : mine) {
        const auto& q = r->curve[i];
        p.time_s += q.time_s / k, p.fid += q.fid / k, p.accuracy += q.accuracy / k;
        p.precision += q.precision / k, p.recall += q.recall / k;
        p.step += q.step;
      }
      p.step = static_cast<int64_t>(std::llround(static_cast<double>(p.step) / k));
      for (const auto* r : mine) sq += (r->curve[i].fid - p.fid) * (r->curve[i].fid - p.fid);
      s.fid_std.push_back(mine.size() > 1 ? std::sqrt(sq / (k - 1)) : 0.0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string comparison_report(const CompareConfig& cc, const CompareResult& r) {
  std::ostringstream md;
  const auto now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  md << fmt::format("# Equal-wall-clock comparison on {}\n\n", cc.dataset);
  md << fmt::format("Machine: {} hardware threads, {} LibTorch threads, {} data-parallel rank(s) per training run "
                    "(threads of one process), training on {}; {}. Each method trained from "
                    "scratch for {} of training wall-clock (data loading and, for DriftXpress, the landmark and "
                    "summary precompute count against it), seed {}, same generator, features and batch layout; FID of "
                    "the EMA generator in the shipped evaluator's feature space, {} generated vs {} real test images, "
                    "measured every {} outside the clock.\n\n",
                    std::thread::hardware_concurrency(), at::get_num_threads(), std::max(1, cc.ranks),
                    device_label(parse_device(cc.base.device)), date,
                    minutes(cc.time_budget_s),
                    cc.seed, cc.n_eval, cc.n_eval, minutes(cc.eval_every_s));
  if (r.runs.empty()) return md.str();
  // With several seeds every number below is the mean over them (FID cells: mean +- sample std).
  const auto summaries = summarize_runs(cc.methods, r.runs);
  std::vector<MethodRun> shown;
  std::map<std::string, std::vector<double>> sd;
  for (const auto& s : summaries) shown.push_back(s.mean), sd[s.mean.method] = s.fid_std;
  const bool spread = cc.seeds > 1;
  auto fid_cell = [&](const MethodRun& m, size_t i) {
    return fid_str(m.curve[i].fid) + (spread ? fmt::format(" ± {:.1f}", sd[m.method][i]) : "");
  };
  if (spread)
    md << fmt::format("Each method ran with {} training seeds ({}..{}); the tables show the mean over them, FID as mean "
                      "± sample standard deviation, and the plot error bars span mean ± std.\n\n",
                      cc.seeds, cc.seed, cc.seed + static_cast<uint64_t>(cc.seeds) - 1);
  const auto& ref_name = reference_method(cc.methods);
  const MethodRun* ref = nullptr;
  for (const auto& m : shown)
    if (m.method == ref_name) ref = &m;
  const double ref_final = ref && !ref->curve.empty() ? ref->curve.back().fid : NAN;

  // Main table.
  size_t npts = 0;
  for (const auto& m : shown) npts = std::max(npts, m.curve.size());
  md << "| method | steps | images/s | precompute (s) |";
  for (size_t i = 0; i < npts; ++i) md << fmt::format(" FID @ {} |", minutes(std::min(cc.time_budget_s, (i + 1) * cc.eval_every_s)));
  md << fmt::format(" class acc. (final) | time to {}'s final FID | speedup | precision / recall (final) |\n", ref_name);
  md << "|---|---:|---:|---:|";
  for (size_t i = 0; i < npts; ++i) md << "---:|";
  md << "---:|---:|---:|---:|\n";
  for (const auto& m : shown) {
    md << fmt::format("| {} | {} | {:.0f} | {:.1f} |", m.method, m.steps, m.images_per_s, m.precompute_s);
    for (size_t i = 0; i < npts; ++i) md << " " << (i < m.curve.size() ? fid_cell(m, i) : "") << " |";
    const double acc = m.curve.empty() ? -1 : m.curve.back().accuracy;
    md << " " << (acc >= 0 ? fmt::format("{:.3f}", acc) : "n/a") << " |";
    const auto t = time_to_reach(m.curve, ref_final);
    const double ref_t = ref && !ref->curve.empty() ? ref->curve.back().time_s : NAN;
    if (t) md << fmt::format(" {:.0f}s | {:.2f}x |", *t, ref_t / *t);
    else md << " not reached | - |";
    const bool pr = !m.curve.empty() && m.curve.back().precision >= 0 && m.curve.back().recall >= 0;
    md << " " << (pr ? fmt::format("{:.3f} / {:.3f}", m.curve.back().precision, m.curve.back().recall) : "n/a") << " |\n";
  }
  md << fmt::format("\n\"time to {}'s final FID\" is the first evaluation time at which the method's FID is at or "
                    "below the {} method's FID at the deadline ({}), at the resolution of the evaluation grid; "
                    "speedup = deadline / that time.\n\n", ref_name, ref_name, fid_str(ref_final));

  if (spread) {
    md << "Final FID per seed:\n\n";
    for (const auto& s : summaries)
      md << fmt::format("- {}: {:.1f}\n", s.mean.method, fmt::join(s.final_fids, ", "));
    md << "\n";
  }

  // Who wins at each time.
  if (shown.size() >= 2) {
    md << "Lower FID at each evaluation time:\n\n";
    for (size_t i = 0; i < npts; ++i) {
      const MethodRun* best = nullptr;
      for (const auto& m : shown)
        if (i < m.curve.size() && (!best || m.curve[i].fid < best->curve[i].fid)) best = &m;
      std::vector<std::string> vals;
      for (const auto& m : shown)
        if (i < m.curve.size()) vals.push_back(fmt::format("{} {}", m.method, fid_cell(m, i)));
      md << fmt::format("- {}: **{}** ({})\n", minutes(std::min(cc.time_budget_s, (i + 1) * cc.eval_every_s)),
                        best->method, fmt::join(vals, ", "));
    }
    md << "\n";
    for (const auto& m : shown) {
      if (ref == nullptr || m.method == ref_name || m.curve.empty()) continue;
      const auto t = time_to_reach(m.curve, ref_final);
      const bool third = t && *t <= ref->curve.back().time_s / 3 + 1e-9;
      const bool no_worse = m.curve.back().fid <= ref_final;
      md << fmt::format("Goal (reach {}'s final FID in at most a third of the time, and no worse FID at the "
                        "deadline) for {}: {} / {}.\n\n", ref_name, m.method,
                        third ? "reached within a third" : (t ? "reached, but later than a third" : "not reached"),
                        no_worse ? "FID at the deadline no worse" : "FID at the deadline worse");
    }
  }
  md << "![FID against training wall-clock](fid_vs_time.png)\n\n";
  std::vector<std::string> names;
  for (const auto& m : shown) names.push_back(m.method);
  md << fmt::format("Samples at the deadline (EMA generator, same noise, one row per class), left to right: {}.\n\n",
                    fmt::join(names, " | "));
  md << "![samples side by side](samples_side_by_side.png)\n\n";

  if (!r.search.empty()) {
    md << fmt::format("## Hyperparameter search ({} per candidate, same seed and evaluation; chosen: the lowest FID "
                      "among candidates with class accuracy >= {:.2f}, or the lowest FID if none)\n\n",
                      minutes(cc.search_budget_s), cc.search_min_accuracy);
    md << "| method | setting (changes from the method's default) | steps | FID | class acc. | chosen |\n";
    md << "|---|---|---:|---:|---:|:-:|\n";
    for (const auto& m : cc.methods) {
      std::vector<SearchTrial> trials;
      for (const auto& t : r.search)
        if (t.method == m) trials.push_back(t);
      if (trials.empty()) continue;
      const size_t chosen = choose_candidate(trials, cc.search_min_accuracy);
      for (size_t i = 0; i < trials.size(); ++i) {
        const auto& t = trials[i];
        md << fmt::format("| {} | `{}` | {} | {} | {} | {} |\n", t.method, t.overrides.empty() ? "default" : t.overrides.dump(),
                          t.steps, fid_str(t.fid), t.accuracy >= 0 ? fmt::format("{:.3f}", t.accuracy) : "n/a",
                          i == chosen ? "yes" : "");
      }
    }
    md << "\n";
  }
  md << "Every setting of every run: `compare.json` (and each run's `config.json`).\n";
  return md.str();
}

}  // namespace driftx
