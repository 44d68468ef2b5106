// Training configuration JSON (driftx train --config, config.json of a run; src/train/trainer.cpp) and
// the generator configuration stored in checkpoints (src/model/generator.cpp). Contract: read_json,
// TrainConfig::from_json, validate and GeneratorConfig::from_json accept or throw driftx::Error; an
// accepted configuration survives to_json + from_json unchanged.
#include "driftx/files.h"
#include "driftx/generator.h"
#include "driftx/train.h"
#include "fuzz_support.h"

using namespace driftx;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_path("config.json");
  fuzz::write_input(path, data, size);
  nlohmann::json j;
  if (!fuzz::expect_contract("read_json", [&] { j = read_json(path); })) return 0;
  fuzz::expect_contract("GeneratorConfig::from_json", [&] { GeneratorConfig::from_json(j); });
  TrainConfig c;
  if (!fuzz::expect_contract("TrainConfig::from_json", [&] { c = TrainConfig::from_json(j); })) return 0;
  fuzz::expect_contract("TrainConfig::validate", [&] { c.validate(); });
  TrainConfig again;
  if (!fuzz::expect_contract("TrainConfig::from_json(to_json)", [&] { again = TrainConfig::from_json(c.to_json()); }) ||
      again.to_json() != c.to_json())
    fuzz::finding("TrainConfig round trip", "mismatch", c.to_json().dump());
  return 0;
}
