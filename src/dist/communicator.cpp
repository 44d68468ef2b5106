// Communicator over c10d: a TCPStore rendezvous hosted by rank 0 and a Gloo process group (CPU
// tensors), plus an NCCL one for CUDA tensors where LibTorch was built with it. Everything c10d is in
// this file; the rest of driftx sees rank(), world_size() and four collectives.
#include "driftx/distributed.h"

#include <cstdlib>
#include <sstream>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
// DRIFTX_GLOO (with USE_C10D_GLOO, which the header needs): set by CMakeLists.txt unless configured
// with -DDRIFTX_WITH_GLOO=OFF (a build against a LibTorch whose Gloo headers are not at hand, e.g. pip's
// on a GPU machine, whose CMake config defines USE_C10D_GLOO regardless); such a build trains on one
// process (ranks as threads included) and refuses multi-process runs in connect().
#ifdef DRIFTX_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef DRIFTX_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "driftx/error.h"
#include "driftx/projected_field.h"

namespace driftx {

namespace {

// LibTorch 2.x splits ProcessGroup (the user-facing group) from Backend (what Gloo/NCCL implement);
// in 1.x the Gloo and NCCL groups are ProcessGroups. Both expose the same collectives.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  DRIFTX_CHECK(end && *end == '\0' && x >= 0 && x < (1L << 30), "environment variable {}='{}' is not a non-negative integer",
               name, v);
  return static_cast<int>(x);
}

// c10d messages carry a backtrace after the first line: keep the first line.
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string msg = c10 ? c10->what_without_backtrace() : e.what();
  const auto nl = msg.find('\n');
  return nl == std::string::npos ? msg : msg.substr(0, nl);
}

#ifdef DRIFTX_GLOO
bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}
#endif

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1);
  e.rank = env_int("RANK", 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port);
  DRIFTX_CHECK(e.world_size >= 1 && e.rank < e.world_size, "RANK={} must lie in [0, WORLD_SIZE={})", e.rank, e.world_size);
  DRIFTX_CHECK(e.local_world_size >= 1 && e.local_rank < e.local_world_size && e.local_world_size <= e.world_size,
               "LOCAL_RANK={} / LOCAL_WORLD_SIZE={} do not fit WORLD_SIZE={}", e.local_rank, e.local_world_size,
               e.world_size);
  DRIFTX_CHECK(e.master_port >= 1 && e.master_port <= 65535, "MASTER_PORT={} is not a TCP port", e.master_port);
  return e;
}

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> gloo, nccl;
};

Communicator::Communicator(DistEnv env, std::chrono::milliseconds timeout)
    : env_(std::move(env)), timeout_(timeout), impl_(std::make_unique<Impl>()) {}

Communicator::~Communicator() = default;

std::shared_ptr<Communicator> Communicator::single() {
  return std::shared_ptr<Communicator>(new Communicator(DistEnv{}, std::chrono::milliseconds(0)));
}

std::shared_ptr<Communicator> Communicator::connect(const DistEnv& env, std::chrono::milliseconds timeout,
                                                    const torch::Device& device) {
  if (env.world_size <= 1) return single();
  DRIFTX_CHECK(timeout.count() > 0, "the distributed timeout must be positive");
  std::shared_ptr<Communicator> comm(new Communicator(env, timeout));
#ifdef C10_USE_GLOG
  // c10d also logs each connection failure through glog (several lines on stderr); the error we throw
  // says it in one line, so glog is quiet while connecting.
  struct QuietGlog {
    int saved = FLAGS_minloglevel;
    QuietGlog() { FLAGS_minloglevel = std::max(saved, 3); }
    ~QuietGlog() { FLAGS_minloglevel = saved; }
  } quiet;
#endif
  auto rendezvous_failed = [&](const char* stage, const std::exception& e) {
    fail("rank {} of {}: rendezvous at {}:{} failed within {:g}s ({}: {}); are all {} ranks running with the same "
         "MASTER_ADDR/MASTER_PORT? (`driftx launch --nproc {}` starts them)", env.rank, env.world_size,
         env.master_addr, env.master_port, static_cast<double>(timeout.count()) / 1e3, stage, first_line(e),
         env.world_size, env.world_size);
  };
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.isServer = env.rank == 0;
    opts.numWorkers = static_cast<std::size_t>(env.world_size);
    opts.waitWorkers = true;  // rank 0 returns once every rank has connected, or throws at the timeout
    opts.timeout = timeout;
    comm->impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    rendezvous_failed("store", e);
  }
#ifndef DRIFTX_GLOO
  fail("rank {} of {}: this driftx was built without Gloo (-DDRIFTX_WITH_GLOO=OFF), so it cannot train over "
       "several processes; rebuild with libgloo-dev installed, or use --ranks (threads of one process)",
       env.rank, env.world_size);
#else
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Local jobs talk over loopback; otherwise Gloo's choice (the hostname's address), or the
    // interface named by GLOO_SOCKET_IFNAME as torch.distributed does.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    options->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                               : is_loopback(env.master_addr)
                                   ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    auto store = c10::make_intrusive<c10d::PrefixStore>("gloo", comm->impl_->store);
    comm->impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
