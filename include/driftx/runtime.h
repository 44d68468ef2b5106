// Process-wide runtime settings: threads and device.
#pragma once

#include <string>

#include <torch/torch.h>

namespace driftx {

// Sets LibTorch's intra-op thread count. n <= 0 means all hardware threads divided by the ranks of a
// distributed job on this machine ($LOCAL_WORLD_SIZE, 1 when unset): 2 cores, 2 ranks: 1 thread each.
// (LibTorch defaults to 1 on some builds, so this is always called explicitly.) Returns the count in force.
int set_threads(int n);

// "cpu", "cuda", "cuda:1" or "auto" (cuda when available, else cpu). Unknown names or an unavailable
// CUDA device throw driftx::Error.
torch::Device parse_device(const std::string& name);

// Seeds LibTorch's CPU (and CUDA, when present) generators.
void seed_everything(uint64_t seed);

}  // namespace driftx
