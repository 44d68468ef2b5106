// Data-parallel training across processes, one per rank, with the torchrun conventions (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). The collectives are c10d's
// (TCPStore rendezvous, ProcessGroupGloo on CPU, ProcessGroupNCCL for CUDA tensors where LibTorch was
// built with it); the c10d API differs between LibTorch 1.x and 2.x, so it stays behind Communicator.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "driftx/kernel.h"

namespace driftx {

class ProjectedField;

// Where this process sits in the job. Defaults: one process, no job.
struct DistEnv {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // processes of this job on this machine
  std::string master_addr = "127.0.0.1";     // rank 0 hosts the TCPStore here
  int master_port = 29500;

  // From the environment; variables that are absent keep the defaults (LOCAL_RANK defaults to RANK,
  // LOCAL_WORLD_SIZE to WORLD_SIZE). Malformed or inconsistent values throw driftx::Error.
  static DistEnv from_env();
};

class Communicator {
 public:
  // One process: every collective is a no-op and no c10d object is created.
  static std::shared_ptr<Communicator> single();
  // world_size 1: single(). Otherwise rendezvous through a TCPStore hosted by rank 0 and a Gloo
  // process group (plus NCCL for CUDA tensors when `device` is CUDA and LibTorch has NCCL). A rank that
  // cannot rendezvous, or a collective that does not complete, throws driftx::Error after `timeout`.
  static std::shared_ptr<Communicator> connect(const DistEnv& env, std::chrono::milliseconds timeout,
                                               const torch::Device& device = torch::kCPU);
  static std::shared_ptr<Communicator> from_env(std::chrono::milliseconds timeout,
                                                const torch::Device& device = torch::kCPU) {
    return connect(DistEnv::from_env(), timeout, device);
  }
  ~Communicator();

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }  // the rank that writes outputs
  const DistEnv& env() const { return env_; }
  std::string backend() const;  // "none", "gloo" or "gloo+nccl"

  // In place, on any device and dtype (int64/float32/float64 at least); every rank passes a tensor
  // of the same shape and dtype, in the same order of calls.
  void all_reduce_sum(torch::Tensor& t);
  void broadcast(torch::Tensor& t, int root = 0);
  void barrier();
  // Agreement on a flag: true when it is true on any rank / on every rank / on `root`.
  bool any(bool flag);
  bool all(bool flag);
  bool broadcast_flag(bool flag, int root = 0);
  // For the fields' batch-shared statistics (kernel.h): all_reduce_sum, or empty when single, so
  // a single process runs exactly the code it runs without a communicator.
  SumReducer sum_reducer();

 private:
  struct Impl;
  Communicator(DistEnv env, std::chrono::milliseconds timeout);
  DistEnv env_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

// Summarises this rank's share of the real data (n x D raw features, n labels or undefined) into the
// field and all-reduces the float64 sums (ksum, kysum, counts), so every rank ends with the summaries
// of all the data. The share is blocks of the field's `chunk` rows, rank r taking blocks r, r+W, ...:
// each block is summarised exactly as a single process summarises it, so the result differs from
// field.add_data(real, labels) only in the order of the float64 additions.
void add_data_distributed(ProjectedField& field, const torch::Tensor& real, const torch::Tensor& labels,
                          Communicator& comm);
// Copies `root`'s summaries into every rank's field (e.g. after root loaded them from its cache).
void broadcast_summaries(ProjectedField& field, Communicator& comm, int root = 0);
// Copies `root`'s values of the tensors into every rank's (parameters, buffers).
void broadcast_tensors(const std::vector<torch::Tensor>& tensors, Communicator& comm, int root = 0);

// ---- ranks as threads of this process ------------------------------------------------------------

// Runs body(rank) for rank = 0..world-1 on `world` threads and waits for all of them; each thread gets
// (the caller's intra-op threads) / world intra-op threads. world 1 runs body(0) on the calling thread.
// The lowest rank's exception, if any, is rethrown once every thread has ended.
void on_local_threads(int world, const std::function<void(int rank)>& body);

// `world` ranks of one Gloo group on loopback inside this process: element r is rank r's
// communicator (world 1: Communicator::single()). Run each rank's work with on_local_threads.
std::vector<std::shared_ptr<Communicator>> connect_local_ranks(int world, std::chrono::milliseconds timeout);

// How many data-parallel ranks use `cores` best: the largest divisor of classes_per_step that is
// <= cores (each rank trains an equal share of every batch's classes).
int local_ranks_for(int64_t classes_per_step, int cores);

// ---- local launcher (driftx launch) -----------------------------------------------------------

struct LaunchConfig {
  int nproc = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;    // 0: a free port on this machine
  double grace_s = 10;    // after a rank fails: SIGTERM to the others, SIGKILL after this long
};

// Starts nproc copies of `args` (args[0] is the executable) with the torchrun variables set, forwards
// each rank's stdout/stderr line by line with a "[rank k] " prefix, and waits. When a rank exits
// non-zero (or is killed) the others are stopped, and the call throws driftx::Error naming that rank
// and its exit status. SIGINT/SIGTERM to the caller are forwarded to the ranks as SIGTERM.
void launch_local(const LaunchConfig& config, const std::vector<std::string>& args);

// A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it back, close).
int free_tcp_port();

// The running binary (/proc/self/exe), to launch more ranks of it.
std::string current_executable();

}  // namespace driftx
