#include "report/canvas.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "driftx/image_io.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace driftx {

Canvas::Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_) * h_ * 3, 255) {}

void Canvas::set(int x, int y, const Rgb& c) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  std::copy(c.begin(), c.end(), px.begin() + (static_cast<size_t>(y) * w + x) * 3);
}

void Canvas::rect(int x0, int y0, int x1, int y1, const Rgb& c) {
  for (int y = std::max(0, y0); y < std::min(h, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(w, x1); ++x) set(x, y, c);
}

void Canvas::dot(double x, double y, int size, const Rgb& c) {
  const int ix = static_cast<int>(std::lround(x)) - size / 2, iy = static_cast<int>(std::lround(y)) - size / 2;
  rect(ix, iy, ix + size, iy + size, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, const Rgb& c, int thick, int dash) {
  const int steps = static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))) + 1;
  for (int i = 0; i <= steps; ++i) {
    if (dash > 0 && (i / dash) % 2 == 1) continue;
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    rect(x - thick / 2, y - thick / 2, x - thick / 2 + thick, y - thick / 2 + thick, c);
  }
}

void Canvas::arrow(double x0, double y0, double x1, double y1, const Rgb& c) {
  line(x0, y0, x1, y1, c, 1);
  const double len = std::hypot(x1 - x0, y1 - y0);
  if (len < 2) return;
  const double ux = (x1 - x0) / len, uy = (y1 - y0) / len, head = std::min(5.0, 0.4 * len);
  for (double s : {-1.0, 1.0}) {
    const double ca = std::cos(0.45), sa = s * std::sin(0.45);
    line(x1, y1, x1 - head * (ux * ca - uy * sa), y1 - head * (uy * ca + ux * sa), c, 1);
  }
}

int Canvas::text(const std::string& s, int x, int y, const Rgb& c, int scale, bool vertical) {
  std::vector<char> buf(s.begin(), s.end());
  buf.push_back('\0');
  std::vector<float> vb(s.size() * 300 + 64);
  const int quads = stb_easy_font_print(0, 0, buf.data(), nullptr, vb.data(), static_cast<int>(vb.size() * sizeof(float)));
  for (int q = 0; q < quads; ++q) {
    const float* v = &vb[static_cast<size_t>(q) * 16];  // 4 vertices x (x, y, z, rgba as one float)
    const float qx0 = v[0], qy0 = v[1], qx1 = v[8], qy1 = v[9];
    if (!vertical) {
      rect(x + static_cast<int>(qx0 * scale), y + static_cast<int>(qy0 * scale), x + static_cast<int>(qx1 * scale),
           y + static_cast<int>(qy1 * scale), c);
    } else {  // rotated 90 degrees counter-clockwise, reading bottom to top, (x, y) = bottom-left
      rect(x + static_cast<int>(qy0 * scale), y - static_cast<int>(qx1 * scale), x + static_cast<int>(qy1 * scale),
           y - static_cast<int>(qx0 * scale), c);
    }
  }
  return text_width(s, scale);
}

int Canvas::text_width(const std::string& s, int scale) {
  std::vector<char> buf(s.begin(), s.end());
  buf.push_back('\0');
  return stb_easy_font_width(buf.data()) * scale;
}

torch::Tensor Canvas::image() const {
  auto out = torch::empty({h, w, 3}, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), px.data(), px.size());
  return out;
}

void Canvas::save(const std::string& path) const { write_png(path, image()); }

}  // namespace driftx
