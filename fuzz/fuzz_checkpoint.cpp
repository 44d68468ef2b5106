// Checkpoints (src/train/checkpoint.cpp: the CRC-32 footer; src/train/trainer.cpp: load_generator, the
// path of driftx sample/eval/export). The first input byte picks the mode:
//   bit 0 clear: the rest is the file as it lies on disk (footer included): the footer check;
//   bit 0 set:   the rest is the archive, and the target appends a valid footer with the project's own
//                writer, so that the fuzzer reaches the archive behind the checksum.
//   bit 1:       load the EMA generator instead of the raw one.
// Contract: read_checkpoint_bytes returns exactly the archive its writer was given or throws
// driftx::Error; load_generator returns a generator that samples, or throws driftx::Error (one line).
#include <sstream>

#include "driftx/train.h"
#include "fuzz_support.h"

using namespace driftx;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_path("checkpoint.pt");
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) {
    fuzz::expect_contract("write_checkpoint_bytes", [&] { write_checkpoint_bytes(path, rest); });
    std::string back;
    if (!fuzz::expect_contract("read_checkpoint_bytes", [&] { back = read_checkpoint_bytes(path); }) || back != rest)
      fuzz::finding("checkpoint footer", "round trip", "read_checkpoint_bytes(write_checkpoint_bytes(x)) != x");
  } else {
    fuzz::write_input(path, rest);
    if (!fuzz::expect_contract("read_checkpoint_bytes", [&] { read_checkpoint_bytes(path); })) return 0;
  }
  fuzz::expect_contract("load_generator", [&] {
    GeneratorConfig cfg;
    Generator g = load_generator(path, (mode & 2) != 0, &cfg);
    // A loaded generator must run: one sample of its own configuration.
    torch::NoGradGuard no_grad;
    auto z = torch::zeros({1, cfg.noise_dim});
    auto labels = cfg.num_classes > 0 ? torch::zeros({1}, torch::kLong) : torch::Tensor();
    g->forward(z, labels);
  });
  return 0;
}
