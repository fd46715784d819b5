// Authenticated encryption of the frames of one connection, and the length-prefix framing
// (spec: docs/wire-protocol.md, "Frames").
//
// Wire form of every frame: u32 big-endian body length | body.
//   - Handshake messages travel as plain bodies (at most limits::handshake_message_bytes_max).
//   - After the handshake each body is XChaCha20-Poly1305-IETF ciphertext || 16-byte tag, under
//     the direction's key, nonce = u64 little-endian frame counter || 16 zero bytes, associated
//     data = the frame's own 4-byte length prefix.
//
// secure_channel contract:
//  - Counters are implicit: frame n of a direction uses counter n, starting at 0. The receiver
//    only ever accepts the next counter, so a tampered, replayed, reordered, dropped or
//    reflected frame fails authentication.
//  - The first failed open() poisons the channel: every later open() fails too, and the
//    transport must close the connection. seal() is unaffected.
//  - Counters never wrap: past channel_wire::counter_last seal()/open() fail (the connection
//    must be re-established long before, 2^64 frames cannot happen in practice).
//  - Move-only; a moved-from channel is poisoned and cannot seal. Keys are wiped on destruction.
//  - Not thread-safe; one object per connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/crypto/handshake.hpp"

namespace cmesh {

namespace channel_wire {
inline constexpr size_t length_prefix_bytes = 4;  // u32 big-endian body length
inline constexpr size_t tag_bytes = 16;           // Poly1305 tag appended to each body
inline constexpr size_t nonce_bytes = 24;         // u64 LE counter then 16 zero bytes
// The last counter value ever used in a direction; UINT64_MAX itself is never used.
inline constexpr uint64_t counter_last = UINT64_MAX - 1;
static_assert(limits::envelope_bytes_max + tag_bytes <= limits::frame_bytes_max,
              "a sealed envelope must fit a frame");
static_assert(limits::frame_bytes_max <= UINT32_MAX, "frame length travels as a u32");
}  // namespace channel_wire

class secure_channel {
 public:
  explicit secure_channel(const handshake_keys& keys);
  // Starts the counters elsewhere than 0. For tests of counter exhaustion only: both ends of a
  // real connection start at 0.
  secure_channel(const handshake_keys& keys, uint64_t first_send_counter,
                 uint64_t first_receive_counter);
  ~secure_channel();
  secure_channel(const secure_channel&) = delete;  // a copy would reuse nonces
  secure_channel& operator=(const secure_channel&) = delete;
  secure_channel(secure_channel&& other) noexcept;
  secure_channel& operator=(secure_channel&& other) noexcept;

  // Encrypts one plaintext (an encoded envelope) into a frame BODY; the caller prepends the
  // length prefix (frame_with_length). Errors: too_large if size > limits::envelope_bytes_max;
  // closed if the send counter is exhausted or the channel was moved from.
  result<bytes> seal(const uint8_t* plaintext, size_t size);

  // Authenticates and decrypts one frame BODY with the next expected receive counter.
  // Errors: auth_failed for any failure ("frame 12 failed authentication: tampered, replayed or
  // reordered"), after which the channel is poisoned.
  result<bytes> open(const uint8_t* frame_body, size_t size);

  // Next counter of each direction (= frames sealed / opened, when starting from 0).
  uint64_t frames_sent() const { return send_counter_; }
  uint64_t frames_received() const { return receive_counter_; }
  bool poisoned() const { return poisoned_; }

 private:
  void wipe();

  std::array<uint8_t, 32> send_key_{};
  std::array<uint8_t, 32> receive_key_{};
  uint64_t send_counter_ = 0;
  uint64_t receive_counter_ = 0;
  bool poisoned_ = false;
  bool send_closed_ = false;
};

// Prepends the 4-byte big-endian length of `body`. Asserts body.size() <= UINT32_MAX.
bytes frame_with_length(const bytes& body);

// Incremental frame reader for a byte stream: push bytes as they arrive, pop complete bodies.
//
// Contract:
//  - A length over the current body limit fails the reader with errc::too_large; it stays failed
//    (push() returns that error again, next() returns nothing) and the connection must close.
//  - A length is checked when its frame reaches the front of the buffer: in push() and in
//    next(). So the limit may be raised between two next() calls (handshake limit first, then
//    limits::frame_bytes_max) even when the bytes of both phases arrived in one push. After
//    draining with next(), check failed(): an over-limit length found by next() is reported there.
//  - Bytes are buffered until popped: drain with next() after every push().
//  - Zero-length bodies are returned as empty bodies (the consumer decides whether they are valid).
class frame_reader {
 public:
  explicit frame_reader(size_t body_bytes_max);

  status push(const uint8_t* data, size_t size);
  std::optional<bytes> next();

  void set_body_bytes_max(size_t body_bytes_max) { body_bytes_max_ = body_bytes_max; }
  size_t body_bytes_max() const { return body_bytes_max_; }
  bool failed() const { return static_cast<bool>(failure_); }
  const status& failure() const { return failure_; }
  size_t buffered_bytes() const { return buffer_.size() - read_offset_; }

 private:
  status check_front();

  bytes buffer_;
  size_t read_offset_ = 0;  // start of the first unconsumed byte in buffer_
  size_t body_bytes_max_;
  status failure_;
};

}  // namespace cmesh
