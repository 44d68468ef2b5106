// Atomic files, stale temporaries and the run-directory lock (issue 14, defects 1, 4, 9).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driftx/files.h"
#include "test_support.h"

namespace driftx {
namespace {

using Files = testing_support::TempDirTest;

// A write that fails half-way (here the file-size limit, EFBIG, as a full disk gives ENOSPC) is one
// error line naming the file; the previous version is untouched and no temporary is left behind (the
// old writer left "<name>.tmp").
TEST_F(Files, FailedWriteKeepsThePreviousFileAndLeavesNoTemporary) {
  const std::string file = path("result.bin");
  write_file_atomic(file, std::string(100, 'a'));
  struct rlimit old {};
  ::getrlimit(RLIMIT_FSIZE, &old);
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of a signal
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  testing_support::expect_error([&] { write_file_atomic(file, std::string(100000, 'b')); },
                                {"writing '" + file + "' failed", "File too large", "unchanged"});
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(read_file(file), std::string(100, 'a'));
  EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
  testing_support::expect_error([&] { write_file_atomic(path("missing/x.bin"), "x"); }, {"cannot write", "missing/x.bin"});
  EXPECT_TRUE(testing_support::temp_files_in(dir_).empty());
}

// Temporaries of a writer that was killed are removed; those of a live process are not.
TEST_F(Files, StaleTemporariesOfDeadProcessesAreRemoved) {
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = path("checkpoint.pt.tmp." + std::to_string(dead) + ".3");
  const std::string live = path("checkpoint.pt.tmp." + std::to_string(::getpid()) + ".4");
  const std::string other = path("notes.tmp.txt");
  for (const auto& p : {stale, live, other}) write_file_atomic(p, "x");
  remove_stale_temp_files(dir_.string());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(other));
}

// One holder at a time, in this process or another; released with the holder (and, by the kernel,
// when a holder dies: tests/cli/test_crash.cpp resumes killed runs).
TEST_F(Files, DirectoryLockAdmitsOneHolder) {
  {
    DirectoryLock first(dir_.string(), "run directory");
    testing_support::expect_error([&] { DirectoryLock second(dir_.string(), "run directory"); },
                                  {"run directory '" + dir_.string() + "' is in use by another driftx process",
                                   "pid " + std::to_string(::getpid())});
  }
  DirectoryLock again(dir_.string(), "run directory");
}

}  // namespace
}  // namespace driftx
