#include "driftx/plot.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "driftx/error.h"
#include "driftx/image_io.h"
#include "report/canvas.h"


namespace driftx {

namespace {

const Rgb kBlack{0, 0, 0}, kGrid{225, 225, 225}, kWhite{255, 255, 255};

// "Nice" tick positions covering [lo, hi]: steps of 1, 2 or 5 x 10^k.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) out.push_back(std::abs(t) < 1e-12 * step ? 0 : t);
  return out;
}

std::string tick_label(double v) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e4 || a < 1e-2) return fmt::format("{:.0e}", v);
  if (std::abs(v - std::round(v)) < 1e-9 * std::max(1.0, a)) return fmt::format("{:.0f}", v);
  return fmt::format("{:g}", v);
}

}  // namespace

std::array<uint8_t, 3> series_colour(size_t i) {
  static const std::array<Rgb, 6> palette{Rgb{31, 119, 180}, Rgb{214, 39, 40}, Rgb{44, 160, 44},
                                          Rgb{148, 103, 189}, Rgb{255, 127, 14}, Rgb{23, 190, 207}};
  return palette[i % palette.size()];
}

torch::Tensor render_line_plot(const LinePlot& plot) {
  DRIFTX_CHECK(plot.width >= 200 && plot.height >= 150, "plot: {} x {} pixels is too small", plot.width, plot.height);
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  auto fy = [&](double y) { return plot.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!plot.log_y || y > 0); };
  for (const auto& s : plot.series) {
    DRIFTX_CHECK(s.x.size() == s.y.size(), "plot: series '{}' has {} x values but {} y values", s.name, s.x.size(), s.y.size());
    DRIFTX_CHECK((s.y_lo.empty() && s.y_hi.empty()) || (s.y_lo.size() == s.y.size() && s.y_hi.size() == s.y.size()),
                 "plot: series '{}' needs an error-bar end per point (or none)", s.name);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, fy(s.y[i])), ymax = std::max(ymax, fy(s.y[i]));
      if (!s.y_lo.empty() && usable(s.x[i], s.y_lo[i])) ymin = std::min(ymin, fy(s.y_lo[i]));
      if (!s.y_hi.empty() && usable(s.x[i], s.y_hi[i])) ymax = std::max(ymax, fy(s.y_hi[i]));
    }
  }
  DRIFTX_CHECK(std::isfinite(xmin) && std::isfinite(ymin), "plot '{}': no finite point to draw", plot.title);
  xmin = std::min(xmin, 0.0);  // time axes start at 0
  if (xmax - xmin < 1e-12) xmax = xmin + 1;
  if (ymax - ymin < 1e-12) ymin -= 0.5, ymax += 0.5;
  const double ypad = 0.05 * (ymax - ymin);
  ymin -= ypad, ymax += ypad;

  Canvas cv(plot.width, plot.height);
  const int left = 90, right = plot.width - 30, top = 50, bottom = plot.height - 70;
  auto X = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (right - left); };
  auto Y = [&](double y) { return bottom - (fy(y) - ymin) / (ymax - ymin) * (bottom - top); };

  // Grid and ticks.
  for (double t : nice_ticks(xmin, xmax, 8)) {
    const int px = static_cast<int>(std::lround(X(t)));
    cv.rect(px, top, px + 1, bottom, kGrid);
    cv.rect(px, bottom, px + 1, bottom + 6, kBlack);
    const std::string l = tick_label(t);
    cv.text(l, px - Canvas::text_width(l) / 2, bottom + 10, kBlack);
  }
  std::vector<double> yt;
  if (plot.log_y) {  // 1, 2, 5 x 10^k inside the range
    for (int k = static_cast<int>(std::floor(ymin)); k <= static_cast<int>(std::ceil(ymax)); ++k)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, k);
        if (std::log10(v) >= ymin && std::log10(v) <= ymax) yt.push_back(v);
      }
    if (yt.size() < 3) {  // a narrow range: linear ticks placed on the log axis
      yt.clear();
      for (double v : nice_ticks(std::pow(10.0, ymin), std::pow(10.0, ymax), 5))
        if (v > 0) yt.push_back(v);
    }
  } else {
    yt = nice_ticks(ymin, ymax, 6);
  }
  for (double v : yt) {
    const int py = static_cast<int>(std::lround(Y(v)));
    cv.rect(left, py, right, py + 1, kGrid);
    cv.rect(left - 6, py, left, py + 1, kBlack);
    const std::string l = tick_label(v);
    cv.text(l, left - 10 - Canvas::text_width(l), py - 6, kBlack);
  }
  // Axes and titles.
  cv.rect(left, top, left + 2, bottom + 1, kBlack);
  cv.rect(left, bottom, right, bottom + 2, kBlack);
  cv.text(plot.title, (plot.width - Canvas::text_width(plot.title, 3)) / 2, 12, kBlack, 3);
  cv.text(plot.x_label, (left + right - Canvas::text_width(plot.x_label)) / 2, plot.height - 30, kBlack);
  const std::string yl = plot.y_label + (plot.log_y ? " (log scale)" : "");
  cv.text(yl, 14, (top + bottom + Canvas::text_width(yl)) / 2, kBlack, 2, true);

  // Series: lines, markers, error bars; then the legend in the corner with the fewest drawn points
  // (markers, bar ends and points along the lines), top right on a tie, on a white box.
  std::vector<std::pair<double, double>> drawn;  // for the legend's corner
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const auto& se = plot.series[s];
    const auto c = series_colour(s);
    bool have_prev = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!usable(se.x[i], se.y[i])) { have_prev = false; continue; }
      const double x = X(se.x[i]), y = Y(se.y[i]);
      if (have_prev) cv.line(px, py, x, y, c, 3);
      for (int k = 0; have_prev && k < 32; ++k) drawn.emplace_back(px + (x - px) * k / 32, py + (y - py) * k / 32);
      drawn.emplace_back(x, y);
      if (!se.y_lo.empty()) {  // error bar with caps; a non-positive lower end on a log axis: to the axis
        const double lo = usable(se.x[i], se.y_lo[i]) ? Y(se.y_lo[i]) : bottom, hi = Y(se.y_hi[i]);
        drawn.emplace_back(x, lo), drawn.emplace_back(x, hi);
        cv.line(x, lo, x, hi, c, 2);
        cv.line(x - 6, lo, x + 6, lo, c, 2);
        cv.line(x - 6, hi, x + 6, hi, c, 2);
      }
      cv.rect(static_cast<int>(x) - 4, static_cast<int>(y) - 4, static_cast<int>(x) + 5, static_cast<int>(y) + 5, c);
      px = x, py = y, have_prev = true;
    }
  }
  int name_w = 0;
  for (const auto& se : plot.series) name_w = std::max(name_w, Canvas::text_width(se.name));
  const int box_w = name_w + 65, box_h = 24 * static_cast<int>(plot.series.size()) + 8;
  const std::array<std::pair<int, int>, 4> corners{{{right - box_w - 8, top + 6}, {left + 10, top + 6},
                                                    {right - box_w - 8, bottom - box_h - 6}, {left + 10, bottom - box_h - 6}}};
  size_t best = 0, best_hits = SIZE_MAX;
  for (size_t k = 0; k < corners.size(); ++k) {
    const auto [bx, by] = corners[k];
    size_t hits = 0;
    for (const auto& [x, y] : drawn) hits += x >= bx - 6 && x <= bx + box_w + 6 && y >= by - 6 && y <= by + box_h + 6;
    if (hits < best_hits) best = k, best_hits = hits;
  }
  const auto [legend_x, legend_top] = corners[best];
  int legend_y = legend_top + 6;
  cv.rect(legend_x, legend_top, legend_x + box_w, legend_top + box_h, kWhite);
  for (size_t s = 0; s < plot.series.size(); ++s) {
    cv.line(legend_x + 8, legend_y + 6, legend_x + 43, legend_y + 6, series_colour(s), 3);
    cv.text(plot.series[s].name, legend_x + 53, legend_y, kBlack);
    legend_y += 24;
  }
  return cv.image();
}

void write_line_plot(const std::string& path, const LinePlot& plot) { write_png(path, render_line_plot(plot)); }

}  // namespace driftx
