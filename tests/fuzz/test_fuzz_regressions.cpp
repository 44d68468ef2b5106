// Regression tests for what the fuzz targets (fuzz/, docs/fuzzing.md) found: each input under
// tests/fuzz/inputs/ once crashed a target or broke its contract, and must now be refused with one
// line of driftx::Error naming the file. The inputs are also in the seed corpus fuzz/corpus/<target>/.
#include <gtest/gtest.h>

#include "test_support.h"

#include <filesystem>
#include <sstream>

#include <torch/script.h>

#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/npy.h"
#include "driftx/projected_field.h"
#include "driftx/train.h"

using namespace driftx;
using testing_support::expect_error;

namespace {

std::string input(const std::string& name) { return std::string(DRIFTX_SOURCE_DIR) + "/tests/fuzz/inputs/" + name; }

using FuzzRegressions = testing_support::TempDirTest;

// The field the summary-cache target loads into (fuzz/field_fixture.h): 3 classes, 6 landmarks, D = 4.
ProjectedField small_field() {
  ProjectedFieldConfig cfg;
  cfg.temperatures = {0.05, 0.2};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  return ProjectedField(torch::randn({6, 4}, gen, torch::kFloat32), torch::Tensor(), ShardLayout{3, 1}, 1.5, cfg);
}

}  // namespace

// fuzz_npy: a header key holding '\r' and '\n' was quoted raw, so the error spanned several lines.
TEST_F(FuzzRegressions, NpyHeaderKeyWithLineBreaksGivesOneLineError) {
  expect_error([&] { read_npy(input("npy_key_with_carriage_return.npy")); },
               {"malformed .npy header", "unexpected key", "\\x0d"});
}

// fuzz_npy (CI, 2026-11-26): an unsupported dtype holding a line break was quoted raw in the "not
// supported" message. driftx::Error now escapes control characters in every message.
TEST_F(FuzzRegressions, NpyDtypeWithLineBreakGivesOneLineError) {
  expect_error([&] { read_npy(input("npy_dtype_with_line_break.npy")); },
               {"npy_dtype_with_line_break.npy", "dtype '<f7\\x0a\\x0d' is not supported"});
  const Error e("a\nb\x7f");
  EXPECT_EQ(std::string(e.what()), "a\\x0ab\\x7f");
}

// fuzz_train_config: {"steps": 1e30} reached nlohmann's double -> int64 conversion (undefined
// behaviour, UBSan), and "seed": -1 silently became 2^64 - 1.
TEST_F(FuzzRegressions, TrainConfigIntegersMustBeIntegersInRange) {
  expect_error([&] { TrainConfig::from_json(read_json(input("train_config_steps_1e30.json"))); },
               {"training configuration", "must be"});
  expect_error([] { TrainConfig::from_json(nlohmann::json::parse(R"({"steps": 1e30})")); }, {"'steps'", "1e+30"});
  expect_error([] { TrainConfig::from_json(nlohmann::json::parse(R"({"width": 64.5})")); }, {"'width'", "integer"});
  expect_error([] { TrainConfig::from_json(nlohmann::json::parse(R"({"seed": -1})")); }, {"'seed'", "non-negative"});
  expect_error([] { TrainConfig::from_json(nlohmann::json::parse(R"({"landmarks": 18446744073709551615})")); },
               {"'landmarks'"});
  expect_error([] { TrainConfig::from_json(nlohmann::json::parse("[1, 2]")); }, {"must be a JSON object"});
  const auto c = TrainConfig::from_json(nlohmann::json::parse(R"({"steps": 7, "seed": 18446744073709551615})"));
  EXPECT_EQ(c.steps, 7);
  EXPECT_EQ(c.seed, UINT64_MAX);
}

// fuzz_summary_cache: an archive with damaged TorchScript code made LibTorch throw
// torch::jit::ErrorReport (not c10::Error), which escaped ProjectedField::load, so training stopped
// instead of rebuilding the cache. Behind a valid CRC footer it is now one driftx::Error.
TEST_F(FuzzRegressions, SummaryCacheWithDamagedCodeIsRefused) {
  write_file_with_crc(path("cache.pt"), read_file(input("summary_cache_archive_damaged_code")));
  ProjectedField f = small_field();
  expect_error([&] { f.load(path("cache.pt"), "random_per_class", "fuzz-data"); },
               {"summary cache", "cache.pt", "delete it to rebuild"});
}

// fuzz_summary_cache: a damaged pickle length made LibTorch allocate and touch gigabytes before
// failing. Caches now carry the checkpoints' CRC footer, checked before LibTorch reads anything: the
// raw archive (no footer) and a bit-flipped cache are refused at once.
TEST_F(FuzzRegressions, SummaryCacheIsChecksummedBeforeLibTorchReadsIt) {
  const std::string raw = input("summary_cache_archive_huge_pickle_length");
  ProjectedField f = small_field();
  expect_error([&] { f.load(raw, "random_per_class", "fuzz-data"); }, {"summary cache", "no footer"});
  f.save(path("good.pt"), "random_per_class", "fuzz-data");
  std::string bytes = read_file(path("good.pt"));
  bytes[bytes.size() / 3] ^= 0x04;
  write_file_atomic(path("flipped.pt"), bytes);
  expect_error([&] { f.load(path("flipped.pt"), "random_per_class", "fuzz-data"); },
               {"summary cache", "flipped.pt", "checksum mismatch"});
  ProjectedField g = small_field();
  g.load(path("good.pt"), "random_per_class", "fuzz-data");  // the writer's own file still loads
}

