// Writing outputs safely: every file goes to a temporary name first and is renamed into place, so a
// crash never leaves a half-written result or checkpoint behind.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace driftx {

void write_file_atomic(const std::string& path, const std::string& bytes);
void write_json(const std::string& path, const nlohmann::json& value);  // pretty-printed, atomic
nlohmann::json read_json(const std::string& path);
std::string read_file(const std::string& path);  // whole file; error names the path
void make_dirs(const std::string& path);         // mkdir -p; error names the path

// Files that end in the footer "DXCK" | uint64 length | uint32 CRC-32 of what precedes it (checkpoints,
// summary caches; src/train/checkpoint.cpp), written atomically. Reading verifies the footer and returns
// the bytes before it; a truncated or corrupted file is a driftx::Error naming `what` and the path.
void write_file_with_crc(const std::string& path, const std::string& bytes);
std::string read_file_with_crc(const std::string& path, const std::string& what);

// Text stored inside LibTorch archives (headers, configurations) as a uint8 tensor, and back.
torch::Tensor bytes_to_tensor(const std::string& bytes);
std::string tensor_to_bytes(const torch::Tensor& t);

}  // namespace driftx
