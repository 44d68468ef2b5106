#include "driftx/sha256.h"

#include <openssl/evp.h>

#include "driftx/error.h"
#include "driftx/files.h"

namespace driftx {

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest is the one-shot API that is not deprecated in OpenSSL 3 (SHA256() is in 1.1 only).
  DRIFTX_CHECK(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) == 1,
               "SHA-256 failed inside OpenSSL (libcrypto); check the OpenSSL installation");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

std::string sha256_file_hex(const std::string& path) { return sha256_hex(read_file(path)); }

}  // namespace driftx
