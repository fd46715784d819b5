// Node addresses: "host:port" with an IPv4 address or name, or "[v6]:port". Pure parsing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "messages/error.hpp"
#include "messages/node_id.hpp"

namespace cmesh {

struct net_address {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;
};

// Errors name the text and say what is expected ("'abc' is not HOST:PORT ...").
// `allow_port_zero` for listen addresses (0 = let the OS choose).
result<net_address> parse_net_address(std::string_view text, bool allow_port_zero = false);

// A seed as given on the command line: "HOST:PORT" or "did:key:z...@HOST:PORT" (pinned identity:
// the node refuses whoever answers there unless it proves that key).
struct seed_spec {
  std::string address;  // normalised "host:port"
  node_id pinned;       // all zero = not pinned
};
result<seed_spec> parse_seed_spec(std::string_view text);

}  // namespace cmesh
