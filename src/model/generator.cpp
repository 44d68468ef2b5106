#include "driftx/generator.h"

#include <algorithm>
#include <numeric>
#include <set>

#include <fmt/ranges.h>

#include "driftx/error.h"

namespace driftx {

namespace {

// GroupNorm needs channels % groups == 0. Widths divisible by 32 (the default 128 included) get the
// 8 groups of the architecture; smaller valid widths (8, 16, 24, ...) fall back to the largest
// divisor of 8 that fits, so every width that passes validation builds.
int64_t norm_groups(int64_t channels) { return std::gcd<int64_t>(8, channels); }

// "fc.weight" -> "fc_weight": TorchScript attribute names cannot contain dots.
std::string script_name(const std::string& name) {
  std::string out = name;
  std::replace(out.begin(), out.end(), '.', '_');
  return out;
}

}  // namespace

nlohmann::json GeneratorConfig::to_json() const {
  return {{"noise_dim", noise_dim}, {"channels", channels},   {"image_size", image_size},
          {"num_classes", num_classes}, {"width", width}, {"alpha_conditioning", alpha_conditioning}};
}

GeneratorConfig GeneratorConfig::from_json(const nlohmann::json& j) {
  DRIFTX_CHECK(j.is_object(), "generator config: expected a JSON object, got {}", j.dump());
  static const std::set<std::string> known = {"noise_dim", "channels", "image_size",
                                              "num_classes", "width", "alpha_conditioning"};
  // Unknown keys are typos (e.g. "num_class"): silently using the default would train the wrong model.
  for (const auto& item : j.items())
    DRIFTX_CHECK(known.count(item.key()), "generator config: unknown field '{}': use one of {}", item.key(),
                 fmt::join(known, ", "));
  GeneratorConfig c;  // missing fields keep their defaults
  auto get_int = [&](const char* key, int64_t& out) {
    if (!j.contains(key)) return;
    DRIFTX_CHECK(j[key].is_number_integer(), "generator config: '{}' must be an integer, got {}", key,
                 j[key].dump());
    out = j[key].get<int64_t>();
  };
  get_int("noise_dim", c.noise_dim);
  get_int("channels", c.channels);
  get_int("image_size", c.image_size);
  get_int("num_classes", c.num_classes);
  get_int("width", c.width);
  if (j.contains("alpha_conditioning")) {
    DRIFTX_CHECK(j["alpha_conditioning"].is_boolean(),
                 "generator config: 'alpha_conditioning' must be true or false, got {}",
                 j["alpha_conditioning"].dump());
    c.alpha_conditioning = j["alpha_conditioning"].get<bool>();
  }
  DRIFTX_CHECK(c.noise_dim > 0, "generator config: noise_dim must be > 0, got {}", c.noise_dim);
  DRIFTX_CHECK(c.channels == 1 || c.channels == 3, "generator config: channels must be 1 or 3, got {}",
               c.channels);
  DRIFTX_CHECK(c.image_size > 0 && c.image_size % 4 == 0,
               "generator config: image_size must be a positive multiple of 4 (e.g. 28 or 32), got {}",
               c.image_size);
  DRIFTX_CHECK(c.num_classes >= 0, "generator config: num_classes must be >= 0 (0: unconditional), got {}",
               c.num_classes);
  DRIFTX_CHECK(c.width >= 8 && c.width % 8 == 0,
               "generator config: width must be a multiple of 8 and >= 8 (e.g. 128), got {}", c.width);
  // Upper bounds: a configuration read from a damaged file must not overflow the layer sizes below or
  // ask for more memory than any real run (the CLI's own bounds, --width <= 1024 and --noise-dim <= 4096,
  // all fit): at most 2^28 weights in the first layer and in the class embedding (1 GiB of float32).
  constexpr int64_t kMaxWeights = int64_t{1} << 28;
  DRIFTX_CHECK(c.noise_dim <= 4096 && c.width <= 4096 && c.image_size <= 1024 && c.num_classes <= kMaxWeights,
               "generator config: noise_dim {}, width {}, image_size {} or num_classes {} beyond the limits 4096, "
               "4096, 1024, 2^28",
               c.noise_dim, c.width, c.image_size, c.num_classes);
  const int64_t s = c.image_size / 4;
  DRIFTX_CHECK(c.noise_dim * c.width * s * s <= kMaxWeights && c.num_classes * c.noise_dim <= kMaxWeights,
               "generator config: noise_dim {} x width {} x (image_size/4)^2 = {} or num_classes x noise_dim = {} "
               "weights, beyond 2^28", c.noise_dim, c.width, c.noise_dim * c.width * s * s, c.num_classes * c.noise_dim);
  return c;
}

GeneratorImpl::GeneratorImpl(GeneratorConfig config) : config_(config) {
  // Same checks as a loaded config: a hand-built bad config fails here, not deep inside LibTorch.
  config_ = GeneratorConfig::from_json(config.to_json());
  const auto& c = config_;
  const int64_t s = c.image_size / 4, w = c.width;
  if (c.num_classes > 0)
    class_embed = register_module("class_embed", torch::nn::Embedding(c.num_classes, c.noise_dim));
  // No bias: alpha = 1 (plain conditional sampling) then contributes exactly zero, so "alpha absent"
  // and "alpha = 1" are the same generator.
  if (c.alpha_conditioning)
    alpha_embed = register_module("alpha_embed", torch::nn::Linear(torch::nn::LinearOptions(1, c.noise_dim).bias(false)));
  fc = register_module("fc", torch::nn::Linear(c.noise_dim, w * s * s));
  up1 = register_module("up1", torch::nn::ConvTranspose2d(
                                   torch::nn::ConvTranspose2dOptions(w, w / 2, 4).stride(2).padding(1)));
  norm1 = register_module("norm1", torch::nn::GroupNorm(norm_groups(w / 2), w / 2));
  up2 = register_module("up2", torch::nn::ConvTranspose2d(
                                   torch::nn::ConvTranspose2dOptions(w / 2, w / 4, 4).stride(2).padding(1)));
  norm2 = register_module("norm2", torch::nn::GroupNorm(norm_groups(w / 4), w / 4));
  out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(w / 4, c.channels, 3).padding(1)));
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z, const torch::Tensor& labels, const torch::Tensor& alpha) {
  const auto& c = config_;
  DRIFTX_CHECK(z.defined() && z.dim() == 2 && z.size(1) == c.noise_dim && z.is_floating_point(),
               "generator: noise must be a float B x {} tensor, got {}", c.noise_dim,
               z.defined() ? shape_str(z.sizes()) : "none");
  const int64_t b = z.size(0);
  auto h = z;
  if (c.num_classes > 0) {
    DRIFTX_CHECK(labels.defined(), "generator: this generator is class-conditional ({} classes): pass labels",
                 c.num_classes);
    DRIFTX_CHECK(labels.dim() == 1 && labels.size(0) == b && !labels.is_floating_point(),
                 "generator: labels must be an integer tensor of shape [{}], got {}", b, shape_str(labels.sizes()));
    if (b > 0) {
      const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
      DRIFTX_CHECK(lo >= 0 && hi < c.num_classes, "generator: labels must lie in [0, {}), got range [{}, {}]",
                   c.num_classes, lo, hi);
    }
    h = h + class_embed(labels.to(torch::kLong));
  } else {
    DRIFTX_CHECK(!labels.defined(), "generator: this generator is unconditional: do not pass labels");
  }
  if (alpha.defined()) {
    DRIFTX_CHECK(c.alpha_conditioning,
                 "generator: alpha given but this generator has no alpha conditioning: drop alpha or "
                 "train with alpha_conditioning");
    DRIFTX_CHECK(alpha.dim() == 1 && alpha.size(0) == b, "generator: alpha must have shape [{}], got {}", b,
                 shape_str(alpha.sizes()));
    h = h + alpha_embed((alpha.to(z.dtype()) - 1).unsqueeze(1));
  }
  const int64_t s = c.image_size / 4;
  h = torch::relu(fc(h).view({b, c.width, s, s}));
  h = torch::relu(norm1(up1(h)));
  h = torch::relu(norm2(up2(h)));
  return torch::tanh(out(h));
}

