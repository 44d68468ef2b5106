// Shipped weights (the FID evaluators, the feature encoders): a torch::save archive of a module and a
// .json record beside it holding the archive's SHA-256, checked by the loaders before LibTorch parses it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace driftx {

// x.pt -> x.json
std::string weights_record_path(const std::string& weights);
// Writes the module's archive to `weights` atomically and `record` plus "sha256" of those bytes to the
// .json beside it; returns the digest (hashed from the bytes written, so file and digest agree).
std::string save_weights(torch::nn::Module& module, const std::string& weights, nlohmann::json record);
// Loads archive bytes (already checked against their record) into `module`.
void load_weights(torch::nn::Module& module, const std::string& bytes);

}  // namespace driftx
