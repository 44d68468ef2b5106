// Line plots a person can look at (FID against wall-clock time), drawn into a PNG without any plotting
// library: axes, ticks, tick labels, axis titles, a legend, one coloured line with markers per series.
// Text uses stb_easy_font (the stb package), so the plot needs nothing beyond what the build has.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace driftx {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // same length; non-finite points are skipped
  std::vector<double> y_lo, y_hi;  // optional error bars (e.g. mean -+ std over seeds): empty, or as long as y
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool log_y = false;  // FID spans orders of magnitude early in training
  int width = 900, height = 560;
};

// Renders the plot as H x W x 3 uint8 (white background). Throws driftx::Error when there is nothing to
// draw (no finite point) or a series' x and y differ in length.
torch::Tensor render_line_plot(const LinePlot& plot);
void write_line_plot(const std::string& path, const LinePlot& plot);

// The colour of series i (the palette cycles), for tests and legends elsewhere.
std::array<uint8_t, 3> series_colour(size_t i);

}  // namespace driftx
