// The feature encoder (issue 11): a small convolutional masked autoencoder per dataset, trained
// self-supervised on the training images only (never on labels, never the FID evaluator), shipped in
// models/encoder-<dataset>.pt pinned by SHA-256 like the evaluator. Its layer maps give the
// "encoder:<dataset>/<group>" feature groups of the trainer (the papers' recipe: per-location vectors,
// global mean/std and 2x2 / 4x4 patch mean/std per layer).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "driftx/data.h"

namespace driftx {

// Encoder (features): l1 conv3x3/2 1->32 GELU (32x14x14) | l2 conv3x3/2 32->64 GELU (64x7x7) |
// l3 conv3x3/2 64->64 GELU (64x4x4). Decoder (training only): convT3x3/2 64->64 GELU (7x7) |
// convT4x4/2 64->32 GELU (14x14) | convT4x4/2 32->1 (28x28). Input N x 1 x 28 x 28 in [-1, 1].
struct EncoderImpl : torch::nn::Module {
  EncoderImpl();
  std::vector<torch::Tensor> layers(const torch::Tensor& images);  // {l1, l2, l3} maps
  torch::Tensor decode(const torch::Tensor& top);                 // l3 map -> N x 1 x 28 x 28
  torch::Tensor forward(const torch::Tensor& images);             // reconstruction

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::ConvTranspose2d dec1{nullptr}, dec2{nullptr}, dec3{nullptr};
};
TORCH_MODULE(Encoder);

std::string encoder_architecture();  // one line, recorded in the .json and checked when loading

struct EncoderTrainOptions {
  int64_t epochs = 5;        // ~40 s each on one thread of this machine
  int64_t batch = 128;
  double lr = 2e-3;          // AdamW, cosine-decayed to 0 over the run
  double mask_ratio = 0.5;   // fraction of 4x4 patches blanked (set to 0) in the input
  int64_t patch = 4;         // mask patch size (divides 28)
  int64_t max_steps = 0;     // > 0: stop after that many steps (tests)
  uint64_t seed = 0;
  std::function<void(int64_t epoch, double mean_loss)> progress;  // after each epoch
};

// Masked-autoencoder training on `images` (N x 1 x 28 x 28; no labels reach it). Deterministic for a
// seed and thread count: weights from torch::manual_seed(seed), batch order and masks from seeded
// generators of their own. The loss is the MSE of the reconstruction over all pixels.
Encoder train_encoder(const torch::Tensor& images, const EncoderTrainOptions& options,
                      std::vector<double>* step_losses = nullptr);

// Images with each patch x patch cell set to 0 with probability `ratio` (one mask per image).
torch::Tensor mask_images(const torch::Tensor& images, double ratio, int64_t patch, at::Generator& gen);

// Mean squared reconstruction error (no grad, batched) of `images`, masked with a generator seeded by
// `seed` (ratio 0: the clean images).
double reconstruction_error(Encoder& model, const torch::Tensor& images, double mask_ratio, int64_t patch, uint64_t seed);

struct LinearProbeOptions {
  int64_t train_samples = 10000;  // seeded subset of the training split
  int64_t epochs = 20, batch = 256;
  double lr = 1e-3, weight_decay = 1e-4;
  uint64_t seed = 0;
};
struct LinearProbeResult {
  double train_accuracy = 0, test_accuracy = 0;
  int64_t train_samples = 0, test_samples = 0, feature_dim = 0;
  std::string features;  // which frozen features
};
// Logistic regression (softmax, Adam) on the frozen, standardised l2 map (64 x 7 x 7 = 3136 values):
// fitted on a seeded subset of `train`, scored on all of `test`. The only place labels touch the encoder.
LinearProbeResult linear_probe(Encoder& model, const Dataset& train, const Dataset& test, const LinearProbeOptions& o);

// <models_dir>/encoder-<dataset>.pt (models_dir as resolve_models_dir).
std::string encoder_weights_path(const std::string& dataset, const std::string& models_dir = "");

// Writes `weights` (a torch::save archive, must end in .pt) and the .json beside it ({sha256,
// architecture, dataset} + `metadata`); refuses to overwrite an evaluator. Returns the SHA-256.
// Refuses a destination save_encoder would refuse (not .pt, or an evaluator's file): called before
// training, so a wrong --out costs nothing.
void check_encoder_destination(const std::string& weights);
std::string save_encoder(Encoder& model, const std::string& dataset, const nlohmann::json& metadata,
                         const std::string& weights);

// Loads encoder-<dataset>.pt in eval mode with frozen parameters after checking its SHA-256 against the
// .json and the architecture against this build; refuses a file that is an evaluator.
Encoder load_encoder(const std::string& dataset, const std::string& models_dir = "", nlohmann::json* metadata = nullptr);

// ---- feature groups ------------------------------------------------------------------------------
// A group of an encoder layer: `count` vectors of `dim` values per image, flattened count-major
// (vector k is values [k*dim, (k+1)*dim) of the group's row).
struct EncoderGroup {
  std::string name;  // "l2.loc", "l1.patch2", ...
  int layer;         // 0-based layer index
  std::string kind;  // loc | mean_std | patch2 | patch4
  int64_t count, dim;
};
// Every group of the 28 x 28 encoder, in the order "encoder:<dataset>" expands to.
const std::vector<EncoderGroup>& encoder_groups();
const EncoderGroup& encoder_group(const std::string& name);  // one-line error for an unknown name

// One group of the dataset's shipped encoder for images N x 1 x 28 x 28, N x (count*dim), differentiable
// through `images`. The encoder runs once per images tensor: further groups of the same tensor (same
// object and version, same grad mode, same thread) reuse its layer maps.
torch::Tensor encoder_group_features(const torch::Tensor& images, const std::string& dataset, const std::string& group);

// Drops this thread's cached layer maps (dataset_features calls it: a chunk's maps are large).
void clear_encoder_cache();

// How many encoder forward passes this thread ran for feature groups (tests check the per-call cache).
int64_t encoder_forward_count();

}  // namespace driftx
