#include "driftx/parse.h"

#include <cmath>
#include <sstream>

#include "driftx/error.h"

namespace driftx {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::vector<double> parse_temperatures(const std::string& text, const std::string& what) {
  std::vector<double> temps;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DRIFTX_CHECK(used > 0 && used == item.size() && value > 0 && std::isfinite(value),
                 "{}: '{}' is not a positive number (expected a list such as 0.02,0.05,0.2)", what, item);
    temps.push_back(value);
  }
  DRIFTX_CHECK(!temps.empty(), "{}: no temperature given (expected a list such as 0.02,0.05,0.2)", what);
  return temps;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what, int64_t min_value) {
  std::vector<int64_t> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DRIFTX_CHECK(used > 0 && used == item.size() && value >= min_value,
                 "{}: '{}' is not an integer >= {} (expected a list such as 256,1024)", what, item, min_value);
    values.push_back(value);
  }
  DRIFTX_CHECK(!values.empty(), "{}: no value given (expected a list such as 256,1024)", what);
  return values;
}

std::vector<std::string> parse_name_list(const std::string& text, const std::string& what) {
  std::vector<std::string> names;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    DRIFTX_CHECK(!item.empty(), "{}: empty name in '{}' (expected a list such as standard,driftxpress)", what, text);
    names.push_back(item);
  }
  DRIFTX_CHECK(!names.empty(), "{}: no name given (expected a list such as standard,driftxpress)", what);
  return names;
}

double parse_duration(const std::string& text, const std::string& what) {
  size_t used = 0;
  double value = -1;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
  }
  const std::string unit = text.substr(used);
  double mult = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : -1;
  DRIFTX_CHECK(value >= 0 && mult > 0 && std::isfinite(value), "{}: '{}' is not a duration (use e.g. 90s, 20m, 1.5h)", what, text);
  return value * mult;
}

}  // namespace driftx
