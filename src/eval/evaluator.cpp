#include "driftx/evaluator.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/sha256.h"
#include "driftx/weights.h"

namespace driftx {
namespace fs = std::filesystem;
namespace nn = torch::nn;

EvaluatorImpl::EvaluatorImpl() {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)));
  fc1 = register_module("fc1", nn::Linear(64 * 7 * 7, kEvaluatorFeatureDim));
  fc2 = register_module("fc2", nn::Linear(kEvaluatorFeatureDim, 10));
  dropout = register_module("dropout", nn::Dropout(0.3));
}

torch::Tensor EvaluatorImpl::features(const torch::Tensor& images) {
  DRIFTX_CHECK(images.dim() == 4 && images.size(1) == 1 && images.size(2) == 28 && images.size(3) == 28,
               "evaluator: expected N x 1 x 28 x 28 images in [-1, 1], got {}", shape_str(images.sizes()));
  auto x = torch::max_pool2d(torch::relu(conv1(images)), 2);
  x = torch::max_pool2d(torch::relu(conv2(x)), 2);
  return torch::relu(fc1(x.flatten(1)));
}

torch::Tensor EvaluatorImpl::head(const torch::Tensor& features) { return fc2(dropout(features)); }

torch::Tensor EvaluatorImpl::forward(const torch::Tensor& images) { return head(features(images)); }

std::string evaluator_architecture() {
  return "conv3x3(1->32) relu maxpool2 | conv3x3(32->64) relu maxpool2 | fc(3136->128) relu [features] | "
         "dropout(0.3) | fc(128->10)";
}

Evaluator train_evaluator(const Dataset& train, const EvaluatorTrainOptions& o) {
  DRIFTX_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0, "evaluator training: epochs, batch and lr must be positive "
               "(got {}, {}, {})", o.epochs, o.batch, o.lr);
  DRIFTX_CHECK(train.num_classes == 10, "evaluator training: {} has {} classes, the evaluator has 10", train.name,
               train.num_classes);
  // Initial weights and dropout masks come from the global generator, the batch order from its own.
  torch::manual_seed(o.seed);
  Evaluator model;
  model->train();
  auto order_gen = at::detail::createCPUGenerator(o.seed + 1);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(o.lr));
  const int64_t n = train.size(), per_epoch = (n + o.batch - 1) / o.batch, total = o.epochs * per_epoch;
  const auto images = train.images.to(torch::kFloat32).contiguous();
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto perm = torch::randperm(n, order_gen, torch::kLong);
    double loss_sum = 0;
    for (int64_t s = 0; s < n; s += o.batch, ++step) {
      // Cosine decay to 0: a few epochs reach the accuracy of a longer constant-rate run.
      const double lr = 0.5 * o.lr * (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total)));
      static_cast<torch::optim::AdamOptions&>(opt.param_groups()[0].options()).lr(lr);
      const auto idx = perm.slice(0, s, std::min(n, s + o.batch));
      const auto loss = torch::nn::functional::cross_entropy(model->forward(images.index_select(0, idx)),
                                                             train.labels.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    if (o.progress) o.progress(epoch, loss_sum / static_cast<double>(n));
  }
  model->eval();
  return model;
}

namespace {

template <typename F>
torch::Tensor batched(Evaluator& model, const torch::Tensor& images, int64_t batch, F&& f) {
  DRIFTX_CHECK(images.dim() == 4 && images.size(0) > 0, "evaluator: expected N x 1 x 28 x 28 images, got {}",
               shape_str(images.sizes()));
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += batch)
    parts.push_back(f(images.slice(0, s, std::min(images.size(0), s + batch)).to(torch::kCPU, torch::kFloat32)));
  return torch::cat(parts);
}

}  // namespace

torch::Tensor evaluator_features(Evaluator& model, const torch::Tensor& images, int64_t batch) {
  return batched(model, images, batch, [&](const torch::Tensor& x) { return model->features(x); });
}

torch::Tensor evaluator_logits(Evaluator& model, const torch::Tensor& images, int64_t batch) {
  return batched(model, images, batch, [&](const torch::Tensor& x) { return model->forward(x); });
}

double evaluator_accuracy(Evaluator& model, const torch::Tensor& images, const torch::Tensor& labels) {
  const auto pred = evaluator_logits(model, images).argmax(1);
  return pred.eq(labels.to(torch::kLong)).to(torch::kFloat64).mean().item<double>();
}

std::string resolve_models_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("DRIFTX_MODELS_DIR"); env && *env) return env;
#ifdef DRIFTX_SOURCE_DIR
  // The source tree's models/ only while that tree exists (a copied binary falls through to ./models).
  std::error_code ec;
  if (fs::is_directory(DRIFTX_SOURCE_DIR, ec)) return std::string(DRIFTX_SOURCE_DIR) + "/models";
#endif
  return "./models";
}

std::string evaluator_weights_path(const std::string& dataset, const std::string& models_dir) {
  return (fs::path(resolve_models_dir(models_dir)) / ("evaluator-" + dataset + ".pt")).string();
}

namespace {


nlohmann::json read_metadata(const std::string& dataset, const std::string& weights) {
  const std::string meta = weights_record_path(weights);
  std::error_code ec;
  DRIFTX_CHECK(fs::is_regular_file(weights, ec) && fs::is_regular_file(meta, ec),
               "no evaluator for {}: {} or {} is missing; run driftx evaluator train --dataset {} (or point "
               "--models-dir / DRIFTX_MODELS_DIR at the directory holding them)", dataset, weights, meta, dataset);
  auto j = read_json(meta);
  DRIFTX_CHECK(j.contains("sha256") && j["sha256"].is_string(), "{} has no \"sha256\" string: re-run driftx "
               "evaluator train --dataset {}", meta, dataset);
  return j;
}

}  // namespace

std::string save_evaluator(Evaluator& model, const std::string& dataset, const nlohmann::json& metadata,
                           const std::string& models_dir) {
  const std::string weights = evaluator_weights_path(dataset, models_dir);
  make_dirs(fs::path(weights).parent_path().string());
  nlohmann::json j = metadata;
  j["dataset"] = dataset;
  j["architecture"] = evaluator_architecture();
  j["feature_dim"] = kEvaluatorFeatureDim;
  const std::string sha = save_weights(*model, weights, j);
  return sha;
}

Evaluator load_evaluator(const std::string& dataset, const std::string& models_dir, nlohmann::json* metadata) {
  const std::string weights = evaluator_weights_path(dataset, models_dir);
  const auto meta = read_metadata(dataset, weights);
  const std::string bytes = read_file(weights);
  DRIFTX_CHECK(sha256_hex(bytes) == meta["sha256"].get<std::string>(),
               "evaluator weights {} do not match their recorded SHA-256: re-run driftx evaluator train --dataset {}",
               weights, dataset);
  DRIFTX_CHECK(meta.value("architecture", "") == evaluator_architecture() &&
                   meta.value("feature_dim", int64_t{0}) == kEvaluatorFeatureDim,
               "evaluator {} was trained for another architecture than this build's: re-run driftx evaluator train "
               "--dataset {}", weights, dataset);
  Evaluator model;
  load_weights(*model, bytes);
  model->eval();
  if (metadata) *metadata = meta;
  return model;
}

std::string evaluator_sha256(const std::string& dataset, const std::string& models_dir) {
  const std::string weights = evaluator_weights_path(dataset, models_dir);
  return read_metadata(dataset, weights)["sha256"].get<std::string>();
}

}  // namespace driftx
