#include "messages/node_id.hpp"

namespace cmesh {

std::string to_hex(const uint8_t* data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

std::string node_id::short_name() const { return to_hex(key.data(), 4); }
std::string node_id::hex() const { return to_hex(key.data(), key.size()); }

}  // namespace cmesh
