// .npy reader/writer. Byte layout follows numpy/lib/format.py so files written here are identical
// to np.save's for the same array, and np.load reads them without copies or warnings.
#include "driftx/npy.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "driftx/error.h"
#include "driftx/files.h"

// Payload bytes are copied verbatim; only '<' (little-endian) dtypes are supported.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "driftx's .npy I/O assumes a little-endian host"
#endif

namespace driftx {
namespace {

constexpr char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kAlign = 64;               // numpy ARRAY_ALIGN
constexpr size_t kGrowthAxisMaxDigits = 21;  // numpy GROWTH_AXIS_MAX_DIGITS

struct DtypeInfo {
  const char* descr;
  torch::Dtype dtype;
  size_t itemsize;
};
const DtypeInfo kDtypes[] = {
    {"<f4", torch::kFloat32, 4}, {"<f8", torch::kFloat64, 8}, {"<i8", torch::kInt64, 8}};
constexpr const char* kSupported = "'<f4' (float32), '<f8' (float64), '<i8' (int64)";

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Python repr of a shape tuple, as numpy writes it: (), (5,), (2, 3).
std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// The header is a Python dict literal (numpy reads it with ast.literal_eval). This parses the subset
// numpy writes: string keys; string, True/False and int-tuple values; optional trailing commas.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  Header parse() {
    Header h;
    bool seen[3] = {false, false, false};
    skip_ws();
    expect('{');
    for (skip_ws(); !peek('}'); skip_ws()) {
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        h.descr = parse_string();
        seen[0] = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        seen[1] = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        seen[2] = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_ws();
      if (!peek('}')) expect(',');
    }
    ++i_;
    skip_ws();
    if (i_ != s_.size()) bad("trailing characters after the dict");
    if (!seen[0] || !seen[1] || !seen[2]) bad("missing one of the keys 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  // `what` may quote a key from the file; driftx::Error escapes its control characters (one line).
  [[noreturn]] void bad(const std::string& what) const {
    std::string shown = s_;
    while (!shown.empty() && std::isspace(static_cast<unsigned char>(shown.back()))) shown.pop_back();
    if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
    fail("{}: malformed .npy header ({} at offset {}): {}; rewrite the file with numpy.save", path_, what, i_, shown);
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void expect(char c) {
    if (!peek(c)) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  std::string parse_string() {
    if (!peek('\'') && !peek('"')) bad("expected a quoted string");
    const char quote = s_[i_++];
    const size_t end = s_.find(quote, i_);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  bool parse_bool() {
    for (bool v : {true, false}) {
      const std::string word = v ? "True" : "False";
      if (s_.compare(i_, word.size(), word) == 0) {
        i_ += word.size();
        return v;
      }
    }
    bad("expected True or False");
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    for (skip_ws(); !peek(')'); skip_ws()) {
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) bad("expected a non-negative integer");
      int64_t v = 0;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        const int digit = s_[i_++] - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) bad("dimension too large");
        v = v * 10 + digit;
      }
      if (peek('L')) ++i_;  // Python 2 long literal, seen in old files
      shape.push_back(v);
      skip_ws();
      if (!peek(')')) expect(',');
    }
    ++i_;
    return shape;
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  std::error_code ec;
  DRIFTX_CHECK(std::filesystem::exists(path, ec), "{}: no such file", path);
  DRIFTX_CHECK(!std::filesystem::is_directory(path, ec), "{}: is a directory, expected a .npy file", path);
  std::ifstream in(path, std::ios::binary);
  DRIFTX_CHECK(in, "{}: cannot open for reading: {}", path, std::strerror(errno));
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);

  unsigned char prefix[12] = {};
  in.read(reinterpret_cast<char*>(prefix), std::min<uint64_t>(file_size, 10));
  DRIFTX_CHECK(file_size >= 10 && std::memcmp(prefix, kMagic, 6) == 0,
               "{}: not a .npy file (missing the \\x93NUMPY magic); save it with numpy.save", path);
  const int major = prefix[6], minor = prefix[7];
  DRIFTX_CHECK((major == 1 || major == 2 || major == 3) && minor == 0,
               "{}: .npy format version {}.{} is not supported (only 1.0, 2.0, 3.0)", path, major, minor);
  uint64_t header_len = prefix[8] | (prefix[9] << 8);
  size_t prefix_len = 10;
  if (major >= 2) {  // 2.0/3.0: 4-byte little-endian header length
    DRIFTX_CHECK(file_size >= 12, "{}: truncated .npy header", path);
    in.read(reinterpret_cast<char*>(prefix + 10), 2);
    header_len = uint64_t(prefix[8]) | uint64_t(prefix[9]) << 8 | uint64_t(prefix[10]) << 16 |
                 uint64_t(prefix[11]) << 24;
    prefix_len = 12;
  }
  DRIFTX_CHECK(header_len <= file_size - prefix_len,
               "{}: truncated .npy header (says {} bytes, file has {} after the prefix)", path, header_len,
               file_size - prefix_len);
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  DRIFTX_CHECK(in, "{}: read error in the .npy header", path);

  const Header h = HeaderParser(text, path).parse();
  const DtypeInfo* info = nullptr;
  for (const auto& d : kDtypes)
    if (h.descr == d.descr) info = &d;
  if (!info) {
    if (!h.descr.empty() && h.descr[0] == '>')
      fail("{}: dtype '{}' is big-endian; only little-endian is supported: convert with "
           "arr.astype(arr.dtype.newbyteorder('<'))",
           path, h.descr);
    fail("{}: dtype '{}' is not supported; supported dtypes are {} (convert with arr.astype(np.float32))", path,
         h.descr, kSupported);
  }
  DRIFTX_CHECK(!h.fortran_order,
               "{}: array is in Fortran order; save a C-order array (np.save(path, np.ascontiguousarray(arr)))",
               path);

  // Expected payload, guarding the product against overflow from absurd headers.
  uint64_t expected = info->itemsize;
  bool overflow = false;
  for (int64_t d : h.shape) {
    if (d != 0 && expected > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) overflow = true;
    expected *= static_cast<uint64_t>(d);
  }
  const uint64_t actual = file_size - prefix_len - header_len;
  DRIFTX_CHECK(!overflow && actual == expected,
               "{}: payload is {} bytes but shape {} of '{}' needs {} bytes; the file is {}", path, actual,
               shape_str(h.shape), h.descr, overflow ? std::string("more than 2^64") : std::to_string(expected),
               overflow || actual < expected ? "truncated or corrupt" : "corrupt (trailing bytes after the array)");

  torch::Tensor t = torch::empty(h.shape, torch::TensorOptions().dtype(info->dtype));
  if (expected > 0) in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(expected));
  DRIFTX_CHECK(in, "{}: read error in the .npy payload", path);
  return t;
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  DRIFTX_CHECK(tensor.defined(), "{}: cannot write an undefined tensor", path);
  const DtypeInfo* info = nullptr;
  for (const auto& d : kDtypes)
    if (tensor.scalar_type() == d.dtype) info = &d;
  DRIFTX_CHECK(info,
               "{}: cannot write a tensor of dtype {}; .npy output supports float32, float64 and int64 (convert with "
               ".to(torch::kFloat32) or .to(torch::kInt64) first)",
               path, c10::toString(tensor.scalar_type()));
  const torch::Tensor t = tensor.to(torch::kCPU).contiguous();
  const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());

  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", info->descr,
                                   shape_repr(shape));
  // numpy leaves room for the leading axis to grow in place (np.lib.format._write_array_header).
  if (!shape.empty()) header.append(kGrowthAxisMaxDigits - std::to_string(shape[0]).size(), ' ');
  // Pad with spaces then '\n' so the data starts 64-byte aligned; numpy pads 1..64, never 0.
  size_t prefix_len = 10;
  size_t pad = kAlign - (prefix_len + header.size() + 1) % kAlign;
  int major = 1;
  if (header.size() + 1 + pad > 65535) {
    major = 2;
    prefix_len = 12;
    pad = kAlign - (prefix_len + header.size() + 1) % kAlign;
  }
  header.append(pad, ' ');
  header.push_back('\n');

  std::string prefix(kMagic, 6);
  prefix.push_back(static_cast<char>(major));
  prefix.push_back('\0');
  const uint64_t hlen = header.size();
  for (size_t i = 0; i < prefix_len - 8; ++i) prefix.push_back(static_cast<char>((hlen >> (8 * i)) & 0xff));

  const size_t nbytes = static_cast<size_t>(t.numel()) * info->itemsize;
  write_file_atomic(path, {prefix, header, std::string_view(static_cast<const char*>(t.data_ptr()), nbytes)});
}

void require_finite(const torch::Tensor& t, const std::string& what) {
  if (!t.defined() || !t.is_floating_point() || t.numel() == 0) return;
  const int64_t bad = (~torch::isfinite(t)).sum().item<int64_t>();
  DRIFTX_CHECK(bad == 0, "{}: contains {} non-finite values (NaN or Inf); the field needs finite data", what, bad);
}

torch::Tensor require_matrix(const torch::Tensor& t, const std::string& what, int64_t cols, torch::Dtype dtype) {
  DRIFTX_CHECK(t.defined(), "{}: no data", what);
  DRIFTX_CHECK(dtype == torch::kFloat32 || dtype == torch::kFloat64,
               "{}: require_matrix converts to float32 or float64, not {}", what, c10::toString(dtype));
  const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  if (cols >= 0)
    DRIFTX_CHECK(t.dim() == 2 && t.size(1) == cols, "{}: expected a 2-D array with {} columns, got shape {}", what,
                 cols, shape_str(shape));
  else
    DRIFTX_CHECK(t.dim() == 2, "{}: expected a 2-D array, got shape {}", what, shape_str(shape));
  torch::Tensor out = t.to(dtype);
  require_finite(out, what);
  return out;
}

}  // namespace driftx
