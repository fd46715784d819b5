#include "runtime/core/address.hpp"

#include <cctype>
#include <charconv>

#include "runtime/core/limits.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh {

std::string net_address::to_string() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

result<net_address> parse_net_address(std::string_view text, bool allow_port_zero) {
  auto fail = [&](const std::string& why) {
    return error{errc::invalid_argument,
                 "'" + std::string(text) + "' is not HOST:PORT (" + why +
                     "; examples: 127.0.0.1:7001, localhost:7001, [::1]:7001)"};
  };
  if (text.size() > limits::address_chars_max) return fail("too long");
  net_address out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("bracketed IPv6 host must be followed by ]:PORT");
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing ':PORT'");
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return fail("put IPv6 hosts in brackets");
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) return fail("empty host");
  for (char c : out.host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_'))
      return fail("host has an invalid character");
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535 || (port == 0 && !allow_port_zero))
    return fail("port must be a number from 1 to 65535");
  out.port = static_cast<uint16_t>(port);
  return out;
}

result<seed_spec> parse_seed_spec(std::string_view text) {
  seed_spec out;
  std::string_view address = text;
  if (text.rfind("did:", 0) == 0) {
    auto at = text.find('@');
    if (at == std::string_view::npos)
      return error{errc::invalid_argument, "'" + std::string(text) +
                                               "': a pinned seed is DID@HOST:PORT"};
    auto pinned = node_id_from_did(text.substr(0, at));
    if (!pinned) return error{errc::invalid_argument, "'" + std::string(text) + "': " + pinned.err().message};
    out.pinned = *pinned;
    address = text.substr(at + 1);
  }
  auto parsed = parse_net_address(address);
  if (!parsed) return parsed.err();
  out.address = parsed->to_string();
  return out;
}

}  // namespace cmesh
