// driftx lab outputs: report.json, report.md, config.json (pictures: lab_plot.cpp).
#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)

#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/lab.h"

namespace driftx {

namespace {

nlohmann::json stat_json(const Stat& s) {
  auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json values = nlohmann::json::array();
  for (double v : s.values) values.push_back(finite(v));
  return {{"mean", finite(s.mean())}, {"std", finite(s.std())}, {"values", values}};
}

// The metrics the summary reports the smallest rank for, with their threshold.
const std::vector<std::pair<std::string, double>>& summary_metrics() {
  static const std::vector<std::pair<std::string, double>> m{
      {"attr_cos_grid", 0.99}, {"attr_cos_samples", 0.99}, {"field_cos_samples", 0.99}};
  return m;
}

std::vector<std::string> row_strategies(const LabReport& r) {
  std::vector<std::string> out;
  for (const auto& row : r.rows)
    if (row.field != "exact" && std::find(out.begin(), out.end(), row.strategy) == out.end()) out.push_back(row.strategy);
  return out;
}

std::string pm(const Stat& s, int digits) {
  if (s.values.empty()) return "-";
  if (s.values.size() == 1) return fmt::format("{:.{}f}", s.mean(), digits);
  return fmt::format("{:.{}f} ± {:.{}f}", s.mean(), digits, s.std(), digits);
}

const Stat& metric(const LabRow& row, const std::string& key) {
  static const Stat empty;
  auto it = row.metrics.find(key);
  return it == row.metrics.end() ? empty : it->second;
}

}  // namespace

nlohmann::json lab_config_json(const LabConfig& c) {
  return {{"targets", c.targets},
          {"dim", c.dim},
          {"ranks", c.ranks},
          {"strategies", c.strategies},
          {"minibatch_sizes", c.minibatch_sizes},
          {"temperatures", c.temperatures},
          {"ridge", c.ridge},
          {"n_data", c.n_data},
          {"n_eval", c.n_eval},
          {"grid", c.grid},
          {"queries", c.queries},
          {"query_noise", c.query_noise},
          {"particles", c.particles},
          {"flow_steps", c.flow_steps},
          {"eta", c.eta},
          {"flow_normalise", c.flow_normalise},
          {"record_every", c.record_every},
          {"train",
           {{"skip", c.skip_train},
            {"steps", c.train.steps},
            {"batch", c.train.batch},
            {"noise_dim", c.train.noise_dim},
            {"width", c.train.width},
            {"lr", c.train.lr}}},
          {"seeds", c.seeds},
          {"seed", c.seed},
          {"sw_projections", c.sw_projections},
          {"workers", c.workers}};
}

int64_t lab_rank_reaching(const LabReport& report, const std::string& target, const std::string& strategy,
                          const std::string& metric_name, double threshold) {
  int64_t best = -1;
  for (const auto& row : report.rows) {
    if (row.target != target || row.strategy != strategy) continue;
    const auto& s = metric(row, metric_name);
    if (!s.values.empty() && s.mean() >= threshold && (best < 0 || row.rank < best)) best = row.rank;
  }
  return best;
}

nlohmann::json lab_report_json(const LabReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json j{{"target", row.target}, {"dim", r.config.dim}, {"field", row.field}, {"strategy", row.strategy},
                     {"rank", row.rank}, {"seeds", r.config.seeds}};
    for (const auto& [k, s] : row.metrics) j[k] = stat_json(s);
    for (const auto& [k, list] : row.lists) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& s : list) a.push_back(stat_json(s));
      j[k] = a;
    }
    rows.push_back(j);
  }
  nlohmann::json targets = nlohmann::json::object();
  for (const auto& [name, info] : r.target_info) {
    nlohmann::json t = nlohmann::json::object();
    for (const auto& [k, s] : info) t[k] = stat_json(s);
    std::vector<double> raw;
    for (double tau : r.config.temperatures) raw.push_back(tau * std::sqrt(static_cast<double>(r.config.dim)) * info.at("scale").mean());
    t["kernel_length_raw"] = raw;
    targets[name] = t;
  }
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& target : r.config.targets)
    for (const auto& strategy : row_strategies(r))
      for (const auto& [m, thr] : summary_metrics()) {
        const int64_t rank = lab_rank_reaching(r, target, strategy, m, thr);
        summary.push_back({{"target", target}, {"strategy", strategy}, {"metric", m}, {"threshold", thr},
                           {"rank", rank < 0 ? nlohmann::json(nullptr) : nlohmann::json(rank)}});
      }
  return {{"config", lab_config_json(r.config)}, {"targets", targets}, {"recorded_steps", r.recorded_steps},
          {"rows", rows}, {"summary", summary}, {"seconds", r.seconds}};
}

