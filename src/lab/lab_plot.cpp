// driftx lab pictures: quiver plots, particle trajectories, metric-vs-rank curves with error bars and the
// trajectory deviation over time, drawn into PNGs on the pixel canvas the line plots use
// (src/report/canvas.h; text from stb_easy_font), no plotting library.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "driftx/error.h"
#include "driftx/image_io.h"
#include "driftx/lab.h"
#include "driftx/plot.h"
#include "report/canvas.h"


namespace driftx {

namespace {

const Rgb kBlack{0, 0, 0}, kGrid{230, 230, 230}, kData{190, 190, 190}, kLandmark{255, 127, 14}, kFloor{150, 150, 150};

// A rectangle of the canvas showing [xmin, xmax] x [ymin, ymax] (log10 / log2 already applied by callers).
struct Frame {
  int left, top, right, bottom;
  double xmin, xmax, ymin, ymax;
  double X(double x) const { return left + (x - xmin) / (xmax - xmin) * (right - left); }
  double Y(double y) const { return bottom - (y - ymin) / (ymax - ymin) * (bottom - top); }
  bool inside(double x, double y) const { return x >= xmin && x <= xmax && y >= ymin && y <= ymax; }
};

// Equal-aspect frame of a square panel around the box [lo, hi] of 2-D points.
Frame square_frame(int left, int top, int size, double x0, double x1, double y0, double y1) {
  const double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, half = std::max(x1 - x0, y1 - y0) / 2 * 1.04 + 1e-9;
  return {left, top, left + size, top + size, cx - half, cx + half, cy - half, cy + half};
}

void box(Canvas& cv, const Frame& f) {
  cv.rect(f.left, f.top, f.right + 1, f.top + 1, kBlack);
  cv.rect(f.left, f.bottom, f.right + 1, f.bottom + 1, kBlack);
  cv.rect(f.left, f.top, f.left + 1, f.bottom + 1, kBlack);
  cv.rect(f.right, f.top, f.right + 1, f.bottom + 1, kBlack);
}

std::vector<std::array<float, 2>> rows2(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous().reshape({-1, 2});
  std::vector<std::array<float, 2>> out(static_cast<size_t>(c.size(0)));
  std::memcpy(out.data(), c.data_ptr<float>(), out.size() * sizeof(float) * 2);
  return out;
}

std::vector<std::string> ordered_labels(const std::vector<std::string>& labels) {
  std::vector<std::string> out;
  for (const auto& l : labels)
    if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  return out;
}

Rgb mix(const Rgb& a, const Rgb& b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  Rgb c;
  for (int i = 0; i < 3; ++i) c[i] = static_cast<uint8_t>(std::lround(a[i] + t * (b[i] - a[i])));
  return c;
}

const int kPanel = 210, kGap = 14, kLeftLabel = 26, kTitle = 18;

// Rows = targets, columns = pictured fields: one square panel each, drawn by `draw`.
template <typename Item, typename Draw>
void panel_grid(const std::string& path, const std::string& heading, const std::vector<std::string>& targets,
                const std::vector<Item>& items, Draw draw) {
  std::vector<std::string> labels;
  for (const auto& it : items) labels.push_back(it.label);
  labels = ordered_labels(labels);
  const int cols = static_cast<int>(labels.size()), rows = static_cast<int>(targets.size());
  const int W = kLeftLabel + cols * (kPanel + kGap) + kGap, H = 34 + rows * (kPanel + kTitle + kGap);
  Canvas cv(W, H);
  cv.text(heading, kLeftLabel, 10, kBlack, 2);
  for (int r = 0; r < rows; ++r) {
    const int top = 34 + r * (kPanel + kTitle + kGap) + kTitle;
    cv.text(targets[r], 6, top + kPanel / 2 + Canvas::text_width(targets[r], 1) / 2, kBlack, 1, true);
    for (const auto& it : items) {
      if (it.target != targets[r]) continue;
      const int c = static_cast<int>(std::find(labels.begin(), labels.end(), it.label) - labels.begin());
      const int left = kLeftLabel + kGap + c * (kPanel + kGap);
      cv.text(it.label, left, top - 12, kBlack, 1);
      draw(cv, it, left, top);
    }
  }
  cv.save(path);
}

void draw_data(Canvas& cv, const Frame& f, const torch::Tensor& data) {
  for (const auto& p : rows2(data))
    if (f.inside(p[0], p[1])) cv.set(static_cast<int>(f.X(p[0])), static_cast<int>(f.Y(p[1])), kData);
}

// ---- metric-vs-x panels ------------------------------------------------------------------------------

struct Curve {
  std::string name;
  Rgb colour;
  std::vector<double> x, y, lo, hi;  // lo/hi: error bar ends (empty: none)
  int dash = 0;
  bool markers = true;
};

void curve_panel(Canvas& cv, int left, int top, int w, int h, const std::string& title, const std::string& xlabel,
                 std::vector<Curve> curves, bool logx2, bool logy) {
  const double tiny = 1e-12;
  auto fx = [&](double x) { return logx2 ? std::log2(x) : x; };
  auto fy = [&](double y) { return logy ? std::log10(std::max(y, tiny)) : y; };
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& c : curves)
    for (size_t i = 0; i < c.x.size(); ++i) {
      if (!std::isfinite(c.x[i]) || !std::isfinite(c.y[i]) || (logy && c.y[i] <= 0)) continue;
      xmin = std::min(xmin, fx(c.x[i])), xmax = std::max(xmax, fx(c.x[i]));
      const double lo = c.lo.empty() ? c.y[i] : c.lo[i], hi = c.hi.empty() ? c.y[i] : c.hi[i];
      ymin = std::min(ymin, fy(logy && lo <= 0 ? c.y[i] : lo)), ymax = std::max(ymax, fy(hi));
    }
  cv.text(title, left, top - 14, kBlack, 1);
  if (!std::isfinite(xmin) || !std::isfinite(ymin)) return;
  if (xmax - xmin < 1e-9) xmin -= 0.5, xmax += 0.5;
  if (ymax - ymin < 1e-9) ymin -= logy ? 0.5 : std::max(1e-3, std::abs(ymin) * 0.1), ymax += logy ? 0.5 : std::max(1e-3, std::abs(ymax) * 0.1);
  const double px = 0.04 * (xmax - xmin), py = 0.06 * (ymax - ymin);
  Frame f{left + 46, top, left + w, top + h - 24, xmin - px, xmax + px, ymin - py, ymax + py};
  // Ticks.
  std::vector<double> xt, yt;
  if (logx2) {
    for (int k = static_cast<int>(std::ceil(xmin - 1e-9)); k <= static_cast<int>(std::floor(xmax + 1e-9)); ++k) xt.push_back(k);
  } else {
    const double raw = (xmax - xmin) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
      if (m * mag >= raw) { step = m * mag; break; }
    for (double t = std::ceil(xmin / step) * step; t <= xmax + 1e-9; t += step) xt.push_back(t);
  }
  if (logy) {
    for (int k = static_cast<int>(std::floor(f.ymin)); k <= static_cast<int>(std::ceil(f.ymax)); ++k)
      if (k >= f.ymin && k <= f.ymax) yt.push_back(k);
    if (yt.size() < 2)
      for (int k = static_cast<int>(std::floor(f.ymin)); k <= static_cast<int>(std::ceil(f.ymax)); ++k)
        for (double m : {2.0, 5.0})
          if (std::log10(m) + k >= f.ymin && std::log10(m) + k <= f.ymax) yt.push_back(std::log10(m) + k);
  } else {
    const double raw = (f.ymax - f.ymin) / 4, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
      if (m * mag >= raw) { step = m * mag; break; }
    for (double t = std::ceil(f.ymin / step) * step; t <= f.ymax + 1e-12; t += step) yt.push_back(std::abs(t) < 1e-12 * step ? 0 : t);
  }
  for (double t : xt) {
    const int x = static_cast<int>(std::lround(f.X(t)));
    cv.rect(x, f.top, x + 1, f.bottom, kGrid);
    const std::string l = logx2 ? fmt::format("{:g}", std::exp2(t)) : fmt::format("{:g}", t);
    cv.text(l, x - Canvas::text_width(l, 1) / 2, f.bottom + 4, kBlack, 1);
  }
  for (double t : yt) {
    const int y = static_cast<int>(std::lround(f.Y(t)));
    cv.rect(f.left, y, f.right, y + 1, kGrid);
    const std::string l = logy ? fmt::format("{:.0e}", std::pow(10.0, t)) : fmt::format("{:g}", t);
    cv.text(l, f.left - 4 - Canvas::text_width(l, 1), y - 3, kBlack, 1);
  }
  box(cv, f);
  cv.text(xlabel, (f.left + f.right - Canvas::text_width(xlabel, 1)) / 2, f.bottom + 13, kBlack, 1);
  for (const auto& c : curves) {
    bool have = false;
    double ox = 0, oy = 0;
    for (size_t i = 0; i < c.x.size(); ++i) {
      if (!std::isfinite(c.x[i]) || !std::isfinite(c.y[i]) || (logy && c.y[i] <= 0)) { have = false; continue; }
      const double X = f.X(fx(c.x[i])), Y = f.Y(fy(c.y[i]));
      if (have) cv.line(ox, oy, X, Y, c.colour, 2, c.dash);
      if (c.markers) cv.dot(X, Y, 5, c.colour);
      if (!c.lo.empty()) {
        const double ylo = f.Y(std::max(fy(c.lo[i]), f.ymin)), yhi = f.Y(std::min(fy(c.hi[i]), f.ymax));
        cv.line(X, ylo, X, yhi, c.colour, 1);
        cv.line(X - 3, ylo, X + 3, ylo, c.colour, 1);
        cv.line(X - 3, yhi, X + 3, yhi, c.colour, 1);
      }
      ox = X, oy = Y, have = true;
    }
  }
}

const LabRow* find_row(const LabReport& r, const std::string& target, const std::string& strategy, int64_t rank) {
  for (const auto& row : r.rows)
    if (row.target == target && row.strategy == strategy && (rank < 0 || row.rank == rank)) return &row;
  return nullptr;
}

std::string short_strategy(const std::string& s) {
  return s == "random_global" ? "random" : s == "kmeans_global" ? "kmeans" : s;
}

}  // namespace

