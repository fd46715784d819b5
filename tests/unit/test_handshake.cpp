// The handshake machine: agreement, authentication, pinning, and hostile input.
// The "spec_" helpers rebuild the wire format from docs/wire-protocol.md with plain libsodium
// calls, independently of handshake.cpp, so the spec and the code cannot drift apart silently.
#include <doctest/doctest.h>

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/handshake.hpp"

using namespace cmesh;

namespace {

using key32 = std::array<uint8_t, 32>;

local_credentials make_node(uint8_t seed_byte, std::string address) {
  if (sodium_init() < 0) std::abort();  // runs during static initialisation: no doctest yet
  std::array<uint8_t, 32> seed;
  seed.fill(seed_byte);
  local_credentials self;
  crypto_sign_seed_keypair(self.public_key.key.data(), self.secret_key.data(), seed.data());
  self.listen_address = std::move(address);
  return self;
}

key32 ephemeral(uint8_t byte) {
  key32 secret;
  secret.fill(byte);
  return secret;
}

const local_credentials alice = make_node(1, "127.0.0.1:7001");
const local_credentials bob = make_node(2, "127.0.0.1:7002");
const local_credentials carol = make_node(3, "127.0.0.1:7003");

handshake make_initiator(const local_credentials& self, uint8_t eph,
                         std::optional<node_id> pin = std::nullopt) {
  return handshake(handshake::role::initiator, self, ephemeral(eph), pin);
}
handshake make_responder(const local_credentials& self, uint8_t eph,
                         std::optional<node_id> pin = std::nullopt) {
  return handshake(handshake::role::responder, self, ephemeral(eph), pin);
}

result<handshake::step_output> feed(handshake& h, const bytes& message) {
  return h.on_message(message.data(), message.size());
}

// The three messages of one complete handshake, with both machines.
struct transcript {
  bytes msg1, msg2, msg3;
};

transcript run(handshake& initiator, handshake& responder) {
  transcript t;
  t.msg1 = initiator.start();
  auto r2 = feed(responder, t.msg1);
  REQUIRE(r2.ok());
  CHECK_FALSE(r2->done);
  t.msg2 = r2->reply;
  auto r3 = feed(initiator, t.msg2);
  REQUIRE(r3.ok());
  CHECK(r3->done);
  t.msg3 = r3->reply;
  auto r4 = feed(responder, t.msg3);
  REQUIRE(r4.ok());
  CHECK(r4->done);
  CHECK(r4->reply.empty());
  return t;
}

// ---- independent rebuild of the spec -----------------------------------------------------------

void put(bytes& out, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + size);
}

key32 spec_hash(const bytes& input) {
  key32 out;
  crypto_generichash(out.data(), out.size(), input.data(), input.size(), nullptr, 0);
  return out;
}

bytes spec_identity(const local_credentials& self, std::string_view address) {
  bytes out;
  put(out, self.public_key.key.data(), 32);
  out.push_back(static_cast<uint8_t>(address.size() >> 8));
  out.push_back(static_cast<uint8_t>(address.size() & 0xff));
  put(out, address.data(), address.size());
  return out;
}

std::array<uint8_t, 64> spec_sign(const key32& hash, const local_credentials& signer) {
  std::array<uint8_t, 64> sig;
  crypto_sign_detached(sig.data(), nullptr, hash.data(), hash.size(), signer.secret_key.data());
  return sig;
}

key32 spec_h2(const bytes& msg1, const bytes& msg2_unsigned) {
  bytes input;
  put(input, "cmesh-handshake-v1", 18);
  put(input, msg1.data(), msg1.size());
  put(input, msg2_unsigned.data(), msg2_unsigned.size());
  return spec_hash(input);
}

key32 spec_h3(const key32& h2, const uint8_t* sig2, const bytes& msg3_unsigned) {
  bytes input;
  put(input, h2.data(), 32);
  put(input, sig2, 64);
  put(input, msg3_unsigned.data(), msg3_unsigned.size());
  return spec_hash(input);
}

// msg2 as a (possibly malicious) responder would build it, with any ephemeral public key.
bytes spec_msg2(const local_credentials& responder, const key32& ephemeral_public,
                const bytes& msg1, std::string_view address) {
  bytes msg2;
  put(msg2, ephemeral_public.data(), 32);
  const bytes identity = spec_identity(responder, address);
  put(msg2, identity.data(), identity.size());
  const auto sig = spec_sign(spec_h2(msg1, msg2), responder);
  put(msg2, sig.data(), sig.size());
  return msg2;
}

