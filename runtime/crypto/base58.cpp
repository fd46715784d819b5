#include "runtime/crypto/base58.hpp"

#include <array>

namespace cmesh {

namespace {

constexpr std::string_view alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// Digit value of each character, or -1 when it is not in the alphabet.
constexpr std::array<int8_t, 256> make_digit_table() {
  std::array<int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (size_t i = 0; i < alphabet.size(); ++i)
    table[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr auto digit_table = make_digit_table();

}  // namespace

std::string base58btc_encode(const uint8_t* data, size_t size) {
  size_t zeros = 0;
  while (zeros < size && data[zeros] == 0) ++zeros;
  // Base-58 digits, least significant first. log(256)/log(58) < 1.37.
  std::string digits;
  digits.reserve((size - zeros) * 138 / 100 + 1);
  for (size_t i = zeros; i < size; ++i) {
    unsigned carry = data[i];
    for (char& digit : digits) {
      carry += static_cast<unsigned>(digit) << 8;
      digit = static_cast<char>(carry % 58);
      carry /= 58;
    }
    while (carry > 0) {
      digits.push_back(static_cast<char>(carry % 58));
      carry /= 58;
    }
  }
  std::string out(zeros, alphabet[0]);
  out.reserve(zeros + digits.size());
  for (auto it = digits.rbegin(); it != digits.rend(); ++it)
    out.push_back(alphabet[static_cast<uint8_t>(*it)]);
  return out;
}

result<bytes> base58btc_decode(std::string_view text) {
  size_t ones = 0;
  while (ones < text.size() && text[ones] == alphabet[0]) ++ones;
  // Base-256 bytes, least significant first. log(58)/log(256) < 0.74.
  bytes value;
  value.reserve((text.size() - ones) * 74 / 100 + 1);
  for (size_t i = ones; i < text.size(); ++i) {
    const int digit = digit_table[static_cast<uint8_t>(text[i])];
    if (digit < 0) {
      const auto code = static_cast<unsigned>(static_cast<uint8_t>(text[i]));
      return error{errc::malformed, "character " + std::to_string(code) + " at position " +
                                        std::to_string(i) + " is not base58btc"};
    }
    unsigned carry = static_cast<unsigned>(digit);
    for (uint8_t& byte : value) {
      carry += static_cast<unsigned>(byte) * 58;
      byte = static_cast<uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    while (carry > 0) {
      value.push_back(static_cast<uint8_t>(carry & 0xff));
      carry >>= 8;
    }
  }
  bytes out(ones, 0);
  out.insert(out.end(), value.rbegin(), value.rend());
  return out;
}

}  // namespace cmesh
