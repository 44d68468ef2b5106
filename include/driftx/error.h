// The one exception type of driftx. Messages name the file or field at fault and, where there is one,
// the fix; the CLI prints `error: <message>` on one line and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>

#include <c10/util/ArrayRef.h>
#include <fmt/format.h>

namespace driftx {

// `text` with control characters shown as \xNN, so that a message quoting bytes from a file (a dtype,
// a key, a path) stays one line (a dtype "<f7\n..." used to split one; found by fuzz_npy).
inline std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

// Every message is one line: control characters are escaped here, whatever the caller formatted.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}
};

// Throws driftx::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// The first non-empty line of an exception's message (c10::Error appends a backtrace on further
// lines; torch::jit::ErrorReport may print source context), for wrapping into a one-line Error.
inline std::string exception_line(const std::exception& e) {
  const std::string what = e.what();
  size_t start = what.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "no message";
  const size_t end = what.find_first_of("\r\n", start);
  return what.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// "[a, b, c]": shapes in messages.
inline std::string shape_str(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

}  // namespace driftx

// Checks a condition on user input (never compiled out, unlike assert).
#define DRIFTX_CHECK(cond, ...)             \
  do {                                      \
    if (!(cond)) ::driftx::fail(__VA_ARGS__); \
  } while (0)
