#include "driftx/encoder.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/sha256.h"
#include "driftx/weights.h"

namespace driftx {
namespace fs = std::filesystem;
namespace nn = torch::nn;

EncoderImpl::EncoderImpl() {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 3).stride(2).padding(1)));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 3).stride(2).padding(1)));
  conv3 = register_module("conv3", nn::Conv2d(nn::Conv2dOptions(64, 64, 3).stride(2).padding(1)));
  dec1 = register_module("dec1", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(64, 64, 3).stride(2).padding(1)));
  dec2 = register_module("dec2", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(64, 32, 4).stride(2).padding(1)));
  dec3 = register_module("dec3", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(32, 1, 4).stride(2).padding(1)));
}

namespace {

void check_images(const torch::Tensor& images) {
  DRIFTX_CHECK(images.dim() == 4 && images.size(1) == 1 && images.size(2) == 28 && images.size(3) == 28,
               "encoder: expected N x 1 x 28 x 28 images in [-1, 1], got {}", shape_str(images.sizes()));
}

}  // namespace

std::vector<torch::Tensor> EncoderImpl::layers(const torch::Tensor& images) {
  check_images(images);
  auto l1 = torch::gelu(conv1(images));
  auto l2 = torch::gelu(conv2(l1));
  auto l3 = torch::gelu(conv3(l2));
  return {l1, l2, l3};
}

torch::Tensor EncoderImpl::decode(const torch::Tensor& top) {
  return dec3(torch::gelu(dec2(torch::gelu(dec1(top)))));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& images) { return decode(layers(images).back()); }

std::string encoder_architecture() {
  return "conv3x3/2(1->32) gelu [l1 32x14x14] | conv3x3/2(32->64) gelu [l2 64x7x7] | conv3x3/2(64->64) gelu "
         "[l3 64x4x4] | decoder convT3x3/2(64->64) gelu, convT4x4/2(64->32) gelu, convT4x4/2(32->1)";
}

torch::Tensor mask_images(const torch::Tensor& images, double ratio, int64_t patch, at::Generator& gen) {
  DRIFTX_CHECK(ratio >= 0 && ratio < 1, "encoder: --mask-ratio must be in [0, 1), got {}", ratio);
  DRIFTX_CHECK(patch >= 1 && images.size(2) % patch == 0 && images.size(3) % patch == 0,
               "encoder: mask patch {} must divide the image size {}x{}", patch, images.size(2), images.size(3));
  if (ratio == 0) return images;
  const int64_t h = images.size(2) / patch, w = images.size(3) / patch;
  auto keep = (torch::rand({images.size(0), 1, h, w}, gen) >= ratio).to(images.scalar_type());
  keep = keep.repeat_interleave(patch, 2).repeat_interleave(patch, 3);
  return images * keep;  // masked cells read 0 (mid-grey), distinct from the background -1
}

Encoder train_encoder(const torch::Tensor& images_in, const EncoderTrainOptions& o, std::vector<double>* step_losses) {
  check_images(images_in);
  DRIFTX_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && o.max_steps >= 0,
               "encoder training: epochs, batch and lr must be positive (got {}, {}, {})", o.epochs, o.batch, o.lr);
  const auto images = images_in.to(torch::kCPU, torch::kFloat32).contiguous();
  Encoder model{nullptr};
  {
    static std::mutex init_mutex;  // the global generator: concurrent trainers must not interleave draws
    std::lock_guard<std::mutex> lock(init_mutex);
    torch::manual_seed(o.seed);
    model = Encoder();
  }
  model->train();
  auto order_gen = at::detail::createCPUGenerator(o.seed + 1);
  auto mask_gen = at::detail::createCPUGenerator(o.seed + 2);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(1e-4));
  const int64_t n = images.size(0), per_epoch = (n + o.batch - 1) / o.batch;
  const int64_t total = o.max_steps > 0 ? std::min(o.max_steps, o.epochs * per_epoch) : o.epochs * per_epoch;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= o.epochs && step < total; ++epoch) {
    const auto perm = torch::randperm(n, order_gen, torch::kLong);
    double loss_sum = 0;
    int64_t seen = 0;
    for (int64_t s = 0; s < n && step < total; s += o.batch, ++step) {
      const double lr = 0.5 * o.lr * (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total)));
      static_cast<torch::optim::AdamWOptions&>(opt.param_groups()[0].options()).lr(lr);
      const auto x = images.index_select(0, perm.slice(0, s, std::min(n, s + o.batch)));
      const auto loss = torch::mse_loss(model->forward(mask_images(x, o.mask_ratio, o.patch, mask_gen)), x);
      opt.zero_grad();
      loss.backward();
      opt.step();
      const double l = loss.item<double>();
      if (step_losses) step_losses->push_back(l);
      loss_sum += l * static_cast<double>(x.size(0));
      seen += x.size(0);
    }
    if (o.progress) o.progress(epoch, loss_sum / static_cast<double>(std::max<int64_t>(1, seen)));
  }
  model->eval();
  for (auto p : model->parameters()) p.requires_grad_(false);
  return model;
}

