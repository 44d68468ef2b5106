// Writes the seed corpus, fuzz/corpus/<target>/, with the project's own writers plus a few malformed
// files each:  build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus
#include <zlib.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include <torch/script.h>

#include "driftx/files.h"
#include "driftx/generator.h"
#include "driftx/npy.h"
#include "driftx/train.h"
#include "field_fixture.h"
#include "fuzz_support.h"

using namespace driftx;
namespace fs = std::filesystem;

namespace {

fs::path root;

std::string path_in(const std::string& target, const std::string& name) {
  fs::create_directories(root / target);
  return (root / target / name).string();
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  write_file_atomic(path_in(target, name), bytes);
}

std::string cut(const std::string& s, size_t n) { return s.substr(0, std::min(n, s.size())); }

std::string gzip(const std::string& bytes) {
  const std::string tmp = fuzz::temp_path("gz");
  gzFile gz = gzopen(tmp.c_str(), "wb9");
  gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(gz);
  return read_file(tmp);
}

void npy_seeds() {
  const std::string t = "npy";
  write_npy(path_in(t, "f32_2x3.npy"), torch::arange(6, torch::kFloat32).reshape({2, 3}));
  write_npy(path_in(t, "f64_5.npy"), torch::linspace(-1, 1, 5, torch::kFloat64));
  write_npy(path_in(t, "i64_scalar.npy"), torch::tensor(int64_t{42}));
  write_npy(path_in(t, "f32_0x4.npy"), torch::zeros({0, 4}));
  const std::string good = read_file(path_in(t, "f32_2x3.npy"));
  put(t, "bad_truncated.npy", cut(good, good.size() - 5));
  put(t, "bad_fortran.npy", [&] {
    std::string s = good;
    s.replace(s.find("False"), 5, "True ");
    return s;
  }());
  put(t, "bad_bigendian.npy", [&] {
    std::string s = good;
    s[s.find("<f4")] = '>';
    return s;
  }());
  put(t, "bad_v2_header_len.npy", std::string("\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", 14));
}

void idx_seeds() {
  const std::string t = "idx";
  const std::string labels = std::string("\0\0\x08\x01\0\0\0\x05", 8) + std::string("\x00\x01\x02\x03\x09", 5);
  std::string images = std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x03\0\0\0\x03", 16);
  for (int i = 0; i < 18; ++i) images.push_back(static_cast<char>(i * 14));
  put(t, "labels-idx1-ubyte", labels);
  put(t, "images-idx3-ubyte", images);
  put(t, "labels-idx1-ubyte.gz", gzip(labels));
  put(t, "images-idx3-ubyte.gz", gzip(images));
  put(t, "bad_truncated-idx3-ubyte", cut(images, images.size() - 4));
  put(t, "bad_truncated-idx3-ubyte.gz", cut(gzip(images), 20));
  put(t, "bad_type-idx1-ubyte", std::string("\0\0\x0d\x01\0\0\0\x01\0\0\0\0", 12));
}

void checkpoint_seeds() {
  const std::string t = "checkpoint";
  // The layout of Trainer::write_checkpoint, with the parts load_generator reads, for a tiny generator.
  GeneratorConfig gc;
  gc.noise_dim = 2;
  gc.image_size = 4;
  gc.num_classes = 2;
  gc.width = 8;
  for (bool alpha : {false, true}) {
    gc.alpha_conditioning = alpha;
    torch::manual_seed(1);
    Generator g(gc), ema(gc);
    torch::serialize::OutputArchive archive, gen_ar, ema_ar;
    g->save(gen_ar);
    ema->save(ema_ar);
    archive.write("config", bytes_to_tensor(TrainConfig().to_json().dump()));
    archive.write("generator_config", bytes_to_tensor(gc.to_json().dump()));
    archive.write("generator", gen_ar);
    archive.write("ema", ema_ar);
    archive.write("step", torch::tensor(int64_t{3}));
    std::ostringstream out;
    archive.save_to(out);
    const std::string name = alpha ? "alpha" : "plain";
    // Mode 1: the archive, footer added by the target. Mode 0 / 2: the file on disk, raw / EMA.
    put(t, "archive_" + name, "\x01" + out.str());
    write_checkpoint_bytes(fuzz::temp_path("ck"), out.str());
    const std::string file = read_file(fuzz::temp_path("ck"));
    put(t, "file_" + name, "\x02" + file);
    if (!alpha) {
      put(t, "bad_file_truncated", std::string(1, '\0') + cut(file, file.size() - 3));
      std::string flipped = file;
      flipped[flipped.size() / 2] ^= 0x10;
      put(t, "bad_file_bitflip", std::string(1, '\0') + flipped);
      put(t, "bad_archive_not_zip", "\x01{\"noise_dim\": 2}");
    }
  }
}

void summary_cache_seeds() {
  const std::string t = "summary_cache";
  ProjectedField f = fuzz::fixture_field();
  torch::Tensor real, labels;
  fuzz::fixture_data(real, labels);
  f.add_data(real, labels);
  // Mode 0: the file as saved; mode 1: the archive inside it (the target adds the footer).
  const std::string tmp = fuzz::temp_path("cache.pt");
  f.save(tmp, fuzz::kCacheStrategy, fuzz::kCacheFingerprint);
  const std::string file = read_file(tmp);
  put(t, "file", std::string(1, '\0') + file);
  put(t, "archive", "\x01" + read_file_with_crc(tmp, "summary cache"));
  put(t, "bad_file_truncated", std::string(1, '\0') + cut(file, file.size() / 2));
  f.save(tmp, fuzz::kCacheStrategy, "other-data");
  put(t, "bad_archive_other_fingerprint", "\x01" + read_file_with_crc(tmp, "summary cache"));
}

void train_config_seeds() {
  const std::string t = "train_config";
  TrainConfig c;
  put(t, "default.json", c.to_json().dump(2));
  c.method = "standard";
  c.guidance = true;
  c.temperatures = {0.05, 0.1};
  c.features = "multiscale";
  c.steps = 100;
  put(t, "standard_guidance.json", c.to_json().dump(2));
  put(t, "partial.json", R"({"method": "driftxpress", "landmarks": 200, "seed": 3, "features": "torchscript:enc.pt"})");
  GeneratorConfig gc;
  put(t, "generator_config.json", gc.to_json().dump());
  put(t, "bad_type.json", R"({"steps": "ten", "lr": [1]})");
  put(t, "bad_truncated.json", R"({"method": "standard", "temperatures": [0.02, )");
  put(t, "bad_values.json", R"({"ema": 1.5, "log_every": 0, "seed": -1, "steps": 1e30})");
}

void torchscript_seeds() {
  const std::string t = "torchscript_features";
  {
    torch::jit::Module m("Encoder");
    m.register_parameter("w", torch::ones({2, 1, 3, 3}) / 9.0, false);
    m.define(R"(
def forward(self, x: Tensor) -> List[Tensor]:
    h = torch.conv2d(x, self.w, None, [1, 1], [1, 1])
    return [torch.avg_pool2d(x, [2, 2]), h.mean([2, 3])]
)");
    m.save(path_in(t, "list_encoder.pt"));
  }
  {
    torch::jit::Module m("Tuple");
    m.define(R"(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    return (x.mean([2, 3]), torch.avg_pool2d(x, [4, 4]))
)");
    m.save(path_in(t, "tuple_encoder.pt"));
  }
  {
    torch::jit::Module m("Plain");
    m.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.relu(x).flatten(1)
)");
    m.save(path_in(t, "tensor_encoder.pt"));
  }
  {
    torch::jit::Module m("NotFeatures");
    m.define(R"(
def forward(self, x: Tensor) -> int:
    return x.size(0)
)");
    m.save(path_in(t, "bad_returns_int.pt"));
  }
  put(t, "bad_not_zip.pt", "PK\x03\x04 not really a zip archive");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds CORPUS_DIR\n";
    return 2;
  }
  root = argv[1];
  fuzz::init_runtime();
  npy_seeds();
  idx_seeds();
  checkpoint_seeds();
  summary_cache_seeds();
  train_config_seeds();
  torchscript_seeds();
  std::cout << "seeds written under " << root << "\n";
  return 0;
}