// msg3 as a (possibly malicious) initiator would build it after msg1 and msg2.
bytes spec_msg3(const local_credentials& initiator, const bytes& msg1, const bytes& msg2,
                std::string_view address) {
  const bytes msg2_unsigned(msg2.begin(), msg2.end() - 64);
  bytes msg3 = spec_identity(initiator, address);
  const auto sig = spec_sign(spec_h3(spec_h2(msg1, msg2_unsigned), msg2.data() + msg2.size() - 64, msg3),
                             initiator);
  put(msg3, sig.data(), sig.size());
  return msg3;
}

key32 ephemeral_public(uint8_t eph) {
  key32 pub;
  const key32 secret = ephemeral(eph);
  crypto_scalarmult_base(pub.data(), secret.data());
  return pub;
}

bytes spec_msg1(const key32& ephemeral_public) {
  bytes msg1 = {'C', 'M', 'S', 'H', 1};
  put(msg1, ephemeral_public.data(), 32);
  return msg1;
}

}  // namespace

TEST_CASE("handshake: initiator and responder agree on keys and learn each other") {
  auto initiator = make_initiator(alice, 0x11);
  auto responder = make_responder(bob, 0x22);
  run(initiator, responder);
  REQUIRE(initiator.done());
  REQUIRE(responder.done());
  const auto& i = initiator.outcome();
  const auto& r = responder.outcome();
  CHECK(i.peer == bob.public_key);
  CHECK(i.peer_address == bob.listen_address);
  CHECK(r.peer == alice.public_key);
  CHECK(r.peer_address == alice.listen_address);
  CHECK(i.keys.send_key == r.keys.receive_key);
  CHECK(i.keys.receive_key == r.keys.send_key);
  CHECK(i.keys.send_key != i.keys.receive_key);
  CHECK_FALSE(sodium_is_zero(i.keys.send_key.data(), 32));

  // Fresh ephemerals give fresh keys (forward secrecy needs new keys per connection).
  auto initiator2 = make_initiator(alice, 0x12);
  auto responder2 = make_responder(bob, 0x22);
  run(initiator2, responder2);
  CHECK(initiator2.outcome().keys.send_key != i.keys.send_key);
  CHECK(initiator2.outcome().keys.send_key == responder2.outcome().keys.receive_key);
}

TEST_CASE("handshake: wire layout and key derivation match docs/wire-protocol.md") {
  auto initiator = make_initiator(alice, 0x11);
  auto responder = make_responder(bob, 0x22);
  const transcript t = run(initiator, responder);

  CHECK(t.msg1 == spec_msg1(ephemeral_public(0x11)));
  REQUIRE(t.msg2.size() == 130 + bob.listen_address.size());
  REQUIRE(t.msg3.size() == 98 + alice.listen_address.size());
  // ed25519 signatures are deterministic, so msg2 and msg3 rebuild byte for byte.
  CHECK(t.msg2 == spec_msg2(bob, ephemeral_public(0x22), t.msg1, bob.listen_address));
  CHECK(t.msg3 == spec_msg3(alice, t.msg1, t.msg2, alice.listen_address));

  // Key schedule.
  const bytes msg2_unsigned(t.msg2.begin(), t.msg2.end() - 64);
  const bytes msg3_unsigned(t.msg3.begin(), t.msg3.end() - 64);
  const key32 h2 = spec_h2(t.msg1, msg2_unsigned);
  const key32 h3 = spec_h3(h2, t.msg2.data() + t.msg2.size() - 64, msg3_unsigned);
  bytes final_input;
  put(final_input, h3.data(), 32);
  put(final_input, t.msg3.data() + t.msg3.size() - 64, 64);
  const key32 final_hash = spec_hash(final_input);
  key32 shared;
  const key32 eph_i = ephemeral(0x11);
  REQUIRE(crypto_scalarmult(shared.data(), eph_i.data(), ephemeral_public(0x22).data()) == 0);
  auto derive = [&](std::string_view label) {
    bytes input;
    put(input, label.data(), label.size());
    put(input, final_hash.data(), 32);
    key32 out;
    crypto_generichash(out.data(), 32, input.data(), input.size(), shared.data(), shared.size());
    return out;
  };
  CHECK(initiator.outcome().keys.send_key == derive("cmesh-v1-i2r"));
  CHECK(initiator.outcome().keys.receive_key == derive("cmesh-v1-r2i"));
}

