// Mutually authenticated key agreement for one connection (spec: docs/wire-protocol.md).
//
// Three messages, SIGMA-style, on both nodes' ed25519 identities and fresh X25519 ephemerals:
//   msg1  initiator -> responder  "CMSH" | version | initiator ephemeral
//   msg2  responder -> initiator  responder ephemeral | responder key | address | signature(H2)
//   msg3  initiator -> responder  initiator key | address | signature(H3)
// Both sides then hold two 32-byte keys (one per direction) for secure_channel.
//
// Contract:
//  - Pure and deterministic: no sockets, no clock, no randomness. The caller supplies the
//    32-byte X25519 ephemeral secret (randombytes_buf in real mode, fixed bytes in tests) and
//    must never reuse it for another handshake.
//  - Messages are fed whole (the transport frames them, see secure_channel.hpp). Input is
//    hostile: any byte sequence yields either progress or an error, never a crash or a throw.
//  - The first error caused by a message is final: the machine enters the failed state, wipes
//    its secrets, and every later on_message() fails with errc::closed. The transport then closes
//    the connection. (A call out of order, before start() or after done(), only returns
//    invalid_argument and changes nothing.)
//  - Errors: too_large (message over limits::handshake_message_bytes_max), truncated, malformed,
//    unsupported_version, auth_failed (bad signature, low-order ephemeral, talking to ourselves),
//    identity_mismatch (peer is not the pinned identity; the message names both in hex),
//    invalid_argument (our own listen address is not a valid address, or a call out of order).
//  - Not thread-safe; one object per connection attempt.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"

namespace cmesh {

// Byte layout of the handshake messages. Fixed by the protocol version, not tunable.
namespace handshake_wire {
inline constexpr uint8_t magic[4] = {'C', 'M', 'S', 'H'};
inline constexpr size_t magic_bytes = 4;
inline constexpr uint8_t version = 1;
inline constexpr size_t key_bytes = 32;        // X25519 and ed25519 public keys alike
inline constexpr size_t signature_bytes = 64;  // ed25519 detached signature
inline constexpr size_t address_length_bytes = 2;  // u16 big-endian
inline constexpr size_t msg1_bytes = magic_bytes + 1 + key_bytes;  // 37
// Static key + address length + signature; msg2 adds the responder ephemeral in front.
inline constexpr size_t identity_block_fixed_bytes =
    key_bytes + address_length_bytes + signature_bytes;                    // 98
inline constexpr size_t msg2_fixed_bytes = key_bytes + identity_block_fixed_bytes;  // 130
inline constexpr size_t msg3_fixed_bytes = identity_block_fixed_bytes;            // 98
static_assert(limits::address_chars_max <= 0xffff, "address length travels as a u16");
static_assert(msg2_fixed_bytes + limits::address_chars_max <= limits::handshake_message_bytes_max,
              "the largest msg2 must fit the handshake message limit");
}  // namespace handshake_wire

struct handshake_keys {
  std::array<uint8_t, 32> send_key{};
  std::array<uint8_t, 32> receive_key{};
};

struct handshake_result {
  node_id peer;              // authenticated: the peer proved it holds this key
  std::string peer_address;  // the peer's advertised listen address (signed, may be empty)
  handshake_keys keys;
};

struct local_credentials {
  node_id public_key;
  std::array<uint8_t, 64> secret_key{};  // libsodium ed25519 secret key (seed || public key)
  std::string listen_address;            // advertised to the peer; may be empty (dial-only node)
};

class handshake {
 public:
  enum class role { initiator, responder };

  struct step_output {
    bytes reply;  // send this to the peer if non-empty
    bool done = false;
  };

  // expected_peer: pinned identity; std::nullopt = accept any authenticated peer.
  // Asserts that self.secret_key belongs to self.public_key (a programmer error otherwise).
  handshake(role r, local_credentials self, const std::array<uint8_t, 32>& ephemeral_secret,
            std::optional<node_id> expected_peer);
  ~handshake();
  handshake(const handshake&) = delete;
  handshake& operator=(const handshake&) = delete;
  handshake(handshake&&) = default;
  handshake& operator=(handshake&&) = default;

  // Initiator only, exactly once, before any on_message(): returns msg1.
  bytes start();

  // Feeds the next handshake message from the peer (msg2 to an initiator; msg1 then msg3 to a
  // responder). On success `reply` holds the next message to send (msg2 or msg3; empty after
  // msg3) and `done` tells whether outcome() is now valid.
  result<step_output> on_message(const uint8_t* data, size_t size);

  bool done() const { return stage_ == stage::done; }
  bool failed() const { return stage_ == stage::failed; }
  const handshake_result& outcome() const;  // valid when done()

 private:
  enum class stage { initiator_idle, initiator_sent_msg1, responder_wait_msg1,
                     responder_wait_msg3, done, failed };

  result<step_output> on_msg1(const uint8_t* data, size_t size);
  result<step_output> on_msg2(const uint8_t* data, size_t size);
  result<step_output> on_msg3(const uint8_t* data, size_t size);
  status check_peer(const node_id& peer) const;
  status check_own_address() const;
  error fail(error err);
  void wipe_secrets();

  role role_;
  stage stage_;
  local_credentials self_;
  std::optional<node_id> expected_peer_;
  std::array<uint8_t, 32> ephemeral_secret_{};
  std::array<uint8_t, 32> ephemeral_public_{};
  std::array<uint8_t, 32> shared_secret_{};   // responder: computed on msg1
  std::array<uint8_t, handshake_wire::msg1_bytes> msg1_{};  // sent or received
  std::array<uint8_t, 32> h2_{};              // responder: transcript hash H2
  std::array<uint8_t, 64> signature2_{};      // responder: its signature over H2
  handshake_result outcome_;
};

}  // namespace cmesh
