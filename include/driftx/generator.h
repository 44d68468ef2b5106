// The one-step generator x = f(eps[, class, alpha]) (SPEC §1, §7 calibration architecture).
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

namespace driftx {

struct GeneratorConfig {
  int64_t noise_dim = 64;
  int64_t channels = 1;        // image channels: 1 (MNIST) or 3 (32x32x3 ready)
  int64_t image_size = 28;     // must be divisible by 4
  int64_t num_classes = 0;     // 0: unconditional; else a class embedding is added to the noise
  int64_t width = 128;         // channels of the first feature map (image_size/4 square)
  bool alpha_conditioning = false;  // CFG: an embedding of (alpha - 1) is added to the noise

  nlohmann::json to_json() const;
  static GeneratorConfig from_json(const nlohmann::json& j);  // throws driftx::Error on bad fields
};

// noise (+ class embedding + alpha embedding) -> linear width x s x s -> ReLU ->
// convT 4/2 -> GroupNorm -> ReLU -> convT 4/2 -> GroupNorm -> ReLU -> conv 3x3 -> tanh.
// GroupNorm (not BatchNorm) keeps sampling identical in train and eval mode and exportable.
struct GeneratorImpl : torch::nn::Module {
  explicit GeneratorImpl(GeneratorConfig config);

  // z: B x noise_dim; labels: B int64 (required iff num_classes > 0); alpha: B float (optional,
  // only with alpha_conditioning; absent means alpha = 1). Returns B x C x H x W in [-1, 1].
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& labels = {}, const torch::Tensor& alpha = {});

  const GeneratorConfig& config() const { return config_; }

  GeneratorConfig config_;
  torch::nn::Embedding class_embed{nullptr};
  torch::nn::Linear alpha_embed{nullptr}, fc{nullptr};
  torch::nn::ConvTranspose2d up1{nullptr}, up2{nullptr};
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d out{nullptr};
};
TORCH_MODULE(Generator);

// A TorchScript module with the generator's weights and forward(z, y=None, alpha=None), loadable by
// Python's torch.jit.load and C++'s torch::jit::load, numerically identical to the C++ module.
torch::jit::Module export_generator(Generator& generator);

// n samples in batches from one seeded noise stream, no grad, on the CPU. Conditional generators get
// the classes in turn (0, 1, ..., C-1, 0, ...), written to `labels` when given; alpha-conditioned
// generators get `alpha` (must be 1 otherwise).
torch::Tensor generate_samples(Generator& generator, int64_t n, uint64_t seed, double alpha = 1.0, int64_t batch = 500,
                               torch::Tensor* labels = nullptr);

// Copies every parameter and buffer of `src` into `dst` (same architecture): EMA snapshots, loading.
void copy_parameters(torch::nn::Module& dst, const torch::nn::Module& src);

}  // namespace driftx
