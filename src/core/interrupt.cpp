#include "driftx/interrupt.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace driftx {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<int> g_graceful{0};
bool g_stderr_tty = false;  // a progress line may be open on the terminal: start the message on a new line

// Fixed slots: the handler may only touch memory that needs no allocation or lock.
constexpr int kSlots = 32;
constexpr size_t kPathMax = 4096;
struct TempSlot {
  std::atomic<bool> claimed{false};
  std::atomic<bool> active{false};
  char path[kPathMax];
};
TempSlot g_temp[kSlots];

void write_stderr(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w, n -= static_cast<size_t>(w);
  }
}

// Async-signal-safe: unlink, write and _exit only.
void stop_now(int sig) {
  for (auto& slot : g_temp)
    if (slot.active.load()) ::unlink(slot.path);
  if (g_stderr_tty) write_stderr("\n");
  write_stderr(sig == SIGINT ? "error: interrupted by SIGINT: stopped; files being written were removed\n"
                             : "error: interrupted by SIGTERM: stopped; files being written were removed\n");
  ::_exit(128 + sig);
}

void on_signal(int sig) {
  if (g_graceful.load() > 0 && !g_stop.load()) {
    g_signal.store(sig);
    g_stop.store(true);
    return;
  }
  stop_now(sig);
}

}  // namespace

void install_interrupt_handlers() {
  g_stderr_tty = ::isatty(2) == 1;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

const std::atomic<bool>& stop_flag() { return g_stop; }
int interrupt_signal() { return g_signal.load(); }

GracefulStop::GracefulStop() { g_graceful.fetch_add(1); }
GracefulStop::~GracefulStop() { g_graceful.fetch_sub(1); }

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return fmt::format("signal {}", signal);
  }
}

int register_temp_file(const std::string& path) {
  if (path.size() >= kPathMax) return -1;
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (!g_temp[i].claimed.compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_temp[i].path, path.c_str(), path.size() + 1);
    g_temp[i].active.store(true);
    return i;
  }
  return -1;
}

void unregister_temp_file(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  g_temp[slot].active.store(false);
  g_temp[slot].claimed.store(false);
}

void crash_point(const std::string& name) {
  static const std::string spec = [] {
    const char* s = std::getenv("DRIFTX_CRASH_AT");
    return std::string(s ? s : "");
  }();
  if (spec.empty()) return;
  static std::atomic<int64_t> hits{0};
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos) return;
  const std::string prefix = spec.substr(0, colon);
  if (name.compare(0, prefix.size(), prefix) != 0) return;
  if (hits.fetch_add(1) + 1 == std::atoll(spec.c_str() + colon + 1)) ::kill(::getpid(), SIGKILL);
}

}  // namespace driftx
