// IDX reader (the MNIST file format: http://yann.lecun.com/exdb/mnist/), raw or gzip-compressed.
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "driftx/data.h"
#include "driftx/error.h"

namespace driftx {
namespace {

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Whole file (decompressed when it starts with the gzip magic 1f 8b). The files are tens of MB, so
// one buffer is simpler than streaming and lets every size check see the true payload length.
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::error_code ec;
  DRIFTX_CHECK(std::filesystem::exists(path, ec), "{}: no such file", path);
  DRIFTX_CHECK(std::filesystem::is_regular_file(path, ec), "{}: not a regular file", path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  DRIFTX_CHECK(f, "{}: cannot open: {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(std::filesystem::file_size(path, ec)));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  DRIFTX_CHECK(got == bytes.size(), "{}: read error", path);
  if (bytes.size() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;

  gzFile gz = gzopen(path.c_str(), "rb");
  DRIFTX_CHECK(gz, "{}: cannot open as gzip", path);
  gzbuffer(gz, 1 << 20);
  std::vector<uint8_t> out;
  constexpr unsigned kChunk = 1 << 22;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const int n = gzread(gz, out.data() + old, kChunk);
    if (n < 0) break;
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  int err = Z_OK;
  std::string msg = gzerror(gz, &err);
  if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);  // zlib prefixes the path
  gzclose(gz);
  DRIFTX_CHECK(err == Z_OK || err == Z_STREAM_END, "{}: corrupt or truncated gzip data ({}); re-download the file",
               path, msg);
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_ndim) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  DRIFTX_CHECK(bytes.size() >= 4, "{}: only {} bytes, too short for an IDX file; re-download it", path,
               bytes.size());
  DRIFTX_CHECK(bytes[0] == 0 && bytes[1] == 0, "{}: not an IDX file (magic bytes {:02x} {:02x}, expected 00 00)",
               path, unsigned(bytes[0]), unsigned(bytes[1]));
  DRIFTX_CHECK(bytes[2] == 0x08, "{}: IDX element type 0x{:02x} is not supported; only 0x08 (unsigned byte) is",
               path, unsigned(bytes[2]));
  const int ndim = bytes[3];
  DRIFTX_CHECK(ndim == expected_ndim,
               "{}: IDX file has {} dimensions, expected {} (images are idx3, labels idx1: is it the right file?)",
               path, ndim, expected_ndim);
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  DRIFTX_CHECK(bytes.size() >= header, "{}: truncated IDX header ({} bytes, need {}); re-download the file", path,
               bytes.size(), header);

  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    const uint8_t* p = &bytes[4 + 4 * i];  // dimensions are big-endian uint32
    const uint64_t d = uint64_t(p[0]) << 24 | uint64_t(p[1]) << 16 | uint64_t(p[2]) << 8 | uint64_t(p[3]);
    a.shape.push_back(static_cast<int64_t>(d));
    // A product beyond the file size is reported below; saturate instead of overflowing.
    count = (d != 0 && count > std::numeric_limits<uint64_t>::max() / d) ? std::numeric_limits<uint64_t>::max()
                                                                          : count * d;
  }
  const uint64_t payload = bytes.size() - header;
  DRIFTX_CHECK(payload >= count,
               "{}: truncated: dimensions {} need {} bytes of data but only {} follow the header; re-download the "
               "file",
               path, dims_str(a.shape), count, payload);
  DRIFTX_CHECK(payload == count,
               "{}: {} unexpected bytes after the {} bytes that dimensions {} describe; the file is corrupt", path,
               payload - count, count, dims_str(a.shape));

  a.data = torch::empty(a.shape, torch::TensorOptions().dtype(torch::kUInt8));
  if (count > 0) std::memcpy(a.data.data_ptr(), bytes.data() + header, count);
  return a;
}

}  // namespace driftx
