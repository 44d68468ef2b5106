#include "driftx/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "driftx/error.h"
#include "driftx/interrupt.h"

namespace driftx {

namespace {

constexpr const char* kTempMarker = ".tmp.";

// Closes the descriptor, removes the temporary and forgets it, unless released after the rename.
struct TempFile {
  std::string path;
  int fd = -1, slot = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
    unregister_temp_file(slot);
  }
};

std::string why() { return std::strerror(errno); }

}  // namespace

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  static std::atomic<uint64_t> serial{0};
  TempFile tmp;
  tmp.path = fmt::format("{}{}{}.{}", path, kTempMarker, ::getpid(), serial.fetch_add(1));
  tmp.slot = register_temp_file(tmp.path);
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DRIFTX_CHECK(tmp.fd >= 0, "cannot write '{}': {} (does the directory exist and is it writable?)", path, why());
  size_t total = 0, written = 0;
  for (const auto& p : parts) total += p.size();
  const std::string name = std::filesystem::path(path).filename().string();
  for (const auto& p : parts) {
    for (size_t off = 0; off < p.size();) {
      size_t chunk = std::min<size_t>(p.size() - off, size_t{1} << 26);
      if (written < total / 2) chunk = std::min(chunk, total / 2 - written);
      const ssize_t n = ::write(tmp.fd, p.data() + off, chunk);
      if (n < 0 && errno == EINTR) continue;
      DRIFTX_CHECK(n > 0, "writing '{}' failed: {}; the previous file, if any, is unchanged", path, why());
      // Half-way through: where a crash test kills the process (the previous file must survive).
      const bool crossed_half = written < total / 2 && written + static_cast<size_t>(n) == total / 2;
      off += static_cast<size_t>(n), written += static_cast<size_t>(n);
      if (crossed_half) crash_point("write:" + name);
    }
  }
  DRIFTX_CHECK(::fsync(tmp.fd) == 0, "writing '{}' failed: {}; the previous file, if any, is unchanged", path, why());
  const int fd = tmp.fd;
  tmp.fd = -1;
  DRIFTX_CHECK(::close(fd) == 0, "writing '{}' failed: {}; the previous file, if any, is unchanged", path, why());
  DRIFTX_CHECK(::rename(tmp.path.c_str(), path.c_str()) == 0, "cannot move '{}' into place: {}", path, why());
  tmp.keep = true;
  // The rename itself is durable once the directory is synced (best effort: not every file system can).
  const auto parent = std::filesystem::path(path).parent_path();
  const int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, std::vector<std::string_view>{bytes});
}

void write_json(const std::string& path, const nlohmann::json& value) { write_file_atomic(path, value.dump(2) + "\n"); }

void remove_stale_temp_files(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto at = name.rfind(kTempMarker);
    if (at == std::string::npos) continue;
    const std::string rest = name.substr(at + std::strlen(kTempMarker));
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || rest.find_first_not_of("0123456789.") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // a live writer's
    std::filesystem::remove(entry.path(), ec);
  }
}

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& what) {
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  DRIFTX_CHECK(fd_ >= 0, "cannot lock {} '{}': {}", what, path, why());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    const std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
    if (err == EWOULDBLOCK)
      fail("{} '{}' is in use by another driftx process (pid {}); wait for it to finish or choose another directory",
           what, dir, holder.substr(0, holder.find('\n')));
    fail("cannot lock {} '{}': {}", what, path, std::strerror(err));
  }
  // The holder's pid, for the refusal message of the next one (advisory: the lock is the flock).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // not needed for the lock itself
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

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

void check_within_storage(const torch::Tensor& t, const std::string& what) {
  if (!t.defined()) return;
  auto bad = [&] {
    fail("{} is damaged: a tensor of sizes {} (strides {}, offset {}) lies outside its storage of {} bytes", what,
         shape_str(t.sizes()), shape_str(t.strides()), t.storage_offset(), t.has_storage() ? t.storage().nbytes() : 0);
  };
  if (t.numel() == 0) return;
  if (!t.has_storage()) bad();
  // Index of the farthest element, in elements from the storage's start, without overflow.
  int64_t last = t.storage_offset();
  if (last < 0) bad();
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t step = 0;
    if (t.stride(d) < 0 || __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &step) ||
        __builtin_add_overflow(last, step, &last))
      bad();
  }
  int64_t end = 0;
  if (__builtin_add_overflow(last, int64_t{1}, &end) ||
      __builtin_mul_overflow(end, static_cast<int64_t>(t.element_size()), &end) ||
      end > static_cast<int64_t>(t.storage().nbytes()))
    bad();
}

torch::serialize::InputArchive open_archive(const std::string& bytes, const std::string& what) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  for (const auto& key : archive.keys()) {
    c10::IValue value;
    archive.read(key, value);
    value.visit([&](const c10::IValue& v) {  // objects (sub-archives), lists, tuples and dicts are descended
      if (v.isTensor()) check_within_storage(v.toTensor(), what);
      return false;
    });
  }
  return archive;
}

std::string tensor_to_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace driftx
