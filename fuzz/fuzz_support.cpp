#include "fuzz_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace driftx::fuzz {

namespace {
// Made once, removed at exit; the string is never freed so the exit handler can still read it.
const std::string& dir() {
  static const std::string* d = [] {
    auto* made = new std::string((std::filesystem::temp_directory_path() / "driftx_fuzz_XXXXXX").string());
    if (!mkdtemp(made->data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir(), ec);
    });
    return made;
  }();
  return *d;
}
}  // namespace

std::string temp_path(const std::string& name) { return dir() + "/" + name; }

void write_input(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::cerr << "fuzz: cannot write " << path << "\n";
    std::abort();
  }
}

void write_input(const std::string& path, const std::string& bytes) {
  write_input(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

namespace {
struct QuietWarnings : c10::WarningHandler {
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};
}  // namespace

void init_runtime() {
  torch::set_num_threads(1);
  static QuietWarnings quiet;
  c10::Warning::set_warning_handler(&quiet);
}

void finding(const char* what, const std::string& kind, const std::string& message) {
  std::cerr << "FINDING in " << what << ": " << kind << ": " << message << std::endl;
  std::abort();
}

}  // namespace driftx::fuzz

