// A pixel canvas for the PNG pictures (src/report/plot.cpp's line plots, src/lab/lab_plot.cpp's lab
// figures): filled rectangles, lines (optionally dashed), arrows, and text from stb_easy_font, so the
// pictures need nothing beyond what the build has. Private to the library (src/, not include/).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace driftx {

using Rgb = std::array<uint8_t, 3>;

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;  // h x w x 3, white to start
  Canvas(int w_, int h_);
  void set(int x, int y, const Rgb& c);
  void rect(int x0, int y0, int x1, int y1, const Rgb& c);  // inclusive-exclusive
  void dot(double x, double y, int size, const Rgb& c);      // a size x size square centred at (x, y)
  // dash > 0: on/off segments of `dash` pixels.
  void line(double x0, double y0, double x1, double y1, const Rgb& c, int thick, int dash = 0);
  void arrow(double x0, double y0, double x1, double y1, const Rgb& c);  // 1 px, head at (x1, y1)
  // Text with its top-left corner at (x, y) (vertical: bottom-left, reading bottom to top), each font
  // unit `scale` pixels; returns the width drawn.
  int text(const std::string& s, int x, int y, const Rgb& c, int scale = 2, bool vertical = false);
  static int text_width(const std::string& s, int scale = 2);
  torch::Tensor image() const;  // H x W x 3 uint8
  void save(const std::string& path) const;  // PNG
};

}  // namespace driftx