void write_lab_pictures(const LabReport& r, const std::string& dir) {
  const auto& targets = r.config.targets;
  const auto& pics = r.pictures;
  // 1. Quiver: the attraction displacement (mean over temperatures of b+ - x) on a 15 x 15 grid; arrows
  // scaled per target by the exact field's longest arrow; colour = cosine to the exact arrow.
  if (!pics.quivers.empty()) {
    std::map<std::string, double> longest;
    for (const auto& q : pics.quivers)
      if (q.label == "exact") longest[q.target] = q.arrows.norm(2, {1}).max().item<double>();
    panel_grid(dir + "/quiver.png", "attraction b+ - x (mean over tau); colour: cosine to exact (blue 1, red <= 0.5)",
               targets, pics.quivers, [&](Canvas& cv, const LabPictures::Quiver& q, int left, int top) {
                 auto pts = rows2(q.points), arr = rows2(q.arrows);
                 double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
                 for (const auto& p : pts) x0 = std::min<double>(x0, p[0]), x1 = std::max<double>(x1, p[0]), y0 = std::min<double>(y0, p[1]), y1 = std::max<double>(y1, p[1]);
                 auto f = square_frame(left, top, kPanel, x0, x1, y0, y1);
                 box(cv, f);
                 draw_data(cv, f, pics.data.at(q.target));
                 const double cell = (f.right - f.left) / 16.0, unit = 0.9 * cell / std::max(1e-12, longest[q.target]);
                 auto cosv = q.cosine.to(torch::kFloat64).contiguous();
                 for (size_t i = 0; i < pts.size(); ++i) {
                   const double cx = f.X(pts[i][0]), cy = f.Y(pts[i][1]);
                   double dx = arr[i][0] * unit, dy = -arr[i][1] * unit;
                   const double len = std::hypot(dx, dy);
                   if (len > 1.4 * cell) dx *= 1.4 * cell / len, dy *= 1.4 * cell / len;
                   const Rgb col = q.label == "exact" ? kBlack
                                                      : mix(series_colour(0), series_colour(1), (1 - cosv[i].item<double>()) / 0.5);
                   cv.arrow(cx, cy, cx + dx, cy + dy, col);
                 }
                 if (q.landmarks.defined())
                   for (const auto& p : rows2(q.landmarks))
                     if (f.inside(p[0], p[1])) cv.dot(f.X(p[0]), f.Y(p[1]), 4, kLandmark);
               });
  }
  // 2. Trajectories of the first particles under each pictured field, from the same start.
  if (!pics.paths.empty()) {
    panel_grid(dir + "/trajectories.png", "particle paths x <- x + eta V(x) from the same start (grey: data, black: end)",
               targets, pics.paths, [&](Canvas& cv, const LabPictures::Paths& p, int left, int top) {
                 auto data = pics.data.at(p.target);
                 auto all = torch::cat({data, p.trajectory.reshape({-1, 2})});
                 auto lo = std::get<0>(all.min(0)), hi = std::get<0>(all.max(0));
                 auto f = square_frame(left, top, kPanel, lo[0].item<double>(), hi[0].item<double>(), lo[1].item<double>(),
                                       hi[1].item<double>());
                 box(cv, f);
                 draw_data(cv, f, data);
                 const int64_t T = p.trajectory.size(0), B = p.trajectory.size(1);
                 auto tr = p.trajectory.to(torch::kFloat32).contiguous();
                 auto a = tr.accessor<float, 3>();
                 for (int64_t b = 0; b < B; ++b) {
                   const Rgb col = mix(series_colour(static_cast<size_t>(b % 6)), Rgb{255, 255, 255}, 0.25);
                   for (int64_t t = 1; t < T; ++t)
                     cv.line(f.X(a[t - 1][b][0]), f.Y(a[t - 1][b][1]), f.X(a[t][b][0]), f.Y(a[t][b][1]), col, 1);
                   cv.dot(f.X(a[0][b][0]), f.Y(a[0][b][1]), 3, kFloor);
                 }
                 for (int64_t b = 0; b < B; ++b) cv.dot(f.X(a[T - 1][b][0]), f.Y(a[T - 1][b][1]), 4, kBlack);
               });
  }
  // 3. Metrics against rank with error bars (mean +- std over seeds); exact field dashed, data floor dotted.
  std::vector<std::string> strategies;
  for (const auto& row : r.rows)
    if (row.field != "exact" && std::find(strategies.begin(), strategies.end(), row.strategy) == strategies.end())
      strategies.push_back(row.strategy);
  struct MetricPanel {
    std::string key, title, floor_key;
    bool complement, logy;
  };
  std::vector<MetricPanel> panels{{"attr_cos_grid", "1 - attraction cosine (grid)", "", true, true},
                                  {"attr_cos_samples", "1 - attraction cosine (samples)", "", true, true},
                                  {"traj_dev_mean", "trajectory deviation (mean over steps)", "", false, true},
                                  {"endpoint_sw_data", "flow endpoints: SW to data", "floor_sw_particles", false, false}};
  if (!r.config.skip_train) panels.push_back({"train_sw_data", "generator: SW to data", "floor_sw_generator", false, false});
  {
    const int pw = 300, ph = 210, gap = 30, head = 58;
    const int cols = static_cast<int>(panels.size()), rows = static_cast<int>(targets.size());
    Canvas cv(kLeftLabel + cols * (pw + gap) + 10, head + rows * (ph + gap));
    cv.text("metrics vs rank (landmarks M; minibatch: positives P), mean +- std over seeds", kLeftLabel, 8, kBlack, 2);
    int lx = kLeftLabel;
    for (size_t s = 0; s < strategies.size(); ++s) {
      cv.line(lx, 36, lx + 24, 36, series_colour(s), 2);
      lx += 30 + cv.text(short_strategy(strategies[s]), lx + 30, 32, kBlack, 1) + 20;
    }
    cv.line(lx, 36, lx + 24, 36, kBlack, 2, 4);
    lx += 30 + cv.text("exact field", lx + 30, 32, kBlack, 1) + 20;
    cv.line(lx, 36, lx + 24, 36, kFloor, 2, 2);
    cv.text("fresh data sample (floor)", lx + 30, 32, kBlack, 1);
    for (int ri = 0; ri < rows; ++ri) {
      const int top = head + ri * (ph + gap) + 14;
      cv.text(targets[ri], 6, top + ph / 2 + Canvas::text_width(targets[ri], 1) / 2, kBlack, 1, true);
      for (int ci = 0; ci < cols; ++ci) {
        const auto& P = panels[ci];
        std::vector<Curve> curves;
        double xlo = INFINITY, xhi = -INFINITY;
        for (size_t s = 0; s < strategies.size(); ++s) {
          Curve c{short_strategy(strategies[s]), series_colour(s), {}, {}, {}, {}};
          for (const auto& row : r.rows) {
            if (row.target != targets[ri] || row.strategy != strategies[s]) continue;
            auto it = row.metrics.find(P.key);
            if (it == row.metrics.end()) continue;
            const double m = it->second.mean(), sd = it->second.std();
            const double y = P.complement ? 1 - m : m;
            c.x.push_back(static_cast<double>(row.rank));
            c.y.push_back(P.logy ? std::max(y, 1e-9) : y);
            c.lo.push_back(P.logy ? std::max(y - sd, 1e-9) : y - sd);
            c.hi.push_back(std::max(y + sd, 1e-9));
            xlo = std::min(xlo, c.x.back()), xhi = std::max(xhi, c.x.back());
          }
          curves.push_back(c);
        }
        if (!std::isfinite(xlo)) continue;
        if (!P.complement && P.key != "traj_dev_mean") {
          if (const auto* ex = find_row(r, targets[ri], "exact", -1)) {
            const double y = ex->metrics.at(P.key).mean();
            curves.push_back({"exact", kBlack, {xlo, xhi}, {y, y}, {}, {}, 4, false});
          }
          if (!P.floor_key.empty()) {
            const double y = r.target_info.at(targets[ri]).at(P.floor_key).mean();
            curves.push_back({"floor", kFloor, {xlo, xhi}, {y, y}, {}, {}, 2, false});
          }
        }
        curve_panel(cv, kLeftLabel + ci * (pw + gap), top, pw, ph, P.title + (P.logy ? " (log)" : ""), "rank", curves, true,
                    P.logy);
      }
    }
    cv.save(dir + "/rank_curves.png");
  }
  // 4. Trajectory deviation from the exact flow against the step, one curve per rank (first strategy),
  // plus the largest minibatch.
  if (!r.config.strategies.empty()) {
    const std::string s0 = r.config.strategies.front();
    const int pw = 300, ph = 230, gap = 30;
    Canvas cv(20 + static_cast<int>(targets.size()) * (pw + gap), ph + 110);
    const std::string heading = fmt::format("mean distance to the exact flow's particles vs step ({} landmarks)", short_strategy(s0));
    cv.text(heading, 20, 8, kBlack, Canvas::text_width(heading, 2) + 40 < cv.w ? 2 : 1);
    const auto& ranks = r.config.ranks;
    int lx = 20;
    for (size_t k = 0; k < ranks.size(); ++k) {
      const Rgb col = mix(Rgb{158, 202, 225}, Rgb{8, 48, 107}, ranks.size() > 1 ? double(k) / double(ranks.size() - 1) : 1.0);
      cv.line(lx, 40, lx + 20, 40, col, 2);
      lx += 26 + cv.text(fmt::format("M={}", ranks[k]), lx + 26, 36, kBlack, 1) + 14;
    }
    if (!r.config.minibatch_sizes.empty()) {
      cv.line(lx, 40, lx + 20, 40, series_colour(1), 2, 4);
      cv.text(fmt::format("minibatch P={}", *std::max_element(r.config.minibatch_sizes.begin(), r.config.minibatch_sizes.end())),
              lx + 26, 36, kBlack, 1);
    }
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      std::vector<Curve> curves;
      for (size_t k = 0; k < ranks.size(); ++k) {
        const auto* row = find_row(r, targets[ti], s0, ranks[k]);
        if (!row || !row->lists.count("traj_dev_curve")) continue;
        const Rgb col = mix(Rgb{158, 202, 225}, Rgb{8, 48, 107}, ranks.size() > 1 ? double(k) / double(ranks.size() - 1) : 1.0);
        Curve c{fmt::format("M={}", ranks[k]), col, {}, {}, {}, {}, 0, false};
        const auto& list = row->lists.at("traj_dev_curve");
        for (size_t i = 0; i < list.size() && i < r.recorded_steps.size(); ++i)
          if (r.recorded_steps[i] > 0) c.x.push_back(static_cast<double>(r.recorded_steps[i])), c.y.push_back(list[i].mean());
        curves.push_back(c);
      }
      if (!r.config.minibatch_sizes.empty()) {
        const int64_t pmax = *std::max_element(r.config.minibatch_sizes.begin(), r.config.minibatch_sizes.end());
        if (const auto* row = find_row(r, targets[ti], "minibatch", pmax)) {
          Curve c{"minibatch", series_colour(1), {}, {}, {}, {}, 4, false};
          const auto& list = row->lists.at("traj_dev_curve");
          for (size_t i = 0; i < list.size() && i < r.recorded_steps.size(); ++i)
            if (r.recorded_steps[i] > 0) c.x.push_back(static_cast<double>(r.recorded_steps[i])), c.y.push_back(list[i].mean());
          curves.push_back(c);
        }
      }
      curve_panel(cv, 20 + static_cast<int>(ti) * (pw + gap), 72, pw, ph, targets[ti] + " (log)", "step", curves, false, true);
    }
    cv.save(dir + "/deviation_vs_step.png");
  }
}

}  // namespace driftx
