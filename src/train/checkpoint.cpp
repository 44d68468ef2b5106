// Checkpoint container: archive bytes + footer "DXCK" | uint64 length | uint32 crc32, so a truncated or
// bit-flipped file is detected before LibTorch tries to parse it. Summary caches use the same footer:
// LibTorch's archive reader trusts the sizes inside a damaged archive (it allocated and touched
// gigabytes on a fuzzed cache, fuzz/fuzz_summary_cache), so nothing unchecked reaches it.
#include <zlib.h>

#include <cstring>
#include <sstream>

#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/train.h"

namespace driftx {

namespace {
constexpr char kMagic[4] = {'D', 'X', 'C', 'K'};
constexpr size_t kFooter = 4 + 8 + 4;

uint32_t crc_of(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()),
                                     static_cast<uInt>(bytes.size())));
}
}  // namespace

void write_checkpoint_bytes(const std::string& path, const std::string& archive_bytes) {
  write_file_with_crc(path, archive_bytes);
}

std::string read_checkpoint_bytes(const std::string& path) { return read_file_with_crc(path, "checkpoint"); }

torch::serialize::InputArchive open_checkpoint(const std::string& path) {
  return open_archive(read_checkpoint_bytes(path), fmt::format("checkpoint '{}'", path));
}

void write_file_with_crc(const std::string& path, const std::string& archive_bytes) {
  std::string out = archive_bytes;
  const uint64_t n = archive_bytes.size();
  const uint32_t crc = crc_of(archive_bytes);
  out.append(kMagic, 4);
  out.append(reinterpret_cast<const char*>(&n), 8);
  out.append(reinterpret_cast<const char*>(&crc), 4);
  write_file_atomic(path, out);
}

std::string read_file_with_crc(const std::string& path, const std::string& what) {
  const std::string bytes = read_file(path);
  DRIFTX_CHECK(bytes.size() >= kFooter && std::memcmp(bytes.data() + bytes.size() - kFooter, kMagic, 4) == 0,
               "{} '{}' is truncated or not a driftx {} (no footer)", what, path, what);
  uint64_t n = 0;
  uint32_t crc = 0;
  std::memcpy(&n, bytes.data() + bytes.size() - 12, 8);
  std::memcpy(&crc, bytes.data() + bytes.size() - 4, 4);
  DRIFTX_CHECK(n == bytes.size() - kFooter, "{} '{}' is truncated: {} bytes recorded, {} present", what, path, n,
               bytes.size() - kFooter);
  std::string archive = bytes.substr(0, n);
  DRIFTX_CHECK(crc_of(archive) == crc, "{} '{}' is corrupted: checksum mismatch", what, path);
  return archive;
}

}  // namespace driftx
