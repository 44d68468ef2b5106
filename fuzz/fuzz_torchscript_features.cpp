// TorchScript feature encoders (--features torchscript:PATH; src/model/features.cpp). Contract:
// expand_feature_groups loads the file and runs it on a probe batch, image_features computes every
// group it names; both return or throw driftx::Error, or c10::Error where LibTorch's interpreter
// refuses the module's own computation (the CLI prints it on one line).
#include "driftx/features.h"
#include "fuzz_support.h"

using namespace driftx;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_path("encoder.pt");
  fuzz::write_input(path, data, size);
  clear_feature_encoders();  // encoders are cached by path: load this input, not the last one
  torch::NoGradGuard no_grad;
  const auto probe = torch::linspace(-1, 1, 2 * 28 * 28).reshape({2, 1, 28, 28});
  std::vector<std::string> groups;
  if (!fuzz::expect_contract("expand_feature_groups",
                             [&] { groups = expand_feature_groups({"torchscript:" + path}, probe); }))
    return 0;
  for (const auto& g : groups) fuzz::expect_contract("image_features", [&] { image_features(probe, g); });
  return 0;
}
