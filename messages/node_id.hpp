// A node's identity on the wire and in every table: its 32-byte ed25519 public key.
// The human-readable form is did:key (runtime/crypto/identity.hpp); `short_name()` is for logs.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace cmesh {

// Lowercase hex of [data, data + size): two characters per byte.
std::string to_hex(const uint8_t* data, size_t size);

using bytes = std::vector<uint8_t>;

struct node_id {
  std::array<uint8_t, 32> key{};

  static node_id from_bytes(const uint8_t* data) {
    node_id id;
    std::memcpy(id.key.data(), data, 32);
    return id;
  }
  bool is_zero() const {
    for (auto b : key)
      if (b != 0) return false;
    return true;
  }
  // First 8 bytes as an integer: cheap, well-spread hash (keys are uniformly random).
  uint64_t prefix64() const {
    uint64_t v;
    std::memcpy(&v, key.data(), 8);
    return v;
  }
  // 8 hex chars, enough to tell nodes apart in a log line.
  std::string short_name() const;
  std::string hex() const;

  // Lexicographic byte order. The first 8 bytes decide almost every comparison (keys are
  // uniformly random), so compare them as one big-endian integer before falling back to memcmp.
  friend bool operator==(const node_id& a, const node_id& b) {
    return std::memcmp(a.key.data(), b.key.data(), 32) == 0;
  }
  friend std::strong_ordering operator<=>(const node_id& a, const node_id& b) {
    uint64_t x = __builtin_bswap64(a.prefix64());
    uint64_t y = __builtin_bswap64(b.prefix64());
    if (x != y) return x < y ? std::strong_ordering::less : std::strong_ordering::greater;
    int c = std::memcmp(a.key.data() + 8, b.key.data() + 8, 24);
    return c < 0 ? std::strong_ordering::less
                 : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
  }
};

// CAF 0.17 inspection (found by ADL; needs no CAF header here).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_id& x) {
  return f(x.key);
}

}  // namespace cmesh

template <>
struct std::hash<cmesh::node_id> {
  size_t operator()(const cmesh::node_id& id) const noexcept { return id.prefix64(); }
};