#ifdef DRIFTX_NCCL
    if (device.is_cuda()) {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : env.local_rank));
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto nstore = c10::make_intrusive<c10d::PrefixStore>("nccl", comm->impl_->store);
      comm->impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(nstore, env.rank, env.world_size, nccl_options);
    }
#endif
  } catch (const std::exception& e) {
    rendezvous_failed("process group", e);
  }
#endif
  // Everyone is connected before anyone starts work: failures to connect surface here, not mid-run.
  comm->barrier();
  return comm;
}

std::string Communicator::backend() const {
  if (!impl_->gloo) return "none";
  return impl_->nccl ? "gloo+nccl" : "gloo";
}

namespace {

// Runs one collective over `t` on `group`; `staged`: through a contiguous CPU copy (Gloo, or a
// non-contiguous tensor), copied back after.
template <typename Start>
void run_collective(Collectives& group, torch::Tensor& t, bool staged, const DistEnv& env,
                    std::chrono::milliseconds timeout, const char* what, Start start) {
  std::vector<torch::Tensor> tensors{staged || !t.is_contiguous() ? t.to(torch::kCPU).contiguous() : t};
  try {
    start(group, tensors)->wait(timeout);
  } catch (const std::exception& e) {
    fail("rank {} of {}: {} failed: another rank stopped or did not answer within {:g}s ({})", env.rank,
         env.world_size, what, static_cast<double>(timeout.count()) / 1e3, first_line(e));
  }
  if (!tensors[0].is_same(t)) t.copy_(tensors[0]);
}

}  // namespace

void Communicator::all_reduce_sum(torch::Tensor& t) {
  if (!impl_->gloo) return;
  torch::NoGradGuard no_grad;
  const bool nccl = t.is_cuda() && impl_->nccl;
  run_collective(nccl ? *impl_->nccl : *impl_->gloo, t, !nccl && !t.is_cpu(), env_, timeout_, "all-reduce", [&](Collectives& g, std::vector<torch::Tensor>& ts) {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    return g.allreduce(ts, o);
  });
}

void Communicator::broadcast(torch::Tensor& t, int root) {
  if (!impl_->gloo) return;
  torch::NoGradGuard no_grad;
  const bool nccl = t.is_cuda() && impl_->nccl;
  run_collective(nccl ? *impl_->nccl : *impl_->gloo, t, !nccl && !t.is_cpu(), env_, timeout_, "broadcast", [&](Collectives& g, std::vector<torch::Tensor>& ts) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = timeout_;
    return g.broadcast(ts, o);
  });
}

void Communicator::barrier() {
  if (!impl_->gloo) return;
  // A one-element all-reduce: unlike Gloo's barrier it reports a dead peer the same way as any step.
  auto t = torch::zeros({1});
  run_collective(*impl_->gloo, t, false, env_, timeout_, "barrier", [&](Collectives& g, std::vector<torch::Tensor>& ts) {
    c10d::AllreduceOptions o;
    o.timeout = timeout_;
    return g.allreduce(ts, o);
  });
}

bool Communicator::any(bool flag) {
  auto t = torch::tensor({flag ? 1L : 0L});
  all_reduce_sum(t);
  return t.item<int64_t>() > 0;
}

bool Communicator::all(bool flag) {
  auto t = torch::tensor({flag ? 1L : 0L});
  all_reduce_sum(t);
  return t.item<int64_t>() == world_size();
}

bool Communicator::broadcast_flag(bool flag, int root) {
  auto t = torch::tensor({flag ? 1L : 0L});
  broadcast(t, root);
  return t.item<int64_t>() != 0;
}

SumReducer Communicator::sum_reducer() {
  if (!impl_->gloo) return {};
  return [this](torch::Tensor& t) { all_reduce_sum(t); };
}

// ---- summaries and parameters ------------------------------------------------------------------

namespace {

void for_each_summary_tensor(ProjectedField& field, const std::function<void(torch::Tensor&)>& fn) {
  for (int64_t k = 0; k < field.layout().shards; ++k)
    for (size_t t = 0; t < field.config().temperatures.size(); ++t) {
      auto& s = field.mutable_summary(k, t);
      for (auto* x : {&s.ksum, &s.kysum, &s.counts}) fn(*x);
    }
}

}  // namespace

void add_data_distributed(ProjectedField& field, const torch::Tensor& real, const torch::Tensor& labels,
                          Communicator& comm) {
  const int64_t W = comm.world_size();
  if (W == 1) return field.add_data(real, labels);
  const int64_t n = real.size(0), chunk = field.config().chunk;
  for (int64_t start = comm.rank() * chunk; start < n; start += W * chunk) {
    const int64_t len = std::min(chunk, n - start);
    field.add_data(real.narrow(0, start, len), labels.defined() ? labels.narrow(0, start, len) : labels);
  }
  for_each_summary_tensor(field, [&](torch::Tensor& t) { comm.all_reduce_sum(t); });
}

void broadcast_summaries(ProjectedField& field, Communicator& comm, int root) {
  if (comm.world_size() == 1) return;
  for_each_summary_tensor(field, [&](torch::Tensor& t) { comm.broadcast(t, root); });
}

void broadcast_tensors(const std::vector<torch::Tensor>& tensors, Communicator& comm, int root) {
  if (comm.world_size() == 1) return;
  torch::NoGradGuard no_grad;
  for (auto t : tensors) comm.broadcast(t, root);
}

}  // namespace driftx
