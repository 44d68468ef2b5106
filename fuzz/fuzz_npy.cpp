// .npy reader (src/data/npy.cpp). Contract: read_npy accepts the file or throws driftx::Error; what it
// accepts, write_npy writes back and read_npy reads again to the same dtype, shape and bytes.
#include <cstring>

#include "driftx/npy.h"
#include "fuzz_support.h"

using namespace driftx;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string in = fuzz::temp_path("in.npy"), out = fuzz::temp_path("out.npy");
  fuzz::write_input(in, data, size);
  torch::Tensor t, back;
  if (!fuzz::expect_contract("read_npy", [&] { t = read_npy(in); })) return 0;
  if (!fuzz::expect_contract("write_npy", [&] { write_npy(out, t); }) ||
      !fuzz::expect_contract("read_npy of write_npy", [&] { back = read_npy(out); }))
    fuzz::finding("npy round trip", "refused", "an accepted array does not survive write_npy + read_npy");
  const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (back.scalar_type() != t.scalar_type() || back.sizes() != t.sizes() ||
      (nbytes && std::memcmp(back.data_ptr(), t.data_ptr(), nbytes) != 0))
    fuzz::finding("npy round trip", "mismatch", "write_npy + read_npy changed the array");
  return 0;
}