torch::jit::Module export_generator(Generator& generator) {
  const auto& c = generator->config();
  torch::jit::Module module("DriftxGenerator");
  // CPU copies: the exported file loads on any machine; callers move it with .to(device).
  for (const auto& p : generator->named_parameters())
    module.register_parameter(script_name(p.key()), p.value().detach().to(torch::kCPU).clone(), false);
  DRIFTX_CHECK(generator->named_buffers().is_empty(), "export: unexpected buffers in the generator");
  // Read-only metadata for whoever loads the file (Python: m.noise_dim).
  module.register_attribute("noise_dim", c10::IntType::get(), c.noise_dim);
  module.register_attribute("num_classes", c10::IntType::get(), c.num_classes);
  module.register_attribute("channels", c10::IntType::get(), c.channels);
  module.register_attribute("image_size", c10::IntType::get(), c.image_size);

  // Only aten builtins, which the native resolver (no Python) maps `torch.*` to, and assert: the
  // native resolver does not know `Exception`; a failed assert raises AssertionError with the message.
  // Ops and arguments mirror the C++ modules (Linear = addmm, GroupNorm eps 1e-5), so outputs match.
  std::string cond;
  if (c.num_classes > 0)
    cond = R"TS(
    assert y is not None, "DriftxGenerator: this generator is class-conditional: pass y (B int64 labels)"
    h = h + torch.embedding(self.class_embed_weight, y))TS";
  else
    cond = R"TS(
    assert y is None, "DriftxGenerator: this generator is unconditional: do not pass y")TS";
  std::string alpha_src;
  if (c.alpha_conditioning)
    alpha_src = R"TS(
    if alpha is not None:
        h = h + torch.matmul((alpha.to(h.dtype) - 1.0).unsqueeze(1), self.alpha_embed_weight.t()))TS";
  else
    alpha_src = R"TS(
    assert alpha is None, "DriftxGenerator: no alpha conditioning in this generator: do not pass alpha")TS";
  const int64_t s = c.image_size / 4, w = c.width;
  const std::string src = fmt::format(R"TS(
def forward(self, z: Tensor, y: Optional[Tensor]=None, alpha: Optional[Tensor]=None) -> Tensor:
    h = z{cond}{alpha}
    h = torch.addmm(self.fc_bias, h, self.fc_weight.t())
    h = torch.relu(h.view([h.size(0), {w}, {s}, {s}]))
    h = torch.conv_transpose2d(h, self.up1_weight, self.up1_bias, [2, 2], [1, 1])
    h = torch.relu(torch.group_norm(h, {g1}, self.norm1_weight, self.norm1_bias, 1e-5))
    h = torch.conv_transpose2d(h, self.up2_weight, self.up2_bias, [2, 2], [1, 1])
    h = torch.relu(torch.group_norm(h, {g2}, self.norm2_weight, self.norm2_bias, 1e-5))
    return torch.tanh(torch.conv2d(h, self.out_weight, self.out_bias, [1, 1], [1, 1]))
)TS",
                                      fmt::arg("cond", cond), fmt::arg("alpha", alpha_src), fmt::arg("w", w),
                                      fmt::arg("s", s), fmt::arg("g1", norm_groups(w / 2)),
                                      fmt::arg("g2", norm_groups(w / 4)));
  module.define(src);
  return module;
}