// Found by reading the loader for the summary-cache target's contract (a cache that loads must be
// usable): only kysum's shape was checked, so a ksum or counts of another shape or type loaded and
// failed later inside LibTorch.
TEST_F(FuzzRegressions, SummaryCacheWithWrongShapesOrTypesIsRefused) {
  ProjectedField f = small_field();
  f.save(path("good.pt"), "random_per_class", "fuzz-data");
  auto good = open_archive(read_file_with_crc(path("good.pt"), "summary cache"), "summary cache");
  for (const std::string& bad : {"ksum_shape", "counts_type"}) {
    torch::serialize::OutputArchive out;
    for (const auto& key : good.keys()) {
      torch::Tensor t;
      good.read(key, t);
      if (bad == "ksum_shape" && key == "s0_t1_ksum") t = torch::zeros({2, 6}, torch::kFloat64);
      if (bad == "counts_type" && key == "s0_t0_counts") t = t.to(torch::kFloat32);
      out.write(key, t);
    }
    std::ostringstream bytes;
    out.save_to(bytes);
    write_file_with_crc(path(bad + ".pt"), bytes.str());
    ProjectedField g = small_field();
    expect_error([&] { g.load(path(bad + ".pt"), "random_per_class", "fuzz-data"); },
                 {"summary cache", bad + ".pt", "wrong shapes or types"});
  }
}

// fuzz_checkpoint: an archive behind a valid checksum whose code LibTorch cannot parse threw
// torch::jit::ErrorReport out of load_generator (driftx sample/eval/export).
TEST_F(FuzzRegressions, CheckpointWithValidChecksumButDamagedArchiveIsRefused) {
  write_checkpoint_bytes(path("checkpoint.pt"), read_file(input("checkpoint_archive_damaged_code")));
  expect_error([&] { load_generator(path("checkpoint.pt"), true); },
               {"checkpoint", "checkpoint.pt", "valid checksum but cannot be read"});
  write_checkpoint_bytes(path("json.pt"), "{\"noise_dim\": 2}");
  expect_error([&] { load_generator(path("json.pt"), false); }, {"checkpoint", "json.pt", "cannot be read"});
}

// The other checkpoint readers word it the same way (they printed LibTorch's message): the stored
// configuration (driftx eval without --dataset, the check of --resume) and the training state that
// --resume loads, here from a checkpoint whose configuration is intact and whose generator is missing.
TEST_F(FuzzRegressions, EveryCheckpointReaderRefusesADamagedArchiveInOneLine) {
  write_checkpoint_bytes(path("code.pt"), read_file(input("checkpoint_archive_damaged_code")));
  expect_error([&] { checkpoint_config(path("code.pt")); }, {"checkpoint", "code.pt", "valid checksum but cannot be read"});
  write_checkpoint_bytes(path("json.pt"), "{\"noise_dim\": 2}");
  expect_error([&] { checkpoint_config(path("json.pt")); }, {"checkpoint", "json.pt", "cannot be read"});

  auto c = testing_support::tiny_train_config("standard", dir_.string());
  const std::string ckpt = c.out_dir + "/checkpoint.pt";
  Trainer(c).save_checkpoint(ckpt);
  torch::Tensor config;
  open_checkpoint(ckpt).read("config", config);
  torch::serialize::OutputArchive only_config;
  only_config.write("config", config);
  std::ostringstream bytes;
  only_config.save_to(bytes);
  write_checkpoint_bytes(ckpt, bytes.str());
  EXPECT_EQ(checkpoint_config(ckpt).to_json(), Trainer(c).config().to_json());  // the configuration still reads
  expect_error([&] { Trainer resumed(c, /*resume=*/true); }, {"checkpoint", "checkpoint.pt", "valid checksum but cannot be read", "generator"});
}

// fuzz_torchscript_features: an encoder file with damaged code threw torch::jit::ErrorReport out of
// the loader (it caught only c10::Error); a module whose outputs are not per-image tensors failed
// inside LibTorch.
TEST_F(FuzzRegressions, DamagedOrWrongTorchScriptEncodersAreRefused) {
  const auto probe = torch::zeros({2, 1, 28, 28});
  clear_feature_encoders();
  expect_error([&] { expand_feature_groups({"torchscript:" + input("encoder_damaged_code.pt")}, probe); },
               {"feature encoder", "encoder_damaged_code.pt", "cannot be loaded as TorchScript"});
  torch::jit::Module scalar("Scalar");
  scalar.define("def forward(self, x: Tensor) -> List[Tensor]:\n    return [x.sum(), x.flatten(1)]\n");
  scalar.save(path("scalar.pt"));
  expect_error([&] { expand_feature_groups({"torchscript:" + path("scalar.pt")}, probe); },
               {"feature encoder", "output 0 has shape []", "one row per image"});
  torch::jit::Module raises("Raises");
  raises.define("def forward(self, x: Tensor) -> Tensor:\n    return x.view(-1, 5)\n");
  raises.save(path("raises.pt"));
  expect_error([&] { expand_feature_groups({"torchscript:" + path("raises.pt")}, probe); },
               {"feature encoder", "raises.pt", "failed on images of shape [2, 1, 28, 28]"});
  torch::jit::Module ints("Ints");
  ints.define("def forward(self, x: Tensor) -> List[int]:\n    return [1, 2]\n");
  ints.save(path("ints.pt"));
  expect_error([&] { expand_feature_groups({"torchscript:" + path("ints.pt")}, probe); },
               {"feature encoder", "must return a tensor or a list/tuple of tensors"});
  clear_feature_encoders();
}

