#include <gtest/gtest.h>

#include "test_support.h"
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "driftx/data.h"
#include "driftx/error.h"

using namespace driftx;
namespace fs = std::filesystem;

namespace {

using Idx = testing_support::TempDirTest;

// IDX bytes: 00 00 <type> <ndim>, big-endian uint32 dims, payload.
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload, uint8_t type = 0x08) {
  std::string s = {'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>((d >> shift) & 0xff));
  return s + std::string(payload.begin(), payload.end());
}

void write_file(const std::string& path, const std::string& bytes, bool gzip = false) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
}

using testing_support::expect_error;

// 4 images of 2x3 pixels, labels {2, 0, 2, 1} over 4 classes (class 3 empty).
const std::vector<uint8_t> kPixels = {0,   255, 1,   254, 127, 128,  //
                                      10,  20,  30,  40,  50,  60,   //
                                      255, 255, 255, 0,   0,   0,    //
                                      3,   5,   7,   11,  13,  17};
const std::vector<uint8_t> kLabels = {2, 0, 2, 1};

void check_synthetic(const Dataset& d) {
  ASSERT_EQ(d.images.sizes(), torch::IntArrayRef({4, 1, 2, 3}));
  EXPECT_EQ(d.images.scalar_type(), torch::kFloat32);
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.dim(), 6);
  const auto flat = d.flat();
  for (size_t i = 0; i < kPixels.size(); ++i)
    EXPECT_EQ(flat.view(-1)[static_cast<int64_t>(i)].item<float>(), static_cast<float>(kPixels[i] / 127.5 - 1.0));
  EXPECT_EQ(flat[0][0].item<float>(), -1.0f);  // exact endpoints
  EXPECT_EQ(flat[0][1].item<float>(), 1.0f);
  EXPECT_EQ(d.images.min().item<float>(), -1.0f);
  EXPECT_EQ(d.images.max().item<float>(), 1.0f);
  EXPECT_EQ(d.labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(d.labels, torch::tensor({2, 0, 2, 1}, torch::kInt64)));
  ASSERT_EQ(d.class_index.size(), 4u);
  EXPECT_TRUE(torch::equal(d.class_index[0], torch::tensor({1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(d.class_index[1], torch::tensor({3}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(d.class_index[2], torch::tensor({0, 2}, torch::kInt64)));
  EXPECT_EQ(d.class_index[3].numel(), 0);
  EXPECT_EQ(d.class_index[3].scalar_type(), torch::kInt64);
}

// Path of <dir>/<name>/<file> raw or .gz, or of the Debian fallback for fashion-mnist; "" if absent.
std::string real_file(const std::string& name, const std::string& file) {
  std::vector<std::string> dirs = {resolve_data_dir() + "/" + name};
  if (name == "fashion-mnist") dirs.push_back("/usr/share/datasets/fashion-mnist");
  for (const auto& d : dirs)
    for (const char* suffix : {"", ".gz"})
      if (fs::exists(d + "/" + file + suffix)) return d + "/" + file + suffix;
  return "";
}

bool have_real(const std::string& name) {
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"})
    if (real_file(name, f).empty()) return false;
  return true;
}

std::vector<int64_t> class_counts(const Dataset& d) {
  std::vector<int64_t> counts;
  for (const auto& idx : d.class_index) counts.push_back(idx.numel());
  return counts;
}

// Shared checks for a real 28x28, 10-class dataset.
void check_real(const Dataset& d, int64_t n, const std::vector<int64_t>& counts) {
  ASSERT_EQ(d.images.sizes(), torch::IntArrayRef({n, 1, 28, 28}));
  EXPECT_EQ(d.labels.sizes(), torch::IntArrayRef({n}));
  EXPECT_EQ(d.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(d.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(d.images.min().item<float>(), -1.0f);
  EXPECT_EQ(d.images.max().item<float>(), 1.0f);
  EXPECT_EQ(class_counts(d), counts);
  for (int64_t c = 0; c < 10; ++c) {
    const auto& idx = d.class_index[static_cast<size_t>(c)];
    EXPECT_TRUE(d.labels.index_select(0, idx).eq(c).all().item<bool>());
    if (idx.numel() > 1) EXPECT_TRUE((idx.slice(0, 1) > idx.slice(0, 0, -1)).all().item<bool>());
  }
}

}  // namespace

TEST_F(Idx, LoadsRawAndGzipFiles) {
  for (bool gz : {false, true}) {
    SCOPED_TRACE(gz ? "gzip" : "raw");
    const std::string img = path(gz ? "img.gz" : "img"), lab = path(gz ? "lab.gz" : "lab");
    write_file(img, idx_bytes({4, 2, 3}, kPixels), gz);
    write_file(lab, idx_bytes({4}, kLabels), gz);
    const IdxArray a = read_idx(img, 3);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{4, 2, 3}));
    EXPECT_EQ(a.data.scalar_type(), torch::kUInt8);
    EXPECT_TRUE(torch::equal(a.data.flatten(), torch::tensor(std::vector<int64_t>(kPixels.begin(), kPixels.end()))
                                                    .to(torch::kUInt8)));
    const Dataset d = load_idx_dataset(img, lab, "synthetic", "train", 4);
    EXPECT_EQ(d.name, "synthetic");
    EXPECT_EQ(d.split, "train");
    EXPECT_EQ(d.num_classes, 4);
    check_synthetic(d);
  }
}

TEST_F(Idx, RejectsCorruptFilesNamingThem) {
  const std::string good = idx_bytes({4, 2, 3}, kPixels);
  for (bool gz : {false, true}) {
    SCOPED_TRACE(gz ? "gzip" : "raw");
    const std::string p = path(gz ? "corrupt_images.gz" : "corrupt_images");
    auto check = [&](const std::string& bytes, int ndim, const std::vector<std::string>& parts) {
      write_file(p, bytes, gz);
      std::vector<std::string> all = parts;
      all.insert(all.begin(), p);
      expect_error([&] { read_idx(p, ndim); }, all);
    };
    std::string magic = good;
    magic[0] = 1;
    check(magic, 3, {"not an IDX file", "01 00"});
    check(idx_bytes({4, 2, 3}, kPixels, 0x0D), 3, {"0x0d", "0x08"});
    check(good, 1, {"3 dimensions", "expected 1"});
    check(good.substr(0, good.size() - 1), 3, {"truncated", "24 bytes", "23"});
    check(good + "xy", 3, {"2 unexpected bytes"});
    check(good.substr(0, 9), 3, {"truncated IDX header"});
    check(std::string("\0\0", 2), 3, {"too short"});
    // Huge claimed dimensions must not be trusted for an allocation.
    check(idx_bytes({0xffffffff, 0xffffffff, 0xffffffff}, kPixels), 3, {"truncated"});
  }
  expect_error([&] { read_idx(path("nope"), 3); }, {path("nope"), "no such file"});
}

TEST_F(Idx, RejectsTruncatedGzipStream) {
  write_file(path("full.gz"), idx_bytes({4, 2, 3}, kPixels), true);
  std::ifstream in(path("full.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  write_file(path("cut.gz"), gz.substr(0, gz.size() / 2));
  expect_error([&] { read_idx(path("cut.gz"), 3); }, {path("cut.gz")});
}

TEST_F(Idx, RejectsInconsistentImageAndLabelFiles) {
  const std::string img = path("images_file"), lab = path("labels_file");
  write_file(img, idx_bytes({4, 2, 3}, kPixels));

  write_file(lab, idx_bytes({3}, {0, 1, 2}));
  expect_error([&] { load_idx_dataset(img, lab, "s", "train", 4); }, {img, lab, "4 images", "3 labels"});

  write_file(lab, idx_bytes({4}, {2, 0, 4, 1}));
  expect_error([&] { load_idx_dataset(img, lab, "s", "train", 4); }, {lab, "label 4", "index 2", "[0, 4)"});
  write_file(lab, idx_bytes({4}, {2, 0, 255, 1}));
  expect_error([&] { load_idx_dataset(img, lab, "s", "train", 10); }, {lab, "label 255", "index 2"});

  // Swapped arguments: the label file is not 3-D.
  write_file(lab, idx_bytes({4}, kLabels));
  expect_error([&] { load_idx_dataset(lab, img, "s", "train", 4); }, {lab, "1 dimensions", "expected 3"});
}

TEST_F(Idx, LoadDatasetFindsFilesAndExplainsWhatIsMissing) {
  // A data dir laid out like scripts/setup.sh makes it, mixing raw and .gz files.
  fs::create_directories(dir_ / "mnist");
  write_file(path("mnist/t10k-images-idx3-ubyte.gz"), idx_bytes({4, 2, 3}, kPixels), true);
  write_file(path("mnist/t10k-labels-idx1-ubyte"), idx_bytes({4}, kLabels));
  // Labels 2 and 1 are within MNIST's 10 classes; classes 4..9 are empty.
  const Dataset d = load_dataset("mnist", "test", dir_.string());
  EXPECT_EQ(d.name, "mnist");
  EXPECT_EQ(d.split, "test");
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.class_index.size(), 10u);
  EXPECT_EQ(class_counts(d), (std::vector<int64_t>{1, 1, 2, 0, 0, 0, 0, 0, 0, 0}));

  expect_error([&] { load_dataset("mnist", "train", dir_.string()); },
               {path("mnist/train-images-idx3-ubyte"), "scripts/setup.sh", "--data-dir", "DRIFTX_DATA_DIR"});
  expect_error([&] { load_dataset("cifar10", "train", dir_.string()); }, {"'cifar10'", "mnist, fashion-mnist"});
  expect_error([&] { load_dataset("mnist", "val", dir_.string()); }, {"'val'", "train, test"});
  EXPECT_EQ(dataset_names(), (std::vector<std::string>{"mnist", "fashion-mnist"}));
}

TEST(DataDir, FlagThenEnvironmentThenDefault) {
  const char* old = std::getenv("DRIFTX_DATA_DIR");
  const std::string saved = old ? old : "";
  ::setenv("DRIFTX_DATA_DIR", "/from/env", 1);
  EXPECT_EQ(resolve_data_dir("/from/flag"), "/from/flag");
  EXPECT_EQ(resolve_data_dir(), "/from/env");
  ::unsetenv("DRIFTX_DATA_DIR");
  const std::string fallback = resolve_data_dir();
  EXPECT_FALSE(fallback.empty());
  EXPECT_TRUE(fallback == "./data" || fs::is_directory(fallback)) << fallback;
  if (old) ::setenv("DRIFTX_DATA_DIR", saved.c_str(), 1);
}

TEST(RealData, Mnist) {
  if (!have_real("mnist")) GTEST_SKIP() << "MNIST not found under " << resolve_data_dir() << "/mnist";
  check_real(load_dataset("mnist", "train"), 60000, {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
  check_real(load_dataset("mnist", "test"), 10000, {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
}

TEST(RealData, FashionMnist) {
  if (!have_real("fashion-mnist")) GTEST_SKIP() << "Fashion-MNIST not found";
  check_real(load_dataset("fashion-mnist", "train"), 60000, std::vector<int64_t>(10, 6000));
  check_real(load_dataset("fashion-mnist", "test"), 10000, std::vector<int64_t>(10, 1000));
}
