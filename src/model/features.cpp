#include "driftx/features.h"

#include <fmt/ranges.h>  // fmt::join (its own header in fmt >= 10)
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include <torch/script.h>

#include "driftx/encoder.h"
#include "driftx/error.h"

namespace driftx {

namespace {

// Per-channel mean and std over non-overlapping k x k patches: B x 2 x C x H/k x W/k, flattened.
torch::Tensor patch_stats(const torch::Tensor& x, int64_t k) {
  auto mean = torch::avg_pool2d(x, k);
  auto var = (torch::avg_pool2d(x * x, k) - mean * mean).clamp_min(1e-6);  // floor keeps sqrt differentiable
  return torch::cat({mean.flatten(1), var.sqrt().flatten(1)}, 1);
}

constexpr const char* kTorchScript = "torchscript:";

bool is_torchscript(const std::string& group) { return group.rfind(kTorchScript, 0) == 0; }

// "encoder:<dataset>" (all groups of the shipped encoder) or "encoder:<dataset>/<group>".
constexpr const char* kEncoder = "encoder:";

bool is_encoder(const std::string& group) { return group.rfind(kEncoder, 0) == 0; }

// {dataset, group name ("" when the spec names the whole encoder)}, both checked.
std::pair<std::string, std::string> split_encoder(const std::string& spec) {
  const std::string rest = spec.substr(std::strlen(kEncoder));
  const auto slash = rest.find('/');
  const std::string dataset = rest.substr(0, slash);
  const auto names = dataset_names();
  DRIFTX_CHECK(std::find(names.begin(), names.end(), dataset) != names.end(),
               "feature group '{}': unknown encoder dataset '{}', use encoder:{} or encoder:{}/<group>", spec, dataset,
               fmt::join(names, "|"), fmt::join(names, "|"));
  const std::string group = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (!group.empty() || slash != std::string::npos) encoder_group(group);  // one-line error naming the groups
  return {dataset, group};
}

// {dataset, group} of one expanded encoder group ("encoder:mnist/l2.loc"), refusing the whole encoder.
std::pair<std::string, std::string> expanded_encoder_group(const std::string& spec) {
  auto parts = split_encoder(spec);
  DRIFTX_CHECK(!parts.second.empty(), "feature group '{}' names the whole encoder: expand it with parse_feature_groups", spec);
  return parts;
}

// Encoders are loaded once per path and device (on the images' device: a GPU run encodes on the GPU)
// and kept frozen (eval mode, no parameter gradients).
std::map<std::string, torch::jit::Module> encoder_cache;
std::mutex encoder_mutex;

torch::jit::Module& encoder(const std::string& path, const torch::Device& device) {
  auto& cache = encoder_cache;
  std::lock_guard<std::mutex> lock(encoder_mutex);
  const std::string key = path + "@" + device.str();
  auto it = cache.find(key);
  if (it == cache.end()) {
    torch::jit::Module m;
    // c10::Error for a bad archive, torch::jit::ErrorReport (a std::exception) for damaged code in it
    // (found by fuzz/fuzz_torchscript_features).
    try {
      m = torch::jit::load(path, device);
    } catch (const std::exception&) {
      fail("feature encoder '{}' cannot be loaded as TorchScript: export it with torch.jit.script(...).save(path)", path);
    }
    m.eval();
    for (auto p : m.parameters()) p.requires_grad_(false);
    it = cache.emplace(key, std::move(m)).first;
  }
  return it->second;
}

std::vector<torch::Tensor> encoder_outputs(const std::string& path, const torch::Tensor& images) {
  c10::IValue out;
  try {
    out = encoder(path, images.device()).forward({images});
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // the module's own failure: one line naming the encoder
    fail("feature encoder '{}' failed on images of shape {}: {}", path, shape_str(images.sizes()), exception_line(e));
  }
  std::vector<torch::Tensor> maps;
  if (out.isTensor()) maps.push_back(out.toTensor());
  else if (out.isTensorList()) for (const auto& t : out.toTensorList()) maps.push_back(t);
  else if (out.isList()) for (const auto& v : out.toListRef()) maps.push_back(v.isTensor() ? v.toTensor() : torch::Tensor());
  else if (out.isTuple()) for (const auto& v : out.toTupleRef().elements()) maps.push_back(v.isTensor() ? v.toTensor() : torch::Tensor());
  else fail("feature encoder '{}' must return a tensor or a list/tuple of tensors", path);
  for (size_t k = 0; k < maps.size(); ++k) {
    DRIFTX_CHECK(maps[k].defined(), "feature encoder '{}' must return a tensor or a list/tuple of tensors (output {} is not one)",
                 path, k);
    DRIFTX_CHECK(maps[k].dim() >= 2 && maps[k].size(0) == images.size(0),
                 "feature encoder '{}': output {} has shape {}, expected one row per image ({} x ...)", path, k,
                 shape_str(maps[k].sizes()), images.size(0));
  }
  return maps;
}

}  // namespace

void clear_feature_encoders() {
  std::lock_guard<std::mutex> lock(encoder_mutex);
  encoder_cache.clear();
}

std::vector<std::string> expand_feature_groups(const std::vector<std::string>& groups, const torch::Tensor& probe) {
  std::vector<std::string> out;
  for (const auto& g : groups) {
    if (!is_torchscript(g)) {
      out.push_back(g);
      continue;
    }
    torch::NoGradGuard no_grad;
    const auto n = encoder_outputs(g.substr(std::strlen(kTorchScript)), probe).size();
    for (size_t k = 0; k < n; ++k) out.push_back(fmt::format("{}#{}", g, k));
  }
  return out;
}

std::vector<std::string> feature_group_names() {
  return {"pixels", "pool2", "pool4", "mean_std", "patch2_stats", "patch4_stats", "sq_mean"};
}

std::vector<std::string> parse_feature_groups(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream in(spec);
  std::string item;
  const auto known = feature_group_names();
  while (std::getline(in, item, ',')) {
    if (item == "multiscale") {
      out.insert(out.end(), known.begin(), known.end());
      continue;
    }
    if (is_encoder(item)) {
      const auto [dataset, group] = split_encoder(item);
      if (!group.empty()) out.push_back(item);
      else
        for (const auto& g : encoder_groups()) out.push_back(fmt::format("{}{}/{}", kEncoder, dataset, g.name));
      continue;
    }
    if (is_torchscript(item)) {
      DRIFTX_CHECK(item.size() > std::strlen(kTorchScript), "feature group 'torchscript:' needs a path: torchscript:PATH");
      out.push_back(item);
      continue;
    }
    DRIFTX_CHECK(std::find(known.begin(), known.end(), item) != known.end(),
                 "unknown feature group '{}': use multiscale, encoder:DATASET[/GROUP], torchscript:PATH or a list of {}", item, fmt::join(known, ", "));
    out.push_back(item);
  }
  DRIFTX_CHECK(!out.empty(), "no feature group given: use e.g. pixels,pool2,pool4");
  return out;
}

torch::Tensor image_features(const torch::Tensor& images, const std::string& group) {
  DRIFTX_CHECK(images.dim() == 4, "features: images must be B x C x H x W, got {}", shape_str(images.sizes()));
  const auto& x = images;
  if (group == "pixels") return x.flatten(1);
  if (group == "pool2") return torch::avg_pool2d(x, 2).flatten(1);
  if (group == "pool4") return torch::avg_pool2d(x, 4).flatten(1);
  if (group == "mean_std") {
    auto mean = x.mean({2, 3});
    auto var = (x * x).mean({2, 3}) - mean * mean;
    return torch::cat({mean, var.clamp_min(1e-6).sqrt()}, 1);
  }
  if (group == "patch2_stats") return patch_stats(x, 2);
  if (group == "patch4_stats") return patch_stats(x, 4);
  if (group == "sq_mean") return (x * x).mean({2, 3});
  if (is_encoder(group)) {
    const auto [dataset, name] = expanded_encoder_group(group);
    return encoder_group_features(x, dataset, name);
  }
  if (is_torchscript(group)) {
    const auto hash = group.rfind('#');
    const std::string path = group.substr(std::strlen(kTorchScript), hash == std::string::npos ? std::string::npos
                                                                                                : hash - std::strlen(kTorchScript));
    const size_t k = hash == std::string::npos ? 0 : std::stoul(group.substr(hash + 1));
    auto maps = encoder_outputs(path, x);
    DRIFTX_CHECK(k < maps.size(), "feature encoder '{}' returned {} outputs, group #{} does not exist", path, maps.size(), k);
    return maps[k].flatten(1);
  }
  fail("unknown feature group '{}': use one of {}", group, fmt::join(feature_group_names(), ", "));
}

int64_t feature_vectors(const std::string& group) {
  if (!is_encoder(group)) return 1;
  return encoder_group(expanded_encoder_group(group).second).count;
}

int64_t feature_dim(const std::string& group, int64_t channels, int64_t height, int64_t width) {
  return image_features(torch::zeros({1, channels, height, width}), group).size(1);
}

torch::Tensor dataset_features(const torch::Tensor& images, const std::string& group, int64_t chunk) {
  return dataset_features(images, std::vector<std::string>{group}, chunk)[0];
}

std::vector<torch::Tensor> dataset_features(const torch::Tensor& images, const std::vector<std::string>& groups,
                                            int64_t chunk) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<torch::Tensor>> parts(groups.size());
  for (int64_t start = 0; start < images.size(0); start += chunk) {
    const auto x = images.narrow(0, start, std::min(chunk, images.size(0) - start));  // one tensor: the cache's key
    for (size_t g = 0; g < groups.size(); ++g) parts[g].push_back(image_features(x, groups[g]));
  }
  if (std::any_of(groups.begin(), groups.end(), is_encoder)) clear_encoder_cache();  // the last chunk's maps are large
  std::vector<torch::Tensor> out;
  for (auto& p : parts) {
    out.push_back(torch::cat(p, 0).to(torch::kFloat32).contiguous());
    p.clear();
  }
  return out;
}

}  // namespace driftx