TEST_CASE("handshake: a pinned identity that matches is accepted") {
  auto initiator = make_initiator(alice, 0x11, bob.public_key);
  auto responder = make_responder(bob, 0x22, alice.public_key);
  run(initiator, responder);
  CHECK(initiator.done());
  CHECK(responder.done());
}

TEST_CASE("handshake: initiator refuses a responder other than the pinned identity") {
  auto initiator = make_initiator(alice, 0x11, carol.public_key);
  auto responder = make_responder(bob, 0x22);
  auto r2 = feed(responder, initiator.start());
  REQUIRE(r2.ok());
  auto r3 = feed(initiator, r2->reply);
  REQUIRE_FALSE(r3.ok());
  CHECK(r3.err().code == errc::identity_mismatch);
  CHECK(r3.err().message.find(carol.public_key.hex()) != std::string::npos);
  CHECK(r3.err().message.find(bob.public_key.hex()) != std::string::npos);
  CHECK(initiator.failed());
  CHECK_FALSE(initiator.done());
}

TEST_CASE("handshake: responder refuses an initiator other than the pinned identity") {
  auto initiator = make_initiator(alice, 0x11);
  auto responder = make_responder(bob, 0x22, carol.public_key);
  auto r2 = feed(responder, initiator.start());
  REQUIRE(r2.ok());
  auto r3 = feed(initiator, r2->reply);
  REQUIRE(r3.ok());
  auto r4 = feed(responder, r3->reply);
  REQUIRE_FALSE(r4.ok());
  CHECK(r4.err().code == errc::identity_mismatch);
  CHECK(r4.err().message.find(carol.public_key.hex()) != std::string::npos);
  CHECK(r4.err().message.find(alice.public_key.hex()) != std::string::npos);
  CHECK(responder.failed());
}

TEST_CASE("handshake: every byte of msg1 tampered makes the handshake fail") {
  auto reference_i = make_initiator(alice, 0x11);
  const bytes msg1 = reference_i.start();
  for (size_t pos = 0; pos < msg1.size(); ++pos) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      CAPTURE(pos);
      CAPTURE(mask);
      auto initiator = make_initiator(alice, 0x11);
      auto responder = make_responder(bob, 0x22);
      bytes tampered = initiator.start();
      tampered[pos] ^= mask;
      auto r2 = feed(responder, tampered);
      if (!r2.ok()) continue;  // bad magic, version or low-order point: refused at once
      auto r3 = feed(initiator, r2->reply);  // responder signed the wrong msg1
      REQUIRE_FALSE(r3.ok());
      CHECK(r3.err().code == errc::auth_failed);
    }
  }
}

TEST_CASE("handshake: every byte of msg2 tampered is refused") {
  auto reference_i = make_initiator(alice, 0x11);
  auto reference_r = make_responder(bob, 0x22);
  const transcript t = run(reference_i, reference_r);
  for (size_t pos = 0; pos < t.msg2.size(); ++pos) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      CAPTURE(pos);
      CAPTURE(mask);
      auto initiator = make_initiator(alice, 0x11);
      initiator.start();
      bytes tampered = t.msg2;
      tampered[pos] ^= mask;
      auto r3 = feed(initiator, tampered);
      REQUIRE_FALSE(r3.ok());
      CHECK(initiator.failed());
    }
  }
}

TEST_CASE("handshake: every byte of msg3 tampered is refused") {
  auto reference_i = make_initiator(alice, 0x11);
  auto reference_r = make_responder(bob, 0x22);
  const transcript t = run(reference_i, reference_r);
  for (size_t pos = 0; pos < t.msg3.size(); ++pos) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      CAPTURE(pos);
      CAPTURE(mask);
      auto responder = make_responder(bob, 0x22);
      REQUIRE(feed(responder, t.msg1).ok());
      bytes tampered = t.msg3;
      tampered[pos] ^= mask;
      auto r4 = feed(responder, tampered);
      REQUIRE_FALSE(r4.ok());
      CHECK(responder.failed());
    }
  }
}