torch::Tensor generate_samples(Generator& generator, int64_t n, uint64_t seed, double alpha, int64_t batch,
                               torch::Tensor* labels) {
  const auto& gc = generator->config();
  DRIFTX_CHECK(n >= 1 && batch >= 1, "generate: need n >= 1 and batch >= 1, got {} and {}", n, batch);
  DRIFTX_CHECK(gc.alpha_conditioning || alpha == 1.0, "--alpha given but the generator was trained without guidance");
  torch::NoGradGuard no_grad;
  const auto device = generator->parameters().front().device();
  auto rng = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> images;
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t b = std::min(batch, n - s);
    auto z = torch::randn({b, gc.noise_dim}, rng).to(device);
    torch::Tensor y, a;
    if (gc.num_classes > 0) y = (torch::arange(s, s + b, torch::kLong) % gc.num_classes).to(device);
    if (gc.alpha_conditioning) a = torch::full({b}, alpha).to(device);
    images.push_back(generator->forward(z, y, a).to(torch::kCPU));
  }
  if (labels) *labels = gc.num_classes > 0 ? torch::arange(n, torch::kLong) % gc.num_classes : torch::Tensor();
  return torch::cat(images);
}

void copy_parameters(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard no_grad;
  auto copy = [](const torch::OrderedDict<std::string, torch::Tensor>& to,
                 const torch::OrderedDict<std::string, torch::Tensor>& from, const char* what) {
    DRIFTX_CHECK(to.size() == from.size(), "copy_parameters: {} {} in the destination but {} in the source: "
                 "the architectures differ", to.size(), what, from.size());
    for (const auto& item : to) {
      const auto* s = from.find(item.key());
      DRIFTX_CHECK(s, "copy_parameters: {} '{}' missing in the source: the architectures differ", what, item.key());
      DRIFTX_CHECK(s->sizes() == item.value().sizes(), "copy_parameters: {} '{}' has shape {} in the source but {} "
                   "in the destination", what, item.key(), shape_str(s->sizes()), shape_str(item.value().sizes()));
      item.value().copy_(*s);
    }
  };
  copy(dst.named_parameters(), src.named_parameters(), "parameter");
  copy(dst.named_buffers(), src.named_buffers(), "buffer");
}

}  // namespace driftx
