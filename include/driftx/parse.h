// Parsing of command-line values. Errors are driftx::Error naming the flag (`what`) and an example.
#pragma once

#include <string>
#include <vector>

namespace driftx {

// "0.02,0.05,0.2" -> positive, finite temperatures.
std::vector<double> parse_temperatures(const std::string& text, const std::string& what = "--temps");

// "256,1024" -> integers >= min_value.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what, int64_t min_value = 1);

// "standard, driftxpress" -> non-empty names, spaces trimmed.
std::vector<std::string> parse_name_list(const std::string& text, const std::string& what);

// "20m", "90s", "1.5h", "300" (seconds) -> seconds.
double parse_duration(const std::string& text, const std::string& what = "--time-budget");

}  // namespace driftx