TEST_CASE("handshake: truncated and extended messages are refused") {
  auto reference_i = make_initiator(alice, 0x11);
  auto reference_r = make_responder(bob, 0x22);
  const transcript t = run(reference_i, reference_r);

  for (size_t size = 0; size <= t.msg1.size() + 1; ++size) {
    if (size == t.msg1.size()) continue;
    CAPTURE(size);
    bytes cut = t.msg1;
    cut.resize(size, 0);
    auto responder = make_responder(bob, 0x22);
    auto r = feed(responder, cut);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == (size < t.msg1.size() ? errc::truncated : errc::malformed));
  }
  for (size_t size = 0; size <= t.msg2.size() + 1; ++size) {
    if (size == t.msg2.size()) continue;
    CAPTURE(size);
    bytes cut = t.msg2;
    cut.resize(size, 0);
    auto initiator = make_initiator(alice, 0x11);
    initiator.start();
    auto r = feed(initiator, cut);
    REQUIRE_FALSE(r.ok());
    if (size > t.msg2.size()) CHECK(r.err().code == errc::malformed);
  }
  for (size_t size = 0; size <= t.msg3.size() + 1; ++size) {
    if (size == t.msg3.size()) continue;
    CAPTURE(size);
    bytes cut = t.msg3;
    cut.resize(size, 0);
    auto responder = make_responder(bob, 0x22);
    REQUIRE(feed(responder, t.msg1).ok());
    auto r = feed(responder, cut);
    REQUIRE_FALSE(r.ok());
    if (size > t.msg3.size()) CHECK(r.err().code == errc::malformed);
  }
}

TEST_CASE("handshake: msg3 replayed from an earlier handshake is refused") {
  auto old_i = make_initiator(alice, 0x11);
  auto old_r = make_responder(bob, 0x22);
  const transcript old = run(old_i, old_r);

  // The attacker replays the recorded msg1 and msg3 to a fresh responder (new ephemeral).
  auto responder = make_responder(bob, 0x23);
  auto r2 = feed(responder, old.msg1);
  REQUIRE(r2.ok());
  CHECK(r2->reply != old.msg2);
  auto r4 = feed(responder, old.msg3);
  REQUIRE_FALSE(r4.ok());
  CHECK(r4.err().code == errc::auth_failed);
  CHECK_FALSE(responder.done());
}

TEST_CASE("handshake: msg2 replayed from an earlier handshake is refused") {
  auto old_i = make_initiator(alice, 0x11);
  auto old_r = make_responder(bob, 0x22);
  const transcript old = run(old_i, old_r);

  auto initiator = make_initiator(alice, 0x12);  // new ephemeral, so a new msg1
  initiator.start();
  auto r3 = feed(initiator, old.msg2);
  REQUIRE_FALSE(r3.ok());
  CHECK(r3.err().code == errc::auth_failed);
}

TEST_CASE("handshake: connecting to ourselves is refused") {
  SUBCASE("the initiator notices in msg2") {
    auto initiator = make_initiator(alice, 0x11);
    auto responder = make_responder(alice, 0x22);
    auto r2 = feed(responder, initiator.start());
    REQUIRE(r2.ok());
    auto r3 = feed(initiator, r2->reply);
    REQUIRE_FALSE(r3.ok());
    CHECK(r3.err().code == errc::auth_failed);
    CHECK(r3.err().message.find("ourselves") != std::string::npos);
  }
  SUBCASE("the responder notices in msg3") {
    auto responder = make_responder(alice, 0x22);
    const bytes msg1 = spec_msg1(ephemeral_public(0x11));
    auto r2 = feed(responder, msg1);
    REQUIRE(r2.ok());
    auto r4 = feed(responder, spec_msg3(alice, msg1, r2->reply, "127.0.0.1:9"));
    REQUIRE_FALSE(r4.ok());
    CHECK(r4.err().code == errc::auth_failed);
    CHECK(r4.err().message.find("ourselves") != std::string::npos);
  }
}

TEST_CASE("handshake: low-order ephemeral keys are refused") {
  const key32 zero{};
  SUBCASE("in msg1") {
    auto responder = make_responder(bob, 0x22);
    auto r = feed(responder, spec_msg1(zero));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::auth_failed);
  }
  SUBCASE("in a validly signed msg2") {
    auto initiator = make_initiator(alice, 0x11);
    const bytes msg1 = initiator.start();
    auto r = feed(initiator, spec_msg2(bob, zero, msg1, "x:1"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::auth_failed);
  }
}

TEST_CASE("handshake: bad magic and unknown versions are refused") {
  bytes msg1 = spec_msg1(ephemeral_public(0x11));
  SUBCASE("magic") {
    msg1[0] = 'X';
    auto responder = make_responder(bob, 0x22);
    auto r = feed(responder, msg1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::malformed);
  }
  SUBCASE("version") {
    msg1[4] = 2;
    auto responder = make_responder(bob, 0x22);
    auto r = feed(responder, msg1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::unsupported_version);
  }
}

