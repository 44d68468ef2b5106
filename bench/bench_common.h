// Shared plumbing of the `driftx bench ...` subcommands: wall-clock timing (warm-up + median of
// repeats), memory added by one call, machine/config description, list parsing and a markdown table.
//
// What is measured:
//  * time_call: std::chrono::steady_clock around each call; `warmup` untimed calls first (they pay
//    one-off costs: OpenBLAS buffers, allocator growth, page faults of first-touch memory), then
//    `repeats` timed calls; the median is the headline number, min and max are kept.
//  * measure_memory_added: resident memory (RSS) the call adds at its peak, from Linux's own
//    accounting. Before the call malloc_trim(0) hands freed heap pages back to the OS, VmRSS is
//    read, and the kernel's peak-RSS mark (VmHWM) is reset to it by writing "5" to
//    /proc/self/clear_refs; after the call, added = VmHWM - VmRSS(before). This counts every page
//    the call touched (tensors, temporaries, outputs it returns, BLAS scratch), whether LibTorch got
//    it from the heap or from mmap. Where clear_refs cannot be written the fallback is the growth of
//    getrusage's ru_maxrss (the process-lifetime peak), which is only a lower bound: it stays 0 when
//    an earlier, larger call already set the peak. The `method` field says which one was used.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "driftx/parse.h"
#include "driftx/timing.h"
#include "driftx/train.h"

namespace driftx::bench {

// ---- timing ----------------------------------------------------------------------------------
using driftx::Timing;     // driftx/timing.h
using driftx::time_call;

// ---- memory ----------------------------------------------------------------------------------
struct MemoryAdded {
  double peak_added_mib = 0;  // peak RSS during the call minus RSS just before it
  double rss_before_mib = 0;
  std::string method;         // "VmHWM after clear_refs" or "ru_maxrss growth (lower bound)"
};
MemoryAdded measure_memory_added(const std::function<void()>& fn);
double current_rss_mib();  // /proc/self/statm resident pages
double peak_rss_mib();     // getrusage(RUSAGE_SELF).ru_maxrss: the process-lifetime peak

// ---- machine and configuration ---------------------------------------------------------------
struct MachineInfo {
  int threads = 0;            // at::get_num_threads()
  std::string blas;           // BLAS_INFO from at::show_config(), "unknown" if absent
  std::vector<std::string> blas_libraries;  // BLAS libraries mapped into the process (/proc/self/maps)
  std::string torch_version;  // TORCH_VERSION
  std::string cpu;            // first "model name" of /proc/cpuinfo
  int hardware_threads = 0;   // std::thread::hardware_concurrency()
};
MachineInfo machine_info();
nlohmann::json to_json(const MachineInfo& m);
std::string header_line(const MachineInfo& m);
// "CPU: <model>" or "cuda:0 (NVIDIA H200)": what a device string names, for benchmark headers.
std::string device_name(const std::string& device);  // "threads=2  BLAS=open  LibTorch 1.13.0  CPU ..."

using driftx::parse_int_list;  // "256,1024" -> {256, 1024} (driftx/parse.h)

// The options the MNIST-based benches share: --dataset, --data-dir, --seed, --report.
void add_dataset_options(CLI::App* cmd, std::string& dataset, std::string& data_dir, uint64_t& seed,
                         std::string& report);

// ---- output ----------------------------------------------------------------------------------
// A GitHub-flavoured markdown table; numeric-looking cells are right-aligned.
class MarkdownTable {
 public:
  explicit MarkdownTable(std::vector<std::string> headers);
  void add_row(std::vector<std::string> cells);
  void print(std::ostream& os) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Number formatting for tables: fixed with `decimals` digits.
std::string fixed(double v, int decimals);

// ---- training steps (train-step, cost-model) ----------------------------------------------------
// The shape of a timed training run: class-conditional MNIST, 10 classes per step.
struct StepShape {
  std::string method = "driftxpress", features = "pixels,pool2,pool4", out = "runs/bench-train-step", device = "cpu",
              data_dir;
  std::string positives = "cached";  // standard: TrainConfig::positives
  std::string matmul_dtype = "float32";  // TrainConfig::matmul_dtype (both fields)
  int64_t width = 64, gen_per_class = 25, pos_per_class = 64, landmarks = 1000, landmark_shards = 1;
  bool per_location = true;          // TrainConfig::per_location
  bool vector_maps = false;          // TrainConfig::vector_maps
};
// A TrainConfig for timing steps (no sample grids, no checkpoints; out_dir = out/method).
TrainConfig step_config(const StepShape& s);
// Runs one step and returns it with its wall-clock in ms, the device synchronised before and after
// (on a GPU a step returns with the optimiser's and the EMA's kernels still queued).
std::pair<StepStats, double> timed_step(Trainer& trainer, const std::string& device);
double median(std::vector<double> v);
// Each phase's median over steps, in milliseconds (StepStats::phases are seconds).
StepPhases median_phases_ms(const std::vector<StepPhases>& steps);

// ---- subcommands (each in its own bench/bench_*.cpp) -------------------------------------------
void add_bench_field_standard(CLI::App& bench);
void add_bench_field(CLI::App& bench);       // bench/bench_field.cpp
void add_bench_attraction(CLI::App& bench);  // bench/bench_attraction.cpp
void add_bench_train_step(CLI::App& bench);  // bench/bench_train_step.cpp
void add_bench_dist(CLI::App& bench);        // bench/bench_dist.cpp
void add_bench_cost_model(CLI::App& bench);  // bench/bench_cost_model.cpp
void add_bench_vs_python(CLI::App& bench);   // bench/bench_python.cpp

}  // namespace driftx::bench
