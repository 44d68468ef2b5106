// driftx launch: N local ranks of one command, torchrun's environment, output forwarded per line with
// a rank prefix, and all-or-nothing exit (one failed rank stops the others).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>

#include "driftx/distributed.h"
#include "driftx/error.h"
#include "driftx/interrupt.h"

namespace driftx {

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  DRIFTX_CHECK(fd >= 0, "cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  DRIFTX_CHECK(ok, "cannot find a free TCP port on 127.0.0.1: {}", std::strerror(errno));
  return ntohs(addr.sin_port);
}

std::string current_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  DRIFTX_CHECK(n > 0, "cannot resolve the running executable (/proc/self/exe): {}", std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

namespace {

std::atomic<int> g_forward_signal{0};
int g_child_pipe[2] = {-1, -1};  // SIGCHLD wakes poll(): a failed rank is seen before the ranks it takes down
void on_signal(int sig) { g_forward_signal.store(sig); }
void on_child(int) {
  const char c = 0;
  [[maybe_unused]] ssize_t n = ::write(g_child_pipe[1], &c, 1);
}

struct Rank {
  pid_t pid = -1;
  int fds[2] = {-1, -1};         // read ends of the rank's stdout and stderr
  std::string pending[2];        // partial last lines
  bool running = true;
  int status = 0;
};

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

bool failed(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Forwards complete lines of rank k's stream s (0 stdout, 1 stderr) with the rank prefix; at EOF also
// the unterminated rest. A progress line rewritten with '\r' counts as a line.
void forward(Rank& r, int k, int s, const char* data, size_t n, bool eof) {
  std::string& buf = r.pending[s];
  buf.append(data, n);
  size_t start = 0;
  for (size_t i = 0; i < buf.size(); ++i) {
    if (buf[i] != '\n' && buf[i] != '\r') continue;
    if (i > start) write_all(s == 0 ? 1 : 2, fmt::format("[rank {}] {}\n", k, buf.substr(start, i - start)));
    start = i + 1;
  }
  buf.erase(0, start);
  if (eof && !buf.empty()) {
    write_all(s == 0 ? 1 : 2, fmt::format("[rank {}] {}\n", k, buf));
    buf.clear();
  }
}

}  // namespace

void launch_local(const LaunchConfig& config, const std::vector<std::string>& args) {
  DRIFTX_CHECK(config.nproc >= 1, "--nproc must be >= 1, got {}", config.nproc);
  DRIFTX_CHECK(!args.empty(), "driftx launch: no command given (usage: driftx launch --nproc N -- train ...)");
  const int port = config.master_port > 0 ? config.master_port : free_tcp_port();
  std::cout << fmt::format("launch: {} ranks of `{}`, rendezvous {}:{}", config.nproc, args.size() > 1 ? args[1] : args[0],
                           config.master_addr, port)
            << std::endl;

  DRIFTX_CHECK(::pipe2(g_child_pipe, O_CLOEXEC | O_NONBLOCK) == 0, "driftx launch: cannot create a pipe: {}",
               std::strerror(errno));
  struct sigaction sa{}, sc{}, old_int{}, old_term{}, old_chld{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  sc.sa_handler = on_child;
  sc.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigemptyset(&sc.sa_mask);
  ::sigaction(SIGCHLD, &sc, &old_chld);
  g_forward_signal.store(0);

  std::vector<Rank> ranks(config.nproc);
  for (int k = 0; k < config.nproc; ++k) {
    int out[2], err[2];
    DRIFTX_CHECK(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0, "driftx launch: cannot create pipes: {}", std::strerror(errno));
    const pid_t pid = ::fork();
    DRIFTX_CHECK(pid >= 0, "driftx launch: fork failed: {}", std::strerror(errno));
    if (pid == 0) {
      // Child: a rank. It dies with the launcher (SIGTERM: the trainer saves a checkpoint and stops).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      ::dup2(out[1], 1);  // dup2 clears close-on-exec on 1 and 2; every other pipe end closes at exec
      ::dup2(err[1], 2);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGCHLD, SIG_DFL);
      ::setenv("RANK", std::to_string(k).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(k).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(config.nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(config.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", config.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      const std::string msg = fmt::format("error: cannot run '{}': {}\n", args[0], std::strerror(errno));
      write_all(2, msg);
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    ranks[k].pid = pid;
    ranks[k].fds[0] = out[0];
    ranks[k].fds[1] = err[0];
    std::cout << fmt::format("launch: rank {} pid {}", k, pid) << std::endl;
  }

  int first_failed = -1, first_status = 0, interrupted_by = 0;
  using Clock = std::chrono::steady_clock;
  Clock::time_point kill_at{};
  bool stopping = false;
  auto stop_others = [&] {
    if (stopping) return;
    stopping = true;
    for (auto& r : ranks)
      if (r.running) ::kill(r.pid, SIGTERM);
    kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(config.grace_s * 1e3));
  };
  char buf[65536];
  while (true) {
    if (const int sig = g_forward_signal.exchange(0)) {
      for (auto& r : ranks)
        if (r.running) ::kill(r.pid, SIGTERM);
      if (!interrupted_by) interrupted_by = sig;
    }
    std::vector<pollfd> pfds{{g_child_pipe[0], POLLIN, 0}};
    std::vector<std::pair<int, int>> owner{{-1, -1}};  // (rank, stream)
    for (int k = 0; k < config.nproc; ++k)
      for (int s = 0; s < 2; ++s)
        if (ranks[k].fds[s] >= 0) {
          pfds.push_back({ranks[k].fds[s], POLLIN, 0});
          owner.emplace_back(k, s);
        }
    bool any_running = false;
    for (const auto& r : ranks) any_running |= r.running;
    if (pfds.size() == 1 && !any_running) break;
    {
      const int n = ::poll(pfds.data(), pfds.size(), 100);
      if (n < 0 && errno != EINTR) fail("driftx launch: poll failed: {}", std::strerror(errno));
      for (size_t i = 0; n > 0 && i < pfds.size(); ++i) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto [k, s] = owner[i];
        if (k < 0) {
          while (::read(g_child_pipe[0], buf, sizeof(buf)) > 0) {}
          continue;
        }
        const ssize_t got = ::read(pfds[i].fd, buf, sizeof(buf));
        if (got > 0) {
          forward(ranks[k], k, s, buf, static_cast<size_t>(got), false);
        } else if (got == 0 || errno != EINTR) {
          forward(ranks[k], k, s, buf, 0, true);
          ::close(ranks[k].fds[s]);
          ranks[k].fds[s] = -1;
        }
      }
    }
    for (int k = 0; k < config.nproc; ++k) {
      auto& r = ranks[k];
      if (!r.running) continue;
      int status = 0;
      if (::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      r.running = false;
      r.status = status;
      // The first failure is the cause; the ranks it takes down fail after it. Reaped in one pass, a
      // rank killed by a signal is more likely the cause than one that exited with an error.
      if (failed(status) && (first_failed < 0 || (!stopping && WIFSIGNALED(status) && !WIFSIGNALED(first_status))))
        first_failed = k, first_status = status;
    }
    if (first_failed >= 0) stop_others();
    if (stopping && Clock::now() >= kill_at)
      for (auto& r : ranks)
        if (r.running) ::kill(r.pid, SIGKILL);
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGCHLD, &old_chld, nullptr);
  for (int& fd : g_child_pipe) ::close(fd), fd = -1;
  // Stopped by the user: the ranks' own exits (130 / 143 after a checkpoint) are not failures.
  if (interrupted_by)
    throw Interrupted(interrupted_by, fmt::format("interrupted by {}: every rank was stopped (a training run saved its "
                                                  "checkpoint: continue with --resume)", signal_name(interrupted_by)));
  if (first_failed >= 0)
    fail("rank {} {}; the other {} rank(s) were stopped", first_failed, describe(first_status), config.nproc - 1);
}

}  // namespace driftx
