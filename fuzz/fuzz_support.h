// Shared by the fuzz targets: the input goes to a temporary file (every parser here reads a path), and
// the parser's contract is checked. A parser may reject an input only with driftx::Error (one line);
// anything else -- another exception, a crash, a sanitizer report -- is a finding (abort()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <typeinfo>

#include <torch/torch.h>

namespace driftx::fuzz {

// A file under this process's own temporary directory (removed at exit).
std::string temp_path(const std::string& name);
void write_input(const std::string& path, const uint8_t* data, size_t size);
void write_input(const std::string& path, const std::string& bytes);

// One-time set-up for every target: one thread, no LibTorch warnings on stderr.
void init_runtime();

// Calls fn(); returns true when it returned normally, false on driftx::Error (and on c10::Error when
// allow_c10, for calls whose documented failure is LibTorch's). Anything else aborts with its type and
// message, so libFuzzer records the input as a crash.
template <typename Fn>
bool expect_contract(const char* what, Fn&& fn, bool allow_c10 = false);

[[noreturn]] void finding(const char* what, const std::string& kind, const std::string& message);

}  // namespace driftx::fuzz

#include "driftx/error.h"

template <typename Fn>
bool driftx::fuzz::expect_contract(const char* what, Fn&& fn, bool allow_c10) {
  try {
    fn();
    return true;
  } catch (const driftx::Error& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos) finding(what, "driftx::Error of several lines", msg);
    return false;
  } catch (const c10::Error& e) {
    if (!allow_c10) finding(what, "c10::Error", e.what_without_backtrace());
    return false;
  } catch (const std::exception& e) {
    finding(what, std::string("std::exception (") + typeid(e).name() + ")", e.what());
  } catch (...) {
    finding(what, "unknown exception", "");
  }
}
