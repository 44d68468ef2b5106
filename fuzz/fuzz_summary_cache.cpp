// Summary cache (ProjectedField::load, src/nystrom/summary_cache.cpp) into the fixture field of
// field_fixture.h. The first input byte picks the mode, as in fuzz_checkpoint: bit 0 clear, the rest is
// the file (CRC footer included); bit 0 set, the rest is the archive and the target appends a valid
// footer (write_file_with_crc), so that the fuzzer reaches the archive and its contents. Contract: load accepts or throws driftx::Error (a cache made with another
// configuration is refused naming the field); a cache it accepts is usable: the field computes on it
// without any exception.
#include "driftx/files.h"
#include "field_fixture.h"
#include "fuzz_support.h"

using namespace driftx;

namespace {
const ProjectedField* base = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  base = new ProjectedField(fuzz::fixture_field());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_path("summary.pt");
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1)
    write_file_with_crc(path, rest);
  else
    fuzz::write_input(path, rest);
  ProjectedField field = *base;
  if (!fuzz::expect_contract("ProjectedField::load",
                             [&] { field.load(path, fuzz::kCacheStrategy, fuzz::kCacheFingerprint); }))
    return 0;
  fuzz::expect_contract("ProjectedField::compute on a loaded cache", [&] {
    torch::NoGradGuard no_grad;
    auto x = torch::linspace(-1, 1, 5 * 4).reshape({5, 4});
    field.compute(x, torch::tensor({0, 1, 2, 0, 1}, torch::kLong));
    field.compute(x);
  });
  return 0;
}
