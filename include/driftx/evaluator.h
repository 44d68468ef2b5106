// The evaluator: a small CNN classifier for 28x28x1 images whose penultimate layer is the feature
// space of FID / KID / precision-recall (SPEC §6). Its weights ship in models/ pinned by SHA-256, so
// numbers from different machines use the same network; it must never be a training feature map.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "driftx/data.h"

namespace driftx {

constexpr int64_t kEvaluatorFeatureDim = 128;

// conv3x3 1->32, ReLU, maxpool2 -> conv3x3 32->64, ReLU, maxpool2 -> fc 3136->128, ReLU (features)
// -> dropout 0.3 (training only) -> fc 128->10. Input: B x 1 x 28 x 28 in [-1, 1].
struct EvaluatorImpl : torch::nn::Module {
  EvaluatorImpl();
  torch::Tensor features(const torch::Tensor& images);  // B x 128
  torch::Tensor forward(const torch::Tensor& images);   // B x 10 logits
  torch::Tensor head(const torch::Tensor& features);    // features -> logits

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Evaluator);

std::string evaluator_architecture();  // one line, recorded in the .json

struct EvaluatorTrainOptions {
  int64_t epochs = 5;    // 3 reach 98.8% on MNIST, 5 reach 99.3% (~3 min on one core)
  int64_t batch = 128;
  double lr = 2e-3;      // Adam, cosine-decayed to 0 over the run
  uint64_t seed = 0;
  // Called after each epoch with (epoch, mean training loss).
  std::function<void(int64_t, double)> progress;
};

// Deterministic for a given seed and thread count: weights from a seeded generator, batch order from
// a seeded permutation per epoch, dropout from the same seeded generator.
Evaluator train_evaluator(const Dataset& train, const EvaluatorTrainOptions& options);

// Batched, no grad: features (N x 128) / logits (N x 10) of N x 1 x 28 x 28 images.
torch::Tensor evaluator_features(Evaluator& model, const torch::Tensor& images, int64_t batch = 1000);
torch::Tensor evaluator_logits(Evaluator& model, const torch::Tensor& images, int64_t batch = 1000);
double evaluator_accuracy(Evaluator& model, const torch::Tensor& images, const torch::Tensor& labels);

// Where evaluator weights live: `flag` when not empty, else $DRIFTX_MODELS_DIR, else "<repo>/models"
// (set at build time, while the source tree exists), else "./models".
std::string resolve_models_dir(const std::string& flag = "");
std::string evaluator_weights_path(const std::string& dataset, const std::string& models_dir = "");

// Writes <models_dir>/evaluator-<dataset>.pt (a torch::save archive) and .json ({sha256, plus
// `metadata`}). Returns the SHA-256 of the weights file.
std::string save_evaluator(Evaluator& model, const std::string& dataset, const nlohmann::json& metadata,
                           const std::string& models_dir = "");

// Loads the evaluator for a dataset in eval mode after checking the weights against the SHA-256
// recorded in the .json; a mismatch or missing file is a driftx::Error saying how to re-create it.
Evaluator load_evaluator(const std::string& dataset, const std::string& models_dir = "", nlohmann::json* metadata = nullptr);

// The recorded SHA-256 of a dataset's evaluator weights (from the .json), so the trainer can refuse
// the evaluator as a training feature map.
std::string evaluator_sha256(const std::string& dataset, const std::string& models_dir = "");

}  // namespace driftx