std::string lab_report_markdown(const LabReport& r) {
  std::ostringstream o;
  const auto& c = r.config;
  o << fmt::format("# driftx lab\n\n{} seed(s) from {}, D = {}, temperatures {} (kernel length tau * mean distance), "
                   "{} real samples, {} particles x {} steps at eta {} ({} drift), generator {} steps; {:.0f} s.\n"
                   "Mean ± std over seeds. Distances (dev, SW) in the target's units.\n\n",
                   c.seeds, c.seed, c.dim, fmt::join(c.temperatures, "/"), c.n_data, c.particles, c.flow_steps, c.eta,
                   c.flow_normalise ? "normalised" : "raw", c.skip_train ? 0 : c.train.steps, r.seconds);
  o << "## Smallest rank reaching cosine 0.99 (mean over seeds)\n\n| target | strategy |";
  for (const auto& [m, thr] : summary_metrics()) o << " " << m << " |";
  o << "\n|---|---|";
  for (size_t i = 0; i < summary_metrics().size(); ++i) o << "---:|";
  o << "\n";
  for (const auto& target : c.targets)
    for (const auto& strategy : row_strategies(r)) {
      o << "| " << target << " | " << strategy << " |";
      for (const auto& [m, thr] : summary_metrics()) {
        const int64_t rank = lab_rank_reaching(r, target, strategy, m, thr);
        o << " " << (rank < 0 ? std::string("> max") : std::to_string(rank)) << " |";
      }
      o << "\n";
    }
  for (const auto& target : c.targets) {
    const auto& info = r.target_info.at(target);
    o << fmt::format("\n## {}\n\nS = {}, start SW to data {}, floors: {} fresh samples {} / {} fresh samples {}\n\n",
                     target, pm(info.at("scale"), 3), pm(info.at("start_sw_data"), 3), c.particles,
                     pm(info.at("floor_sw_particles"), 3), c.n_eval, pm(info.at("floor_sw_generator"), 3));
    o << fmt::format("| field | rank | attr cos grid | attr cos samples | attr cos samples per tau ({}) | field cos samples | "
                     "clamped grid | traj dev mean | endpoint dev | endpoint SW data | final speed | gen SW data |\n"
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                     fmt::join(c.temperatures, " / "));
    for (const auto& row : r.rows) {
      if (row.target != target) continue;
      std::vector<std::string> per_tau;
      if (auto it = row.lists.find("attr_cos_samples_per_temp"); it != row.lists.end())
        for (const auto& s : it->second) per_tau.push_back(fmt::format("{:.3f}", s.mean()));
      o << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", row.strategy, row.rank,
                       pm(metric(row, "attr_cos_grid"), 4), pm(metric(row, "attr_cos_samples"), 4),
                       fmt::join(per_tau, " / "),
                       pm(metric(row, "field_cos_samples"), 4), pm(metric(row, "clamped_grid"), 3),
                       pm(metric(row, "traj_dev_mean"), 4), pm(metric(row, "endpoint_dev"), 4),
                       pm(metric(row, "endpoint_sw_data"), 4), pm(metric(row, "final_speed"), 4),
                       pm(metric(row, "train_sw_data"), 4));
    }
  }
  return o.str();
}

void write_lab_outputs(const LabReport& report, const std::string& dir) {
  make_dirs(dir);
  write_json(dir + "/config.json", lab_config_json(report.config));
  // One row per line: a few hundred rows stay readable in a diff and the file small (pretty-printing
  // puts every per-seed value on its own line).
  const auto j = lab_report_json(report);
  std::string text = "{\n";
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    text += (first ? "" : ",\n") + nlohmann::json(it.key()).dump() + ": ";
    first = false;
    if (it.value().is_array() && !it.value().empty() && it.value().front().is_object()) {
      text += "[\n";
      for (size_t i = 0; i < it.value().size(); ++i) text += (i ? ",\n  " : "  ") + it.value()[i].dump();
      text += "\n]";
    } else {
      text += it.value().dump();
    }
  }
  write_file_atomic(dir + "/report.json", text + "\n}\n");
  write_file_atomic(dir + "/report.md", lab_report_markdown(report));
  write_lab_pictures(report, dir);
}

}  // namespace driftx
