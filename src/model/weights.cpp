#include "driftx/weights.h"

#include <sstream>

#include "driftx/files.h"
#include "driftx/sha256.h"

namespace driftx {

std::string weights_record_path(const std::string& weights) { return weights.substr(0, weights.size() - 3) + ".json"; }

std::string save_weights(torch::nn::Module& module, const std::string& weights, nlohmann::json record) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string sha = sha256_hex(bytes.str());
  write_file_atomic(weights, bytes.str());
  record["sha256"] = sha;
  write_json(weights_record_path(weights), record);
  return sha;
}

void load_weights(torch::nn::Module& module, const std::string& bytes) {
  auto archive = open_archive(bytes, "weights archive");
  module.load(archive);
}

}  // namespace driftx
