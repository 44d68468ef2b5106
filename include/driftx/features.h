// Feature maps phi: named groups computed from images (B x C x H x W in [-1, 1]). One function per
// group, used by both fields, the trainer and the fidelity tool (SPEC §2 feature sets).
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace driftx {

// Group names:
//   pixels        the image itself, C*H*W
//   pool2, pool4  2x2 / 4x4 average-pooled image, C*H*W/4 and C*H*W/16
//   mean_std      global per-channel mean and std, 2C
//   patch2_stats  per-channel mean and std over each 2x2 patch grid cell of the (H/2 x W/2) grid, 2*C*H*W/4
//   patch4_stats  the same over 4x4 patches, 2*C*H*W/16
//   sq_mean       per-channel mean of x^2, C
// "multiscale" expands to pixels,pool2,pool4,mean_std,patch2_stats,patch4_stats,sq_mean.
//   torchscript:PATH   a frozen TorchScript encoder (exported from Python) mapping images to one tensor or
//                      a list of tensors; output k becomes group "torchscript:PATH#k" (flattened per sample).
//                      Gradients flow through it to the images; its parameters are never trained.
std::vector<std::string> feature_group_names();
std::vector<std::string> parse_feature_groups(const std::string& spec);  // "pixels,pool2,pool4" / "multiscale"

// Expands torchscript:PATH entries into one group per encoder output by running the encoder once on
// `probe` (a few images of the dataset's shape). Other groups pass through unchanged.
std::vector<std::string> expand_feature_groups(const std::vector<std::string>& groups, const torch::Tensor& probe);

// TorchScript encoders are loaded once per path and kept for the process; this forgets them (a file
// rewritten under the same path is then loaded again). For tests and the fuzz target.
void clear_feature_encoders();

// One group of features, B x D, differentiable through `images`.
torch::Tensor image_features(const torch::Tensor& images, const std::string& group);

// How many vectors a group's row is made of (SPEC §2 "every location's C-vector"): an encoder group's
// count (per-location vectors, per-patch mean/std vectors; encoder.h), 1 for every other group. Vector k
// of a row is values [k*D/V, (k+1)*D/V). The trainer's per-location fields run one kernel per vector.
int64_t feature_vectors(const std::string& group);

// The dimension D of a group for images of C x H x W.
int64_t feature_dim(const std::string& group, int64_t channels, int64_t height, int64_t width);

// A group computed for a whole dataset in chunks (no grad), N x D float32.
torch::Tensor dataset_features(const torch::Tensor& images, const std::string& group, int64_t chunk = 8192);

// Several groups in one pass over the dataset, one N x D_g float32 tensor per group. The encoder groups of
// one dataset share each chunk's forward pass (encoder.h's layer cache): all ten MNIST encoder groups cost
// one encoder pass over the data instead of ten.
std::vector<torch::Tensor> dataset_features(const torch::Tensor& images, const std::vector<std::string>& groups,
                                            int64_t chunk = 8192);

}  // namespace driftx
