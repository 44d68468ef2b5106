#include <gtest/gtest.h>

#include "test_support.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "driftx/error.h"
#include "driftx/npy.h"

using namespace driftx;
namespace fs = std::filesystem;

namespace {

using Npy = testing_support::TempDirTest;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The bytes np.save writes (format 1.0): magic, version, uint16 LE header length, the dict padded
// with spaces so that the data starts at `data_offset`, '\n', then the raw little-endian payload.
std::string npy_bytes(const std::string& dict, const std::string& payload, size_t data_offset = 128,
                      int major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  const size_t hlen = data_offset - prefix;
  std::string header = dict;
  header.append(hlen - dict.size() - 1, ' ');
  header.push_back('\n');
  std::string out = std::string("\x93NUMPY", 6) + char(major) + '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<char>((hlen >> (8 * i)) & 0xff));
  return out + header + payload;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

using testing_support::expect_error;

const std::string kDict23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
const std::vector<float> kValues23 = {0.5f, -1.25f, 3.0f, 1e-3f, -0.0f, 42.0f};

}  // namespace

TEST_F(Npy, RoundTripsDtypesAndShapes) {
  torch::manual_seed(0);
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {5}, {2, 3}, {3, 0, 4}, {2, 3, 4, 5}, {1, 1, 1}};
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64}) {
    for (const auto& shape : shapes) {
      const auto t = dtype == torch::kInt64 ? torch::randint(-1000000, 1000000, shape, torch::kInt64)
                                            : torch::randn(shape, dtype) * 1e3;
      const std::string p = path("a.npy");
      write_npy(p, t);
      const auto back = read_npy(p);
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " shape " << t.sizes());
      EXPECT_EQ(back.scalar_type(), dtype);
      EXPECT_EQ(back.sizes(), t.sizes());
      EXPECT_TRUE(back.is_contiguous());
      EXPECT_TRUE(torch::equal(back, t));
      EXPECT_EQ(slurp(p).size() % 64, (t.numel() * t.element_size()) % 64) << "data not 64-byte aligned";
      EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
    }
  }
}

TEST_F(Npy, WritesNonContiguousTensorsInLogicalOrder) {
  const auto t = torch::arange(12, torch::kFloat64).reshape({3, 4}).t();
  write_npy(path("t.npy"), t);
  EXPECT_TRUE(torch::equal(read_npy(path("t.npy")), t.contiguous()));
}