// fuzz_checkpoint (CI, 2026-11-27): LibTorch 1.13 does not check a loaded tensor against its storage.
// An archive behind a valid checksum whose generator_config tensor claimed 4096 bytes of a 96-byte
// storage made tensor_to_bytes read past the allocation (ASan: heap-buffer-overflow; with a size of
// 25 GB, out-of-memory); one whose fc.bias was shifted past its storage loaded and then failed inside
// LibTorch (c10::Error) when the generator ran.
TEST_F(FuzzRegressions, CheckpointTensorsBeyondTheirStorageAreRefused) {
  for (const std::string name : {"checkpoint_archive_config_beyond_storage", "checkpoint_archive_weight_beyond_storage"}) {
    SCOPED_TRACE(name);
    write_checkpoint_bytes(path(name + ".pt"), read_file(input(name)));
    expect_error([&] { load_generator(path(name + ".pt"), false); },
                 {"checkpoint", name + ".pt", "lies outside its storage"});
  }
}

// The check itself, on views a damaged pickle can describe (LibTorch's own view functions refuse them,
// so they are made by resizing the TensorImpl, as the unpickler does).
TEST_F(FuzzRegressions, CheckWithinStorageRefusesEveryViewThatLeavesItsStorage) {
  auto view = [](std::vector<int64_t> sizes, std::vector<int64_t> strides, int64_t offset) {
    auto t = torch::zeros({8});  // 32 bytes
    t.unsafeGetTensorImpl()->set_sizes_and_strides(sizes, strides);
    t.unsafeGetTensorImpl()->set_storage_offset(offset);
    return t;
  };
  // Inside: the whole storage, a transposed view, the last element alone, an empty view far out.
  for (const auto& t : {view({8}, {1}, 0), view({4, 2}, {1, 4}, 0), view({1}, {1}, 7), view({0}, {1}, 100)})
    EXPECT_NO_THROW(check_within_storage(t, "x")) << shape_str(t.sizes());
  // Outside: one element too many, an offset past the end, a stride too long, a full matrix shifted by
  // one, sizes whose extent overflows int64. (LibTorch turns negative strides into contiguous ones here.)
  for (const auto& t : {view({9}, {1}, 0), view({1}, {1}, 8), view({4}, {3}, 0), view({2, 4}, {4, 1}, 1),
                        view({int64_t{1} << 61, 2}, {8, 1}, 0), view({2}, {int64_t{1} << 62}, 0)})
  {
    SCOPED_TRACE(shape_str(t.sizes()) + " strides " + shape_str(t.strides()));
    expect_error([&] { check_within_storage(t, "archive 'x'"); }, {"archive 'x' is damaged", "lies outside its storage"});
  }
}

// open_archive finds such a tensor wherever the archive holds it: at the top, two sub-archives down
// (where an optimizer keeps its state), inside a list; the same archive with the tensor intact opens
// and reads back what was written.
TEST_F(FuzzRegressions, OpenArchiveChecksEveryTensorAtAnyDepth) {
  auto archive_with = [](int place, bool damaged) {
    auto t = torch::arange(8, torch::kFloat32);
    if (damaged)  // one element past its 32 bytes
      t.unsafeGetTensorImpl()->set_sizes_and_strides(std::vector<int64_t>{9}, std::vector<int64_t>{1});
    torch::serialize::OutputArchive top, mid, leaf;
    top.write("ok", torch::ones({3}));
    if (place == 0) top.write("t", t);
    if (place == 1) leaf.write("t", t);
    if (place == 2) leaf.write("list", c10::IValue(c10::List<at::Tensor>({torch::zeros({2}), t})));
    mid.write("leaf", leaf);
    top.write("mid", mid);
    std::ostringstream out;
    top.save_to(out);
    return out.str();
  };
  for (int place = 0; place < 3; ++place) {
    SCOPED_TRACE(place);
    expect_error([&] { open_archive(archive_with(place, true), "archive 'y'"); },
                 {"archive 'y' is damaged", "sizes [9]", "storage of 32 bytes"});
    auto archive = open_archive(archive_with(place, false), "archive 'y'");
    torch::Tensor ok;
    archive.read("ok", ok);
    EXPECT_TRUE(torch::equal(ok, torch::ones({3})));
  }
}
