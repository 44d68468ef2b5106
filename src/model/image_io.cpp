#include "driftx/image_io.h"

#include <cstring>

#include "driftx/error.h"
#include "driftx/files.h"

// The only translation unit with the stb implementations. Static linkage keeps the symbols from
// clashing with another stb copy in a linked library; memory-only I/O because files go through
// write_file_atomic / read_file (atomic writes, errors that name the path).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace driftx {

namespace {

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

void write_png_grid(const std::string& path, const torch::Tensor& images, int64_t columns, int64_t padding) {
  DRIFTX_CHECK(images.defined() && images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3) &&
                   images.size(0) > 0 && images.size(2) > 0 && images.size(3) > 0,
               "png grid {}: images must be B x C x H x W with C = 1 or 3 and B >= 1, got {}", path,
               images.defined() ? shape_str(images.sizes()) : "none");
  DRIFTX_CHECK(columns >= 1, "png grid {}: columns must be >= 1, got {}", path, columns);
  DRIFTX_CHECK(padding >= 0, "png grid {}: padding must be >= 0, got {}", path, padding);
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  DRIFTX_CHECK(!torch::isnan(x).any().item<bool>(),
               "png grid {}: images contain NaN (did training diverge?)", path);
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t cols = std::min(columns, b);  // fewer images than columns: no empty tiles on the right
  const int64_t rows = (b + cols - 1) / cols;
  const int64_t gh = rows * (h + padding) + padding, gw = cols * (w + padding) + padding;
  DRIFTX_CHECK(gh <= (1 << 15) && gw <= (1 << 15), "png grid {}: grid of {} x {} pixels is too large: write "
               "fewer images or more columns", path, gh, gw);
  // [-1, 1] -> {0..255}; round-half-to-even maps 0 to 128.
  auto pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1});
  // Mid-gray background: MNIST digits sit on black, so a black border would make tiles merge.
  auto grid = torch::full({gh, gw, c}, 128, torch::kUInt8);
  for (int64_t k = 0; k < b; ++k) {
    const int64_t top = padding + (k / cols) * (h + padding), left = padding + (k % cols) * (w + padding);
    grid.narrow(0, top, h).narrow(1, left, w).copy_(pixels[k]);
  }
  write_png(path, grid);
}

void write_png(const std::string& path, const torch::Tensor& pixels) {
  DRIFTX_CHECK(pixels.dim() == 3 && pixels.scalar_type() == torch::kUInt8 && pixels.size(2) >= 1 && pixels.size(2) <= 4,
               "png {}: pixels must be H x W x C uint8 with C in 1..4, got {}", path, shape_str(pixels.sizes()));
  auto p = pixels.to(torch::kCPU).contiguous();
  const int h = static_cast<int>(p.size(0)), w = static_cast<int>(p.size(1)), c = static_cast<int>(p.size(2));
  std::string png;
  const int ok = stbi_write_png_to_func(append_bytes, &png, w, h, c, p.data_ptr<uint8_t>(), w * c);
  DRIFTX_CHECK(ok != 0 && !png.empty(), "png {}: PNG encoding failed", path);
  write_file_atomic(path, png);
}

torch::Tensor read_png(const std::string& path) {
  const std::string bytes = read_file(path);
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                              static_cast<int>(bytes.size()), &w, &h, &c, 0);
  DRIFTX_CHECK(data != nullptr, "read png {}: {} (is it a PNG file?)", path, stbi_failure_reason());
  auto out = torch::empty({h, w, c}, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), data, static_cast<size_t>(w) * h * c);
  stbi_image_free(data);
  return out;
}

}  // namespace driftx
