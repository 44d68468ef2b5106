// Google Benchmark micro-benchmarks of the pieces of one training step (driftx_microbench).
#include <benchmark/benchmark.h>

#include "driftx/features.h"
#include "driftx/generator.h"
#include "driftx/projected_field.h"
#include "driftx/runtime.h"
#include "driftx/standard_field.h"

using namespace driftx;

namespace {

constexpr int64_t kBatch = 250;  // 10 classes x 25

void BM_GeneratorForwardBackward(benchmark::State& state) {
  GeneratorConfig gc;
  gc.num_classes = 10;
  gc.width = state.range(0);
  Generator g(gc);
  auto z = torch::randn({kBatch, gc.noise_dim});
  auto y = torch::arange(kBatch) % 10;
  for (auto _ : state) {
    g->zero_grad();
    g->forward(z, y).pow(2).mean().backward();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_GeneratorForwardBackward)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond);

void BM_ProjectedFieldPixels(benchmark::State& state) {
  const int64_t M = state.range(0), D = 784;
  auto Y = torch::randn({5000, D});
  auto labels = torch::arange(5000) % 10;
  auto U = Y.narrow(0, 0, M);
  ProjectedFieldConfig pc;
  auto field = build_projected_field(Y, labels, U, labels.narrow(0, 0, M), {10, 1}, std::nullopt, pc);
  auto x = torch::randn({kBatch, D});
  auto xl = torch::arange(kBatch).div(25, "floor");
  for (auto _ : state) benchmark::DoNotOptimize(field.compute(x, xl).loss);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ProjectedFieldPixels)->Arg(500)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_StandardFieldPixels(benchmark::State& state) {
  const int64_t P = state.range(0), D = 784;
  auto x = torch::randn({10, 25, D}), pos = torch::randn({10, P, D});
  StandardField field;
  for (auto _ : state) benchmark::DoNotOptimize(field.compute({x, pos, {}, {}}).loss);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_StandardFieldPixels)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_Features(benchmark::State& state) {
  auto images = torch::randn({kBatch, 1, 28, 28});
  for (auto _ : state)
    for (const auto& g : parse_feature_groups("pixels,pool2,pool4")) benchmark::DoNotOptimize(image_features(images, g));
}
BENCHMARK(BM_Features)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  set_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