TEST_F(Npy, ReadsAndWritesExactlyNumpyBytes) {
  const std::string expected = npy_bytes(kDict23, raw(kValues23));
  ASSERT_EQ(expected.size(), 128u + 24u);
  spit(path("np.npy"), expected);
  const auto t = read_npy(path("np.npy"));
  ASSERT_EQ(t.scalar_type(), torch::kFloat32);
  ASSERT_EQ(t.sizes(), torch::IntArrayRef({2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.view(-1)[i].item<float>(), kValues23[i]);
  EXPECT_TRUE(std::signbit(t[1][1].item<float>()));  // -0.0 kept bit-exact

  write_npy(path("ours.npy"), t);
  EXPECT_EQ(slurp(path("ours.npy")), expected);

  // 1-D (trailing comma in the tuple), 0-d, and int64/float64 descr strings.
  const std::vector<int64_t> ints = {1, -2, 3, 1LL << 40, -(1LL << 50)};
  const std::string e1 = npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", raw(ints));
  write_npy(path("i.npy"), torch::tensor(ints, torch::kInt64));
  EXPECT_EQ(slurp(path("i.npy")), e1);
  const std::string e0 = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw<double>({2.5}));
  write_npy(path("s.npy"), torch::tensor(2.5, torch::kFloat64));
  EXPECT_EQ(slurp(path("s.npy")), e0);
  spit(path("s2.npy"), e0);
  const auto s = read_npy(path("s2.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<double>(), 2.5);
}

TEST_F(Npy, HeaderKeepsNumpysGrowthRoom) {
  // numpy appends 21 - len(str(shape[0])) spaces before the alignment padding. For this 15-D shape
  // the dict is 98 characters: without that room the data would start at 128, with it at 192.
  const auto t = torch::zeros(std::vector<int64_t>(15, 1), torch::kFloat32);
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1";
  for (int i = 1; i < 15; ++i) dict += ", 1";
  dict += "), }";
  ASSERT_EQ(dict.size(), 98u);
  write_npy(path("g.npy"), t);
  EXPECT_EQ(slurp(path("g.npy")), npy_bytes(dict, raw<float>({0.0f}), 192));
}

TEST_F(Npy, ReadsVersion2And3Headers) {
  for (int major : {2, 3}) {
    spit(path("v.npy"), npy_bytes(kDict23, raw(kValues23), 128, major));
    const auto t = read_npy(path("v.npy"));
    EXPECT_EQ(t.sizes(), torch::IntArrayRef({2, 3}));
    EXPECT_EQ(t[1][2].item<float>(), 42.0f);
  }
}

TEST_F(Npy, AcceptsDoubleQuotesAndOtherKeyOrder) {
  spit(path("q.npy"), npy_bytes("{\"shape\": (2,3), \"fortran_order\": False, \"descr\": \"<f4\"}", raw(kValues23)));
  EXPECT_EQ(read_npy(path("q.npy"))[0][1].item<float>(), -1.25f);
}

TEST_F(Npy, RejectsBadFilesNamingThem) {
  const std::string p = path("bad_input.npy");
  auto check = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    spit(p, bytes);
    std::vector<std::string> all = parts;
    all.insert(all.begin(), p);
    expect_error([&] { read_npy(p); }, all);
  };
  check(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", raw(kValues23)), {"Fortran"});
  check(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", raw(kValues23)),
        {"'<i4'", "'<f4'", "'<f8'", "'<i8'"});
  check(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", raw(kValues23)), {"big-endian"});
  check(npy_bytes(kDict23, raw(kValues23).substr(0, 20)), {"truncated", "20 bytes", "24 bytes"});
  check(npy_bytes(kDict23, raw(kValues23) + "xyz"), {"27 bytes", "trailing"});
  std::string magic = npy_bytes(kDict23, raw(kValues23));
  magic[1] = 'X';
  check(magic, {"not a .npy file"});
  check("\x93NUM", {"not a .npy file"});
  check(npy_bytes(kDict23, raw(kValues23)).replace(6, 1, "\x04"), {"version 4.0"});
  check(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", raw(kValues23)), {"malformed"});
  check(npy_bytes("{'descr': '<f4', 'fortran_order': Nope, 'shape': (2, 3), }", raw(kValues23)), {"malformed"});
  check(npy_bytes("{'descr': '<f4', 'fortran_order': False}", raw(kValues23)), {"malformed", "missing"});
  check(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", raw(kValues23)), {"malformed"});
  check(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", raw(kValues23)),
        {"malformed", "'x'"});
  check(npy_bytes("garbage", raw(kValues23)), {"malformed"});
  // Header length pointing past the end of the file.
  check(npy_bytes(kDict23, "").substr(0, 50), {"truncated"});
  // A dimension product overflowing 64 bits must not wrap around to a small size.
  check(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }", ""),
        {"truncated"});
  expect_error([&] { read_npy(path("absent.npy")); }, {path("absent.npy"), "no such file"});
}

TEST_F(Npy, WriteRejectsUnsupportedDtypesAndBadPaths) {
  expect_error([&] { write_npy(path("i32.npy"), torch::zeros({2}, torch::kInt32)); },
               {path("i32.npy"), "Int", "float32, float64 and int64"});
  expect_error([&] { write_npy(path("u8.npy"), torch::zeros({2}, torch::kUInt8)); }, {path("u8.npy"), "Byte"});
  EXPECT_FALSE(fs::exists(path("i32.npy")));
  const std::string nodir = path("no/such/dir/x.npy");
  expect_error([&] { write_npy(nodir, torch::zeros({2})); }, {nodir, "directory"});
}

TEST_F(Npy, WriteReplacesExistingFile) {
  write_npy(path("r.npy"), torch::ones({100, 100}));
  write_npy(path("r.npy"), torch::full({2}, 7.0, torch::kFloat64));
  EXPECT_TRUE(torch::equal(read_npy(path("r.npy")), torch::full({2}, 7.0, torch::kFloat64)));
}

TEST(RequireMatrix, ChecksShapeConvertsDtypeAndRejectsNonFinite) {
  const auto x = torch::arange(6, torch::kInt64).reshape({2, 3});
  const auto f = require_matrix(x, "--gen G.npy", 3);
  EXPECT_EQ(f.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(f, x.to(torch::kFloat32)));
  EXPECT_EQ(require_matrix(x, "--gen G.npy", -1, torch::kFloat64).scalar_type(), torch::kFloat64);

  expect_error([&] { require_matrix(x, "--gen G.npy", 7); },
               {"--gen G.npy", "2-D array with 7 columns", "[2, 3]"});
  expect_error([&] { require_matrix(torch::zeros({6}), "--pos P.npy"); }, {"--pos P.npy", "2-D", "[6]"});
  expect_error([&] { require_matrix(torch::zeros({1, 2, 3}), "--pos P.npy", 3); }, {"[1, 2, 3]"});
  expect_error([&] { require_matrix(torch::zeros({}), "--pos P.npy"); }, {"shape []"});

  auto bad = torch::zeros({4, 3}, torch::kFloat64);
  bad[0][1] = std::nan("");
  bad[2][2] = INFINITY;
  bad[3][0] = -INFINITY;
  expect_error([&] { require_matrix(bad, "--gen G.npy", 3); }, {"--gen G.npy", "contains 3 non-finite values"});
  expect_error([&] { require_finite(bad, "--neg N.npy"); }, {"--neg N.npy", "3 non-finite", "(NaN or Inf)"});
  // float64 values too large for float32 become Inf on conversion, and are caught after it.
  auto huge = torch::full({1, 2}, 1e300, torch::kFloat64);
  expect_error([&] { require_matrix(huge, "--gen G.npy"); }, {"2 non-finite"});
  EXPECT_NO_THROW(require_finite(torch::zeros({3, 3}), "ok"));
  EXPECT_NO_THROW(require_finite(torch::zeros({0, 3}), "empty"));
}
