// Process-wide runtime settings: threads and device.
#pragma once

#include <string>

#include <torch/torch.h>

namespace driftx {

// Sets LibTorch's intra-op thread count. n <= 0 means all hardware threads divided by the ranks of a
// distributed job on this machine ($LOCAL_WORLD_SIZE, 1 when unset): 2 cores, 2 ranks: 1 thread each.
// (LibTorch defaults to 1 on some builds, so this is always called explicitly.) Returns the count in force.
int set_threads(int n);

// Keeps freed CPU memory in the process's heap for reuse (glibc: allocations up to 32 MiB from the heap,
// no trimming below 1 GiB of free heap). LibTorch's CPU tensors are malloc'ed per call; with glibc's
// defaults a few-MiB temporary is a fresh mmap each time, and faulting its pages in again cost the
// standard field ~25% at N = P = 256 (BENCHMARKS.md). The CLI calls it once at start; no-op elsewhere.
void keep_freed_memory();

// "cpu", "cuda", "cuda:1" or "auto" (cuda when available, else cpu). Unknown names or an unavailable
// CUDA device throw driftx::Error.
torch::Device parse_device(const std::string& name);

// The device a run trains on, for reports: "CPU" for a CPU device, else "cuda:1 (NVIDIA H200)" (the name
// from nvidia-smi: LibTorch's C++ API has no device-name query without the CUDA headers).
std::string device_label(const torch::Device& device);

// Seeds LibTorch's CPU (and CUDA, when present) generators.
void seed_everything(uint64_t seed);

}  // namespace driftx
