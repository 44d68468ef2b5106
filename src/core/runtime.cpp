#include "driftx/runtime.h"

#include <cstdio>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "driftx/distributed.h"
#include "driftx/error.h"

#include <fmt/format.h>

namespace driftx {

int set_threads(int n) {
  // Ranks of one job on one machine share its cores (LOCAL_WORLD_SIZE: driftx launch, torchrun).
  if (n <= 0) n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / DistEnv::from_env().local_world_size);
  at::set_num_threads(n);
  return at::get_num_threads();
}

void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's upper limit on 64-bit; fixing it stops the dynamic threshold
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    fail("unknown device '{}': use cpu, cuda, cuda:N or auto", name);
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    fail("device '{}' requested but this LibTorch build sees no CUDA device: use --device cpu", name);
  return device;
}

void seed_everything(uint64_t seed) { torch::manual_seed(seed); }

std::string device_label(const torch::Device& device) {
  if (!device.is_cuda()) return "CPU";
  std::string name;
  if (FILE* p = popen(fmt::format("nvidia-smi --query-gpu=name --format=csv,noheader -i {} 2>/dev/null",
                                  device.has_index() ? device.index() : 0).c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) name += buf;
    pclose(p);
  }
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return fmt::format("{} ({})", device.str(), name.empty() ? "unnamed GPU" : name);
}

}  // namespace driftx
