// IDX reader, raw and gzip (src/data/idx.cpp). Contract: read_idx returns an array whose shape is the
// header's and whose size is the payload's, or throws driftx::Error.
#include "driftx/data.h"
#include "fuzz_support.h"

using namespace driftx;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_runtime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_path("in-idx-ubyte");
  fuzz::write_input(path, data, size);
  for (int ndim : {1, 3}) {  // labels and images, as load_dataset asks for them
    IdxArray a;
    if (!fuzz::expect_contract("read_idx", [&] { a = read_idx(path, ndim); })) continue;
    if (a.data.scalar_type() != torch::kUInt8 || a.data.dim() != ndim || a.data.sizes() != c10::IntArrayRef(a.shape))
      fuzz::finding("read_idx", "bad result", "array shape or dtype differs from the header");
  }
  return 0;
}
