#include "driftx/timing.h"

#include <algorithm>

#include "driftx/error.h"

namespace driftx {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Timing time_call(const std::function<void()>& fn, int repeats, int warmup) {
  DRIFTX_CHECK(repeats >= 1, "--repeats must be >= 1, got {}", repeats);
  for (int i = 0; i < warmup; ++i) fn();
  Timing t;
  t.samples_ms.reserve(repeats);
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const auto stop = std::chrono::steady_clock::now();
    t.samples_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  auto sorted = t.samples_ms;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  t.median_ms = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  t.min_ms = sorted.front();
  t.max_ms = sorted.back();
  return t;
}

}  // namespace driftx
