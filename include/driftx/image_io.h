// Images a person can look at: PNG grids of samples.
#pragma once

#include <string>

#include <torch/torch.h>

namespace driftx {

// Writes images (B x C x H x W, values in [-1, 1], C = 1 or 3) as one PNG grid with `columns` images
// per row and a 2-pixel border. Written atomically. Throws driftx::Error on bad shapes or I/O.
void write_png_grid(const std::string& path, const torch::Tensor& images, int64_t columns, int64_t padding = 2);

// Writes an H x W x C uint8 image (C = 1, 3 or 4) as PNG, atomically.
void write_png(const std::string& path, const torch::Tensor& pixels);
// Reads a PNG back as uint8 H x W x C (for tests and tools).
torch::Tensor read_png(const std::string& path);

}  // namespace driftx
