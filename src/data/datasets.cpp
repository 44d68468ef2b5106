// Datasets by name, on top of the IDX reader.
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "driftx/data.h"
#include "driftx/error.h"

namespace driftx {
namespace fs = std::filesystem;

namespace {

// Where Debian's dataset-fashion-mnist package installs the files.
constexpr const char* kDebianFashionDir = "/usr/share/datasets/fashion-mnist";

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

// `base` or `base.gz`, whichever exists; empty when neither does.
std::string find_file(const fs::path& base) {
  std::error_code ec;
  for (const std::string suffix : {"", ".gz"}) {
    const fs::path p = base.string() + suffix;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

}  // namespace

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, const std::string& name,
                         const std::string& split, int64_t num_classes) {
  DRIFTX_CHECK(num_classes > 0 && num_classes <= 256, "dataset {}: num_classes must be in [1, 256], got {}", name,
               num_classes);
  const IdxArray images = read_idx(images_path, 3);
  const IdxArray labels = read_idx(labels_path, 1);
  const int64_t n = images.shape[0];
  DRIFTX_CHECK(n == labels.shape[0],
               "{} has {} images but {} has {} labels; both files must come from the same split", images_path, n,
               labels_path, labels.shape[0]);
  DRIFTX_CHECK(n > 0, "{}: contains no images", images_path);

  // One pass checks the range and builds the per-class lists (indices come out ascending).
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(num_classes));
  const uint8_t* lab = labels.data.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    DRIFTX_CHECK(lab[i] < num_classes, "{}: label {} at index {} is outside [0, {}); the file is corrupt",
                 labels_path, unsigned(lab[i]), i, num_classes);
    members[lab[i]].push_back(i);
  }

  Dataset d;
  d.name = name;
  d.split = split;
  d.num_classes = num_classes;
  // x / 127.5 - 1 through a table computed in double: float32 arithmetic would lose ~4 digits to
  // cancellation near x = 127, and the table keeps 0 -> -1 and 255 -> 1 exact.
  float table[256];
  for (int v = 0; v < 256; ++v) table[v] = static_cast<float>(v / 127.5 - 1.0);
  d.images = torch::empty({n, 1, images.shape[1], images.shape[2]}, torch::kFloat32);
  const uint8_t* src = images.data.data_ptr<uint8_t>();
  float* dst = d.images.data_ptr<float>();
  for (int64_t i = 0, total = images.data.numel(); i < total; ++i) dst[i] = table[src[i]];
  d.labels = labels.data.to(torch::kInt64);
  for (auto& m : members)
    d.class_index.push_back(
        torch::from_blob(m.data(), {static_cast<int64_t>(m.size())}, torch::kInt64).clone());
  return d;
}

std::string resolve_data_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("DRIFTX_DATA_DIR"); env && *env) return env;
#ifdef DRIFTX_DEFAULT_DATA_DIR
  // The build tree's data/ only helps while it exists (a copied binary falls through to ./data).
  std::error_code ec;
  if (fs::is_directory(DRIFTX_DEFAULT_DATA_DIR, ec)) return DRIFTX_DEFAULT_DATA_DIR;
#endif
  return "./data";
}

std::vector<std::string> dataset_names() { return {"mnist", "fashion-mnist"}; }

Dataset load_dataset(const std::string& name, const std::string& split, const std::string& data_dir) {
  const auto names = dataset_names();
  DRIFTX_CHECK(std::find(names.begin(), names.end(), name) != names.end(),
               "unknown dataset '{}'; valid names are {}", name, join(names));
  DRIFTX_CHECK(split == "train" || split == "test", "unknown split '{}' for dataset {}; valid splits are train, test",
               split, name);
  const std::string dir = resolve_data_dir(data_dir);
  std::vector<fs::path> dirs = {fs::path(dir) / name};
  if (name == "fashion-mnist") dirs.emplace_back(kDebianFashionDir);

  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string images_file = prefix + "-images-idx3-ubyte", labels_file = prefix + "-labels-idx1-ubyte";
  for (const auto& d : dirs) {
    const std::string images = find_file(d / images_file), labels = find_file(d / labels_file);
    if (!images.empty() && !labels.empty()) return load_idx_dataset(images, labels, name, split);
  }
  const fs::path& first = dirs.front();
  const fs::path missing = find_file(first / images_file).empty() ? first / images_file : first / labels_file;
  const std::string also = dirs.size() > 1 ? fmt::format(" (also looked in {})", kDebianFashionDir) : "";
  fail("dataset {} ({}): missing {}[.gz]{}; run scripts/setup.sh to fetch it, or point --data-dir or "
       "DRIFTX_DATA_DIR at a directory containing {}/",
       name, split, missing.string(), also, name);
}

torch::Tensor seeded_subset(const Dataset& d, int64_t n, uint64_t seed, torch::Tensor* labels) {
  auto rng = at::detail::createCPUGenerator(seed);
  auto idx = n >= d.size() ? torch::arange(d.size(), torch::kLong)
                           : torch::randperm(d.size(), rng, torch::kLong).narrow(0, 0, n);
  if (labels) *labels = d.labels.index_select(0, idx);
  return d.images.index_select(0, idx);
}

}  // namespace driftx