TEST_CASE("handshake: addresses are bounded and printable") {
  SUBCASE("the longest address works end to end") {
    auto long_bob = bob;
    long_bob.listen_address = std::string(limits::address_chars_max, 'a');
    auto initiator = make_initiator(alice, 0x11);
    auto responder = make_responder(long_bob, 0x22);
    const transcript t = run(initiator, responder);
    CHECK(t.msg2.size() == 130 + limits::address_chars_max);
    CHECK(initiator.outcome().peer_address == long_bob.listen_address);
  }
  SUBCASE("an empty address is allowed") {
    auto quiet_alice = alice;
    quiet_alice.listen_address.clear();
    auto initiator = make_initiator(quiet_alice, 0x11);
    auto responder = make_responder(bob, 0x22);
    run(initiator, responder);
    CHECK(responder.outcome().peer_address.empty());
  }
  SUBCASE("our own address over the limit is refused") {
    auto long_bob = bob;
    long_bob.listen_address = std::string(limits::address_chars_max + 1, 'a');
    auto responder = make_responder(long_bob, 0x22);
    auto r = feed(responder, spec_msg1(ephemeral_public(0x11)));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::invalid_argument);
  }
  SUBCASE("a signed peer address with control characters is refused") {
    auto initiator = make_initiator(alice, 0x11);
    const bytes msg1 = initiator.start();
    auto r = feed(initiator, spec_msg2(bob, ephemeral_public(0x22), msg1, "evil\nlog line"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::malformed);
  }
  SUBCASE("a peer address length over the limit is refused") {
    auto initiator = make_initiator(alice, 0x11);
    const bytes msg1 = initiator.start();
    const std::string long_address(limits::address_chars_max + 1, 'a');
    auto r = feed(initiator, spec_msg2(bob, ephemeral_public(0x22), msg1, long_address));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::malformed);
  }
}

TEST_CASE("handshake: calls out of order and oversized messages are refused") {
  auto initiator = make_initiator(alice, 0x11);
  auto responder = make_responder(bob, 0x22);
  const bytes early = {1, 2, 3};
  auto before_start = feed(initiator, early);
  REQUIRE_FALSE(before_start.ok());
  CHECK(before_start.err().code == errc::invalid_argument);
  CHECK_FALSE(initiator.failed());  // the caller's mistake, not the peer's

  const transcript t = run(initiator, responder);
  auto after_done = feed(responder, t.msg3);
  REQUIRE_FALSE(after_done.ok());
  CHECK(responder.done());  // the outcome stays valid

  auto victim = make_responder(bob, 0x22);
  const bytes huge(limits::handshake_message_bytes_max + 1, 0);
  auto too_big = feed(victim, huge);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.err().code == errc::too_large);
  auto after_failure = feed(victim, t.msg1);
  REQUIRE_FALSE(after_failure.ok());
  CHECK(after_failure.err().code == errc::closed);
}

TEST_CASE("handshake: random garbage never crashes a responder") {
  rng random(20240611);
  const bytes good_msg1 = spec_msg1(ephemeral_public(0x11));
  auto random_bytes = [&](size_t size) {
    bytes out(size);
    for (auto& b : out) b = static_cast<uint8_t>(random.next());
    return out;
  };
  // Sizes near the valid ones reach deeper into the parsers.
  auto random_size = [&] {
    switch (random.below(4)) {
      case 0: return static_cast<size_t>(random.below(limits::handshake_message_bytes_max + 64));
      case 1: return static_cast<size_t>(35 + random.below(5));
      default: return static_cast<size_t>(96 + random.below(270));
    }
  };
  for (int round = 0; round < 3000; ++round) {
    auto responder = make_responder(bob, 0x22);
    bytes garbage = random_bytes(random_size());
    if (round % 2 == 1) {
      // Valid msg1, then garbage as msg3; sometimes with a plausible address length.
      REQUIRE(feed(responder, good_msg1).ok());
      if (garbage.size() >= 34 && random.chance(0.5)) {
        const size_t address = garbage.size() >= 98 ? garbage.size() - 98 : 0;
        garbage[32] = static_cast<uint8_t>(address >> 8);
        garbage[33] = static_cast<uint8_t>(address & 0xff);
      }
    } else if (garbage.size() >= 5 && random.chance(0.5)) {
      std::memcpy(garbage.data(), "CMSH\x01", 5);  // get past the magic and version checks
    }
    auto r = feed(responder, garbage);
    CHECK_FALSE(responder.done());
    if (round % 2 == 1) CHECK_FALSE(r.ok());
  }
}
