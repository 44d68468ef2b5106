// SHA-256 digests (OpenSSL's libcrypto): pins the evaluator weights so an FID is only ever computed
// with the network it claims to use.
#pragma once

#include <string>

namespace driftx {

std::string sha256_hex(const std::string& bytes);       // 64 lower-case hex digits
std::string sha256_file_hex(const std::string& path);   // error names the path

}  // namespace driftx
