// Ranks as threads of one process: the in-process equivalent of `driftx launch --nproc N`, for tools
// that train and evaluate in one process (driftx compare). On a small CPU machine N ranks of one
// intra-op thread each train faster than one rank with N threads (BENCHMARKS.md, "1 vs 2 ranks").
#include <exception>
#include <thread>

#include "driftx/distributed.h"
#include "driftx/error.h"

namespace driftx {

void on_local_threads(int world, const std::function<void(int)>& body) {
  DRIFTX_CHECK(world >= 1, "local ranks: need at least one rank, got {}", world);
  if (world == 1) return body(0);
  const int threads = std::max(1, at::get_num_threads() / world);
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> pool;
  for (int r = 0; r < world; ++r)
    pool.emplace_back([&, r] {
      try {
        at::set_num_threads(threads);  // this thread's intra-op team: the caller's cores shared out
        body(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<std::shared_ptr<Communicator>> connect_local_ranks(int world, std::chrono::milliseconds timeout) {
  if (world == 1) return {Communicator::single()};
  const int port = free_tcp_port();
  std::vector<std::shared_ptr<Communicator>> comms(world);
  on_local_threads(world, [&](int r) {
    DistEnv env;
    env.rank = r, env.world_size = world, env.local_rank = r, env.local_world_size = world;
    env.master_port = port;
    comms[r] = Communicator::connect(env, timeout);
  });
  return comms;
}

int local_ranks_for(int64_t classes_per_step, int cores) {
  int best = 1;
  for (int r = 1; r <= std::max(1, cores); ++r)
    if (classes_per_step % r == 0) best = r;
  return best;
}

}  // namespace driftx
