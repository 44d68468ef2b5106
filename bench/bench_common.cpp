#include "bench_common.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include "driftx/error.h"
#include "driftx/runtime.h"

namespace driftx::bench {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// A "VmXXX:   1234 kB" line of /proc/self/status, in MiB; < 0 if absent.
double proc_status_mib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream fields(line.substr(key.size() + 1));
      double kb = -1;
      fields >> kb;
      return kb < 0 ? -1 : kb / 1024.0;
    }
  }
  return -1;
}

// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0).
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

bool looks_numeric(const std::string& s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (!(std::isdigit(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
          ch == 'x' || ch == '%'))
      return false;
  return std::isdigit(static_cast<unsigned char>(s.front())) || s.front() == '-' || s.front() == '.';
}

}  // namespace

double current_rss_mib() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  if (!(in >> size >> resident)) return -1;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / kMiB;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

MemoryAdded measure_memory_added(const std::function<void()>& fn) {
  MemoryAdded m;
#ifdef __GLIBC__
  malloc_trim(0);  // freed heap pages back to the OS: RSS before is what is live
#endif
  m.rss_before_mib = current_rss_mib();
  if (reset_peak_rss() && proc_status_mib("VmHWM") >= 0) {
    fn();
    m.peak_added_mib = std::max(0.0, proc_status_mib("VmHWM") - m.rss_before_mib);
    m.method = "VmHWM after clear_refs";
  } else {
    const double peak_before = peak_rss_mib();
    fn();
    m.peak_added_mib = std::max(0.0, peak_rss_mib() - std::max(peak_before, m.rss_before_mib));
    m.method = "ru_maxrss growth (lower bound)";
  }
  return m;
}

MachineInfo machine_info() {
  MachineInfo m;
  m.threads = at::get_num_threads();
  m.hardware_threads = static_cast<int>(std::thread::hardware_concurrency());
  const std::string config = at::show_config();
  const std::string key = "BLAS_INFO=";
  const auto pos = config.find(key);
  if (pos != std::string::npos) {
    const auto start = pos + key.size();
    const auto end = config.find_first_of(",\n", start);
    m.blas = trim(config.substr(start, end == std::string::npos ? std::string::npos : end - start));
  }
  if (m.blas.empty()) m.blas = "unknown";
  // BLAS_INFO=generic (Debian) says only "the system libblas": name the libraries actually mapped.
  std::ifstream maps("/proc/self/maps");
  std::string map_line;
  while (std::getline(maps, map_line)) {
    const auto slash = map_line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = map_line.substr(slash);
    const std::string base = path.substr(path.rfind('/') + 1);
    if (base.find("blas") == std::string::npos && base.find("mkl_rt") == std::string::npos &&
        base.find("mkl_core") == std::string::npos)
      continue;
    std::error_code ec;
    std::string real = std::filesystem::canonical(path, ec).string();
    if (ec) real = path;
    if (std::find(m.blas_libraries.begin(), m.blas_libraries.end(), real) == m.blas_libraries.end())
      m.blas_libraries.push_back(real);
  }
#ifdef TORCH_VERSION
  m.torch_version = TORCH_VERSION;
#else
  m.torch_version = "unknown";
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu = trim(line.substr(colon + 1));
      break;
    }
  }
  if (m.cpu.empty()) m.cpu = "unknown";
  return m;
}

nlohmann::json to_json(const MachineInfo& m) {
  return {{"threads", m.threads},
          {"hardware_threads", m.hardware_threads},
          {"blas", m.blas},
          {"blas_libraries", m.blas_libraries},
          {"libtorch", m.torch_version},
          {"cpu", m.cpu}};
}

std::string header_line(const MachineInfo& m) {
  std::string blas = m.blas;
  if (!m.blas_libraries.empty()) {
    blas += " (";
    for (size_t i = 0; i < m.blas_libraries.size(); ++i) blas += (i ? ", " : "") + m.blas_libraries[i];
    blas += ")";
  }
  return fmt::format("threads={} (of {} hardware)  BLAS={}  LibTorch {}  CPU: {}", m.threads, m.hardware_threads,
                     blas, m.torch_version, m.cpu);
}

std::string device_name(const std::string& device) {
  const torch::Device d(device);
  return d.is_cuda() ? device_label(d) : "CPU: " + machine_info().cpu;
}

TrainConfig step_config(const StepShape& s) {
  TrainConfig c;
  c.method = s.method;
  c.features = s.features;
  c.width = s.width;
  c.gen_per_class = s.gen_per_class;
  c.pos_per_class = s.pos_per_class;
  c.positives = s.positives;
  c.per_location = s.per_location;
  c.landmarks = s.landmarks;
  c.landmark_shards = s.landmark_shards;
  c.vector_maps = s.vector_maps;
  c.matmul_dtype = s.matmul_dtype;
  c.out_dir = s.out + "/" + s.method;
  c.device = s.device;
  c.data_dir = s.data_dir;
  c.sample_every = c.checkpoint_every = 0;
  return c;
}

std::pair<StepStats, double> timed_step(Trainer& trainer, const std::string& device) {
  const bool cuda = torch::Device(device).is_cuda();
  if (cuda) torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  auto stats = trainer.step();
  if (cuda) torch::cuda::synchronize();
  return {stats, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()};
}

double median(std::vector<double> v) {
  DRIFTX_CHECK(!v.empty(), "median of no values");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

StepPhases median_phases_ms(const std::vector<StepPhases>& steps) {
  StepPhases out;
  for (auto phase : {&StepPhases::generator, &StepPhases::features, &StepPhases::positives, &StepPhases::fields,
                     &StepPhases::backward, &StepPhases::optimizer}) {
    std::vector<double> ms;
    for (const auto& s : steps) ms.push_back(s.*phase * 1e3);
    out.*phase = median(ms);
  }
  return out;
}

MarkdownTable::MarkdownTable(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void MarkdownTable::add_row(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void MarkdownTable::print(std::ostream& os) const {
  const size_t cols = headers_.size();
  std::vector<size_t> width(cols, 3);
  std::vector<bool> right(cols, true);
  for (size_t c = 0; c < cols; ++c) {
    width[c] = std::max(width[c], headers_[c].size());
    for (const auto& row : rows_) {
      width[c] = std::max(width[c], row[c].size());
      if (!row[c].empty() && !looks_numeric(row[c])) right[c] = false;
    }
  }
  auto cell = [&](const std::string& s, size_t c) {
    const std::string pad(width[c] - s.size(), ' ');
    return right[c] ? pad + s : s + pad;
  };
  os << '|';
  for (size_t c = 0; c < cols; ++c) os << ' ' << cell(headers_[c], c) << " |";
  os << "\n|";
  for (size_t c = 0; c < cols; ++c)
    os << ' ' << std::string(width[c] - (right[c] ? 1 : 0), '-') << (right[c] ? ":" : "") << " |";
  os << '\n';
  for (const auto& row : rows_) {
    os << '|';
    for (size_t c = 0; c < cols; ++c) os << ' ' << cell(row[c], c) << " |";
    os << '\n';
  }
}

std::string fixed(double v, int decimals) { return fmt::format("{:.{}f}", v, decimals); }

void add_dataset_options(CLI::App* cmd, std::string& dataset, std::string& data_dir, uint64_t& seed,
                         std::string& report) {
  cmd->add_option("--dataset", dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", data_dir, "Dataset directory");
  cmd->add_option("--seed", seed, "Seed")->capture_default_str();
  cmd->add_option("--report", report, "Output: JSON rows + machine + configuration");
}

}  // namespace driftx::bench
