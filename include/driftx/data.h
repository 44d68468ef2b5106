// Real datasets on disk: IDX files (MNIST layout, raw or .gz) and datasets by name.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace driftx {

// One IDX file as raw bytes plus its shape. Validates: magic (0x00 0x00 type ndim), type byte
// (only 0x08 unsigned byte is supported), dimension count (expected_ndim), and that the payload size
// equals the product of the dimensions. Errors name the file.
struct IdxArray {
  std::vector<int64_t> shape;
  torch::Tensor data;  // uint8, shape `shape`
};
IdxArray read_idx(const std::string& path, int expected_ndim);

// A labelled image dataset in memory.
struct Dataset {
  std::string name;               // "mnist" or "fashion-mnist"
  std::string split;              // "train" or "test"
  torch::Tensor images;           // float32, N x C x H x W, values in [-1, 1]
  torch::Tensor labels;           // int64, N, values in [0, num_classes)
  int64_t num_classes = 10;
  std::vector<torch::Tensor> class_index;  // class c -> int64 indices of its samples (ascending)

  int64_t size() const { return images.size(0); }
  int64_t dim() const { return images[0].numel(); }
  torch::Tensor flat() const { return images.reshape({size(), -1}); }  // N x (C*H*W)
};

// A seeded random subset of n samples (all of them, in order, when n covers the split); their labels
// go to `labels` when given.
torch::Tensor seeded_subset(const Dataset& d, int64_t n, uint64_t seed, torch::Tensor* labels = nullptr);


// Loads images + labels IDX files, checks counts match and labels lie in [0, num_classes).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         const std::string& name, const std::string& split, int64_t num_classes = 10);

// Where datasets live: `flag` when not empty, else $DRIFTX_DATA_DIR, else "<repo>/data" as set at
// build time, else "./data". MNIST is expected in <dir>/mnist, Fashion-MNIST in <dir>/fashion-mnist
// (falling back to /usr/share/datasets/fashion-mnist, where Debian installs it).
std::string resolve_data_dir(const std::string& flag = "");

// Datasets by name: "mnist" or "fashion-mnist"; split "train" or "test". Both raw and .gz files are
// accepted. A missing file's error says to run scripts/setup.sh.
Dataset load_dataset(const std::string& name, const std::string& split, const std::string& data_dir = "");

// The names load_dataset accepts.
std::vector<std::string> dataset_names();

}  // namespace driftx
