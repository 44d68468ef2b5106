#include "driftx/files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "driftx/error.h"

namespace driftx {

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DRIFTX_CHECK(out.good(), "cannot write '{}': check the directory exists and is writable", path);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    DRIFTX_CHECK(out.good(), "writing '{}' failed (disk full?)", path);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  DRIFTX_CHECK(!ec, "cannot move '{}' into place: {}", path, ec.message());
}

void write_json(const std::string& path, const nlohmann::json& value) { write_file_atomic(path, value.dump(2) + "\n"); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DRIFTX_CHECK(in.good(), "cannot open '{}': no such file or not readable", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' is not valid JSON: {}", path, e.what());
  }
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  DRIFTX_CHECK(!ec, "cannot create directory '{}': {}", path, ec.message());
}

torch::Tensor bytes_to_tensor(const std::string& bytes) {
  return torch::from_blob(const_cast<char*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, torch::kUInt8).clone();
}

std::string tensor_to_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace driftx
