// driftx plot: a line plot (with optional error bars) from a small JSON file, drawn by the same renderer
// as compare's FID-vs-time plot, so scripts (scripts/rank-ablation.sh) get pictures without a plotting
// library. The file: {"series": [{"name": "...", "x": [...], "y": [...], "y_lo": [...], "y_hi": [...]}]}
// (y_lo / y_hi optional, as long as y), optionally "title", "x_label", "y_label", "log_y".
#include <iostream>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/plot.h"

namespace driftx::cli {

namespace {

struct PlotArgs {
  std::string series, out, title, x_label, y_label;
  bool log_y = false;
};

std::vector<double> numbers(const nlohmann::json& s, const char* key, const std::string& name) {
  if (!s.contains(key)) return {};
  const auto& v = s.at(key);
  DRIFTX_CHECK(v.is_array(), "plot: series '{}': '{}' must be an array of numbers", name, key);
  std::vector<double> out;
  for (const auto& e : v) {
    DRIFTX_CHECK(e.is_number(), "plot: series '{}': '{}' must hold numbers only, got {}", name, key, e.dump());
    out.push_back(e.get<double>());
  }
  return out;
}

void run(const PlotArgs& a) {
  const auto j = read_json(a.series);
  DRIFTX_CHECK(j.is_object() && j.contains("series") && j.at("series").is_array() && !j.at("series").empty(),
               "plot: {} must be a JSON object with a non-empty array 'series'", a.series);
  auto text = [&](const std::string& flag, const char* key) {
    return !flag.empty() ? flag : j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : "";
  };
  LinePlot plot;
  plot.title = text(a.title, "title");
  plot.x_label = text(a.x_label, "x_label");
  plot.y_label = text(a.y_label, "y_label");
  plot.log_y = a.log_y || (j.contains("log_y") && j.at("log_y").is_boolean() && j.at("log_y").get<bool>());
  for (const auto& s : j.at("series")) {
    DRIFTX_CHECK(s.is_object(), "plot: every entry of 'series' must be an object, got {}", s.dump());
    PlotSeries p;
    p.name = s.contains("name") && s.at("name").is_string() ? s.at("name").get<std::string>() : "";
    p.x = numbers(s, "x", p.name), p.y = numbers(s, "y", p.name);
    p.y_lo = numbers(s, "y_lo", p.name), p.y_hi = numbers(s, "y_hi", p.name);
    DRIFTX_CHECK(p.y_lo.size() == p.y_hi.size(), "plot: series '{}': give both y_lo and y_hi, or neither", p.name);
    plot.series.push_back(std::move(p));
  }
  write_line_plot(a.out, plot);  // checks lengths and that something finite is left to draw
  std::cout << "plot -> " << a.out << std::endl;
}

}  // namespace

void add_plot_command(CLI::App& app) {
  static PlotArgs a;
  auto* cmd = app.add_subcommand("plot", "Line plot (PNG) from a JSON file of series, with optional error bars");
  cmd->add_option("--series", a.series, "JSON: {\"series\": [{\"name\", \"x\", \"y\", \"y_lo\", \"y_hi\"}], "
                                        "\"title\", \"x_label\", \"y_label\", \"log_y\"}")->required();
  cmd->add_option("--out", a.out, "Output PNG")->required();
  cmd->add_option("--title", a.title, "Title (default: the file's)");
  cmd->add_option("--x-label", a.x_label, "x axis title (default: the file's)");
  cmd->add_option("--y-label", a.y_label, "y axis title (default: the file's)");
  cmd->add_flag("--log-y", a.log_y, "Logarithmic y axis");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::cli
