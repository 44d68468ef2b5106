// The one exception type of driftx. Messages name the file or field at fault and, where there is one,
// the fix; the CLI prints `error: <message>` on one line and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace driftx {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws driftx::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace driftx

// Checks a condition on user input (never compiled out, unlike assert).
#define DRIFTX_CHECK(cond, ...)             \
  do {                                      \
    if (!(cond)) ::driftx::fail(__VA_ARGS__); \
  } while (0)
