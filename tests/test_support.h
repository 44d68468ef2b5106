// Shared test helpers.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "driftx/error.h"
#include "driftx/train.h"
#include "driftx/files.h"

namespace driftx::testing_support {

// Runs `fn`, expects a one-line driftx::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected driftx::Error containing '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// Files under `dir` (recursively) whose name marks an unfinished atomic write ("<name>.tmp.<pid>.<n>")
// or an old-style "<name>.tmp": after any failure, kill or interrupt there must be none.
inline std::vector<std::string> temp_files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp.") != std::string::npos || (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0))
      out.push_back(it->path().string());
  }
  return out;
}

// A fresh directory per test (unique per test name and process), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("driftx_" + std::string(info->test_suite_name()) + "_" + std::string(info->name()) + "_" +
            std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

#ifdef DRIFTX_BINARY
// Runs the driftx binary as a real process, in a fresh directory per test.
class CliTest : public TempDirTest {
 protected:
  // Runs `driftx <args>` through the shell ({dir}: this test's directory; `prefix` goes before the
  // binary, e.g. "DRIFTX_CRASH_AT=step:3" or "ulimit -f 64;"). Returns the exit status as a shell
  // reports it (128 + signal when killed) and stdout + stderr.
  std::pair<int, std::string> run(std::string args, const std::string& prefix = "") {
    for (size_t at; (at = args.find("{dir}")) != std::string::npos;) args.replace(at, 5, dir_.string());
    const std::string out = path("out.txt");
    const int rc = std::system((prefix + " " + std::string(DRIFTX_BINARY) + " " + args + " > " + out + " 2>&1").c_str());
    return {WIFSIGNALED(rc) ? 128 + WTERMSIG(rc) : WEXITSTATUS(rc), read_file(out)};
  }

  // Starts `driftx <args...>` without a shell (stdout + stderr to `log`); returns its pid.
  pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(DRIFTX_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(DRIFTX_BINARY, argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // Exit status of a spawned process, as a shell reports it.
  static int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
};
#endif

// Lines of `text` that start with "error:" (each failure must be exactly one).
inline int error_lines(const std::string& text) {
  int n = 0;
  for (size_t at = 0; (at = text.find("error:", at)) != std::string::npos; ++at)
    if (at == 0 || text[at - 1] == '\n') ++n;
  return n;
}

// A training run of seconds on real MNIST: 3 classes x 6 generated per step, two small feature groups,
// 60 landmarks, a width-16 generator; out_dir = dir/run, cache_dir = dir/cache, seed 3.
inline TrainConfig tiny_train_config(const std::string& method, const std::string& dir) {
  TrainConfig c;
  c.method = method;
  c.features = "pool4,mean_std";
  c.classes_per_step = 3;
  c.gen_per_class = 6;
  c.pos_per_class = 16;
  c.landmarks = 60;
  c.width = 16;
  c.noise_dim = 8;
  c.lr = 1e-3;
  c.warmup_steps = 0;
  c.log_every = 1;
  c.sample_every = 2;
  c.checkpoint_every = 2;
  c.out_dir = dir + "/run";
  c.cache_dir = dir + "/cache";
  c.seed = 3;
  return c;
}

}  // namespace driftx::testing_support
