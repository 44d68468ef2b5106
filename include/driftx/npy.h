// NumPy .npy files: how tensors move between driftx and Python.
// Supported: dtypes float32 ('<f4'), float64 ('<f8'), int64 ('<i8'); C order; format versions 1.0 and
// 2.0 (3.0 read too: same layout, utf-8 header). Anything else is a driftx::Error naming the file.
#pragma once

#include <string>

#include <torch/torch.h>

namespace driftx {

// Reads a whole .npy file into a contiguous CPU tensor of the file's dtype and shape.
torch::Tensor read_npy(const std::string& path);

// Writes a tensor (any device; float32, float64 or int64) as .npy version 1.0 (2.0 when the header
// needs it). The write goes to a temporary file that is renamed into place.
void write_npy(const std::string& path, const torch::Tensor& tensor);

// Checks for field inputs: `what` names the input in messages (for example "--gen G.npy").
// 2-D with the given number of columns (cols < 0: any), finite values; converts to float32/float64 as
// `dtype`. Throws driftx::Error with the offending name and shape.
torch::Tensor require_matrix(const torch::Tensor& t, const std::string& what, int64_t cols = -1,
                             torch::Dtype dtype = torch::kFloat32);
void require_finite(const torch::Tensor& t, const std::string& what);

}  // namespace driftx
