// driftx bench <benchmark>: timing and memory benchmarks of the fields. Each benchmark lives in
// bench/bench_*.cpp and registers itself with an add_bench_*() declared in bench/bench_common.h.
#include "bench_common.h"
#include "commands.h"

namespace driftx::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks: time and memory of the fields and of training steps");
  bench->require_subcommand(1);
  driftx::bench::add_bench_field_standard(*bench);
  driftx::bench::add_bench_field(*bench);
  driftx::bench::add_bench_attraction(*bench);
  driftx::bench::add_bench_train_step(*bench);
  driftx::bench::add_bench_dist(*bench);
  driftx::bench::add_bench_cost_model(*bench);
  driftx::bench::add_bench_vs_python(*bench);
}

}  // namespace driftx::cli
