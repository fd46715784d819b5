#include <doctest/doctest.h>

#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"

using namespace cmesh;

TEST_CASE("address: host and port parse and print back") {
  auto a = parse_net_address("127.0.0.1:7001");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 7001);
  CHECK(a->to_string() == "127.0.0.1:7001");
  auto b = parse_net_address("[::1]:9");
  REQUIRE(b.ok());
  CHECK(b->host == "::1");
  CHECK(b->to_string() == "[::1]:9");
  CHECK(parse_net_address("localhost:65535").ok());
}

TEST_CASE("address: bad input is refused with the text in the message") {
  for (const char* bad : {"", "7001", "host:", ":7001", "host:0", "host:65536", "host:12x", "::1:80",
                          "[::1]80", "ho st:1", "a:-1"}) {
    auto r = parse_net_address(bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::invalid_argument);
    CHECK(r.err().message.find(std::string("'") + bad + "'") != std::string::npos);
  }
  CHECK(parse_net_address("host:0", true).ok());  // listen addresses may ask for any port
  CHECK_FALSE(parse_net_address(std::string(300, 'a') + ":1").ok());
}

TEST_CASE("address: seeds may pin an identity") {
  crypto_init();
  std::array<uint8_t, 32> zero{};
  auto id = identity::from_seed(zero);
  auto pinned = parse_seed_spec(id.did() + "@127.0.0.1:7001");
  REQUIRE(pinned.ok());
  CHECK(pinned->pinned == id.public_key);
  CHECK(pinned->address == "127.0.0.1:7001");
  auto plain = parse_seed_spec("127.0.0.1:7001");
  REQUIRE(plain.ok());
  CHECK(plain->pinned.is_zero());
  CHECK_FALSE(parse_seed_spec("did:key:zBAD@127.0.0.1:7001").ok());
  CHECK_FALSE(parse_seed_spec(id.did()).ok());
  CHECK_FALSE(parse_seed_spec(id.did() + "@nohostport").ok());
}