double reconstruction_error(Encoder& model, const torch::Tensor& images, double mask_ratio, int64_t patch, uint64_t seed) {
  check_images(images);
  torch::NoGradGuard no_grad;
  model->eval();
  auto gen = at::detail::createCPUGenerator(seed);
  double sum = 0;
  for (int64_t s = 0; s < images.size(0); s += 1000) {
    const auto x = images.slice(0, s, std::min(images.size(0), s + 1000)).to(torch::kCPU, torch::kFloat32);
    sum += (model->forward(mask_images(x, mask_ratio, patch, gen)) - x).pow(2).sum().item<double>();
  }
  return sum / static_cast<double>(images.numel());
}

namespace {

torch::Tensor probe_features(Encoder& model, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += 1000)
    parts.push_back(model->layers(images.slice(0, s, std::min(images.size(0), s + 1000)).to(torch::kFloat32))[1].flatten(1));
  return torch::cat(parts);
}

}  // namespace

LinearProbeResult linear_probe(Encoder& model, const Dataset& train, const Dataset& test, const LinearProbeOptions& o) {
  DRIFTX_CHECK(o.train_samples >= 1 && o.epochs >= 1 && o.batch >= 1 && o.lr > 0,
               "linear probe: samples, epochs, batch and lr must be positive");
  model->eval();
  torch::Tensor labels;
  const auto xs = seeded_subset(train, o.train_samples, o.seed, &labels);
  auto ftr = probe_features(model, xs);
  auto fte = probe_features(model, test.images);
  const auto mean = ftr.mean(0, true);
  const auto std = (ftr - mean).pow(2).mean(0, true).sqrt().clamp_min(1e-4);
  ftr = (ftr - mean) / std;
  fte = (fte - mean) / std;
  torch::Tensor W, b;
  {
    auto gen = at::detail::createCPUGenerator(o.seed + 11);
    W = (torch::randn({ftr.size(1), train.num_classes}, gen) * 0.01).requires_grad_(true);
    b = torch::zeros({train.num_classes}).requires_grad_(true);
  }
  torch::optim::AdamW opt(std::vector<torch::Tensor>{W, b}, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  auto order_gen = at::detail::createCPUGenerator(o.seed + 12);
  const int64_t n = ftr.size(0);
  const auto y = labels.to(torch::kLong);
  for (int64_t e = 0; e < o.epochs; ++e) {
    const auto perm = torch::randperm(n, order_gen, torch::kLong);
    for (int64_t s = 0; s < n; s += o.batch) {
      const auto idx = perm.slice(0, s, std::min(n, s + o.batch));
      auto loss = torch::nn::functional::cross_entropy(torch::addmm(b, ftr.index_select(0, idx), W), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  torch::NoGradGuard no_grad;
  LinearProbeResult r;
  r.train_accuracy = torch::addmm(b, ftr, W).argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
  r.test_accuracy = torch::addmm(b, fte, W).argmax(1).eq(test.labels.to(torch::kLong)).to(torch::kFloat64).mean().item<double>();
  r.train_samples = n;
  r.test_samples = fte.size(0);
  r.feature_dim = ftr.size(1);
  r.features = "l2 map (64x7x7), standardised";
  return r;
}

std::string encoder_weights_path(const std::string& dataset, const std::string& models_dir) {
  return (fs::path(resolve_models_dir(models_dir)) / ("encoder-" + dataset + ".pt")).string();
}

namespace {


bool ends_with_pt(const std::string& p) { return p.size() > 3 && p.compare(p.size() - 3, 3, ".pt") == 0; }

// SHA-256 of every shipped evaluator (those that exist).
std::vector<std::string> evaluator_digests() {
  std::vector<std::string> out;
  for (const auto& d : dataset_names()) {
    try {
      out.push_back(evaluator_sha256(d));
    } catch (const Error&) {
    }
  }
  return out;
}

}  // namespace

void check_encoder_destination(const std::string& weights) {
  DRIFTX_CHECK(ends_with_pt(weights), "encoder: --out must name a .pt file (its .json goes beside it), got '{}'", weights);
  for (const auto& d : dataset_names()) {
    const auto eval = fs::weakly_canonical(evaluator_weights_path(d));
    DRIFTX_CHECK(fs::weakly_canonical(weights) != eval,
                 "encoder: --out {} is the FID evaluator of {}; the encoder must never replace the evaluator", weights, d);
  }
}

std::string save_encoder(Encoder& model, const std::string& dataset, const nlohmann::json& metadata,
                         const std::string& weights) {
  check_encoder_destination(weights);
  if (fs::path(weights).has_parent_path()) make_dirs(fs::path(weights).parent_path().string());
  nlohmann::json j = metadata;
  j["dataset"] = dataset;
  j["architecture"] = encoder_architecture();
  return save_weights(*model, weights, j);
}

Encoder load_encoder(const std::string& dataset, const std::string& models_dir, nlohmann::json* metadata) {
  const std::string weights = encoder_weights_path(dataset, models_dir);
  const std::string meta_path = weights_record_path(weights);
  std::error_code ec;
  DRIFTX_CHECK(fs::is_regular_file(weights, ec) && fs::is_regular_file(meta_path, ec),
               "no encoder for {}: {} or {} is missing; run driftx encoder train --dataset {} (or point --models-dir / "
               "DRIFTX_MODELS_DIR at the directory holding them)", dataset, weights, meta_path, dataset);
  const auto meta = read_json(meta_path);
  DRIFTX_CHECK(meta.contains("sha256") && meta["sha256"].is_string(),
               "{} has no \"sha256\" string: re-run driftx encoder train --dataset {}", meta_path, dataset);
  const std::string bytes = read_file(weights);
  const std::string sha = sha256_hex(bytes);
  DRIFTX_CHECK(sha == meta["sha256"].get<std::string>(),
               "encoder weights {} do not match their recorded SHA-256: re-run driftx encoder train --dataset {}", weights, dataset);
  for (const auto& e : evaluator_digests())
    DRIFTX_CHECK(sha != e, "encoder {} is the FID evaluator; a training feature map must never be the evaluation network",
                 weights);
  DRIFTX_CHECK(meta.value("architecture", "") == encoder_architecture(),
               "encoder {} was trained for another architecture than this build's: re-run driftx encoder train --dataset {}",
               weights, dataset);
  Encoder model;
  load_weights(*model, bytes);
  model->eval();
  for (auto p : model->parameters()) p.requires_grad_(false);
  if (metadata) *metadata = meta;
  return model;
}

// ---- feature groups ------------------------------------------------------------------------------

const std::vector<EncoderGroup>& encoder_groups() {
  // Layer sizes for 28 x 28 input: l1 32 x 14 x 14, l2 64 x 7 x 7, l3 64 x 4 x 4. Patches tile the map
  // with partial cells at the border (ceil: 7 -> 4 cells of 2, 7 -> 2 cells of 4). Per-location vectors
  // of l2 and l3 only: l1's would be 196 x 32 = 6272 values per image for little more than its patches.
  static const std::vector<EncoderGroup> groups{
      {"l1.mean_std", 0, "mean_std", 1, 64},  {"l1.patch2", 0, "patch2", 49, 64},  {"l1.patch4", 0, "patch4", 16, 64},
      {"l2.loc", 1, "loc", 49, 64},           {"l2.mean_std", 1, "mean_std", 1, 128},
      {"l2.patch2", 1, "patch2", 16, 128},    {"l2.patch4", 1, "patch4", 4, 128},
      {"l3.loc", 2, "loc", 16, 64},           {"l3.mean_std", 2, "mean_std", 1, 128},
      {"l3.patch2", 2, "patch2", 4, 128},
  };
  return groups;
}

const EncoderGroup& encoder_group(const std::string& name) {
  for (const auto& g : encoder_groups())
    if (g.name == name) return g;
  std::string names;
  for (const auto& g : encoder_groups()) names += (names.empty() ? "" : ", ") + g.name;
  fail("unknown encoder group '{}': use one of {}", name, names);
}

namespace {

thread_local int64_t forward_count = 0;

// Shipped encoders, loaded once per dataset and device (the images' device) and kept frozen.
Encoder& shipped_encoder(const std::string& dataset, const torch::Device& device) {
  static std::map<std::string, Encoder> cache;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = dataset + "@" + device.str();
  auto it = cache.find(key);
  if (it == cache.end()) {
    auto m = load_encoder(dataset);
    m->to(device);
    it = cache.emplace(key, m).first;
  }
  return it->second;
}

// The last images tensor this thread encoded and its layer maps, one slot per grad mode: training
// encodes the generated batch with gradients and the standard method's positives without, so the
// positives of one group do not evict the generated batch the next group needs. The tensor is held,
// so its storage cannot be reused by another tensor while it is the key.
struct LayerCache {
  torch::Tensor images;
  int64_t version = -1;
  bool grad = false;
  std::string key;
  std::vector<torch::Tensor> maps;
};
thread_local LayerCache layer_cache[2];  // [no grad, grad]

const std::vector<torch::Tensor>& layer_maps(const torch::Tensor& images, const std::string& dataset) {
  const bool grad = torch::GradMode::is_enabled();
  auto& c = layer_cache[grad ? 1 : 0];
  const std::string key = dataset + "@" + images.device().str();
  if (c.images.defined() && c.images.unsafeGetTensorImpl() == images.unsafeGetTensorImpl() &&
      c.version == static_cast<int64_t>(images._version()) && c.grad == grad && c.key == key)
    return c.maps;
  auto& model = shipped_encoder(dataset, images.device());
  c.maps = model->layers(images.to(torch::kFloat32));
  c.images = images;
  c.version = static_cast<int64_t>(images._version());
  c.grad = grad;
  c.key = key;
  ++forward_count;
  return c.maps;
}

// B x C x h x w -> B x (h*w*C), location-major (vector k = location k's C values). An index_select of
// the NCHW-flat map, not permute(0, 2, 3, 1): the permute's backward hands the convolution a
// channels-last gradient, and LibTorch 1.13's CPU backward then returned run-to-run different,
// wrong gradients (1e3 vs 4e4 for the same input; EncoderFeatures.GradientsAreDeterministic).
torch::Tensor location_major(const torch::Tensor& m) {
  const int64_t C = m.size(1), HW = m.size(2) * m.size(3);
  const auto k = torch::arange(C * HW, torch::TensorOptions().dtype(torch::kLong).device(m.device()));
  const auto nchw = k.remainder(C) * HW + torch::div(k, C, "floor");  // output k*C + c <- input c*HW + k
  return m.reshape({m.size(0), C * HW}).index_select(1, nchw);
}

torch::Tensor mean_std(const torch::Tensor& mean, const torch::Tensor& sq_mean) {
  const auto var = (sq_mean - mean * mean).clamp_min(1e-6);  // floor keeps sqrt differentiable
  return torch::cat({mean, var.sqrt()}, 1);
}

}  // namespace

int64_t encoder_forward_count() { return forward_count; }

void clear_encoder_cache() { layer_cache[0] = layer_cache[1] = LayerCache{}; }

torch::Tensor encoder_group_features(const torch::Tensor& images, const std::string& dataset, const std::string& group) {
  const auto& g = encoder_group(group);
  check_images(images);
  const auto& m = layer_maps(images, dataset)[g.layer];
  if (g.kind == "loc") return location_major(m);
  if (g.kind == "mean_std") return mean_std(m.mean({2, 3}), (m * m).mean({2, 3}));
  const int64_t k = g.kind == "patch2" ? 2 : 4;
  // Border cells average only the values inside the map: zero-pad to a multiple of k, average, divide by
  // the fraction of the cell inside the map. (avg_pool2d's own ceil_mode gave garbage gradients in
  // LibTorch 1.13 on CPU: 1e32 on a 7x7 map.)
  const int64_t ph = (k - m.size(2) % k) % k, pw = (k - m.size(3) % k) % k;
  auto pad = [&](const torch::Tensor& t) { return torch::constant_pad_nd(t, {0, pw, 0, ph}, 0); };
  const auto inside = torch::avg_pool2d(pad(torch::ones({1, 1, m.size(2), m.size(3)}, m.options())), k);
  auto pool = [&](const torch::Tensor& t) { return torch::avg_pool2d(pad(t), k) / inside; };
  return location_major(mean_std(pool(m), pool(m * m)));
}

}  // namespace driftx
