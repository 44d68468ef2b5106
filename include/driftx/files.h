// Writing outputs safely: every file goes to a temporary in the same directory first, is synced and
// renamed into place, so a crash, a kill or a full disk never leaves a half-written result or
// checkpoint behind and never damages the previous version of the file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace driftx {

// <path>.tmp.<pid>.<n> -> fsync -> rename -> fsync of the directory. On any failure the temporary is
// removed and the error (one line) names the path and the system's reason; `path` is untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);  // concatenated
void write_json(const std::string& path, const nlohmann::json& value);  // pretty-printed, atomic
nlohmann::json read_json(const std::string& path);
std::string read_file(const std::string& path);  // whole file; error names the path
void make_dirs(const std::string& path);         // mkdir -p; error names the path

// Files that end in the footer "DXCK" | uint64 length | uint32 CRC-32 of what precedes it (checkpoints,
// summary caches; src/train/checkpoint.cpp), written atomically. Reading verifies the footer and returns
// the bytes before it; a truncated or corrupted file is a driftx::Error naming `what` and the path.
void write_file_with_crc(const std::string& path, const std::string& bytes);
std::string read_file_with_crc(const std::string& path, const std::string& what);

// Removes the temporaries of atomic writes in `dir` whose process is gone (killed mid-write).
void remove_stale_temp_files(const std::string& dir);

// An exclusive flock on <dir>/.lock for the object's lifetime. The kernel releases it when the process
// dies, so a killed run never blocks the next; a second holder (another process, or another object in
// this one) is refused in one line naming `what` and the holder's pid.
class DirectoryLock {
 public:
  DirectoryLock(const std::string& dir, const std::string& what);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Text stored inside LibTorch archives (headers, configurations) as a uint8 tensor, and back.
// A tensor read from an archive must come through open_archive (below) before tensor_to_bytes.
torch::Tensor bytes_to_tensor(const std::string& bytes);
std::string tensor_to_bytes(const torch::Tensor& t);

// LibTorch 1.13 does not check a loaded tensor's sizes, strides and offset against its storage: an
// archive whose checksum is valid but whose pickle was damaged (or written by hand) can describe a
// tensor larger than the bytes behind it, and reading it reads past the allocation (found by
// fuzz/fuzz_checkpoint). Every tensor driftx reads from an archive goes through this check: a view
// that leaves its storage (or has a negative stride or offset) is a driftx::Error naming `what`.
void check_within_storage(const torch::Tensor& t, const std::string& what);

// The one way driftx opens a LibTorch archive it reads tensors from (checkpoints, summary caches,
// encoder and evaluator weights): parses `bytes` and walks every value in it once, at any depth
// (sub-archives, optimizer state, lists), passing each tensor through check_within_storage. What
// LibTorch itself throws while parsing (c10::Error, torch::jit::ErrorReport) is left to the caller,
// which knows how to word it for its file.
torch::serialize::InputArchive open_archive(const std::string& bytes, const std::string& what);

}  // namespace driftx
