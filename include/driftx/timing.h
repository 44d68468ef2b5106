// Wall-clock timing shared by the fidelity protocol, the trainer and the benchmarks.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

namespace driftx {

// Seconds since t0 on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t0);

struct Timing {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  std::vector<double> samples_ms;  // the timed repeats, in run order
};

// Runs fn `warmup` times untimed (one-off costs: BLAS buffers, allocator growth, first-touch pages),
// then `repeats` (>= 1) timed calls; the median is the headline number.
Timing time_call(const std::function<void()>& fn, int repeats, int warmup = 1);

}  // namespace driftx
