#include "runtime/crypto/secure_channel.hpp"

#include <cassert>
#include <string>
#include <utility>

#include <sodium.h>

namespace cmesh {

namespace {

namespace wire = channel_wire;
static_assert(wire::tag_bytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(wire::nonce_bytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32);

using nonce = std::array<uint8_t, wire::nonce_bytes>;
using length_prefix = std::array<uint8_t, wire::length_prefix_bytes>;

nonce nonce_for(uint64_t counter) {
  nonce n{};
  for (size_t i = 0; i < 8; ++i) n[i] = static_cast<uint8_t>(counter >> (8 * i));
  return n;
}

length_prefix encode_length(size_t size) {
  assert(size <= UINT32_MAX);
  const auto value = static_cast<uint32_t>(size);
  return {static_cast<uint8_t>(value >> 24), static_cast<uint8_t>(value >> 16),
          static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)};
}

uint32_t decode_length(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

// ---- secure_channel ---------------------------------------------------------------------------

secure_channel::secure_channel(const handshake_keys& keys) : secure_channel(keys, 0, 0) {}

secure_channel::secure_channel(const handshake_keys& keys, uint64_t first_send_counter,
                               uint64_t first_receive_counter)
    : send_key_(keys.send_key),
      receive_key_(keys.receive_key),
      send_counter_(first_send_counter),
      receive_counter_(first_receive_counter) {
  const int rc = sodium_init();  // idempotent and thread-safe
  assert(rc >= 0 && "libsodium failed to initialise");
  (void)rc;
}

secure_channel::~secure_channel() { wipe(); }

secure_channel::secure_channel(secure_channel&& other) noexcept
    : send_key_(other.send_key_),
      receive_key_(other.receive_key_),
      send_counter_(other.send_counter_),
      receive_counter_(other.receive_counter_),
      poisoned_(other.poisoned_),
      send_closed_(other.send_closed_) {
  other.wipe();
}

secure_channel& secure_channel::operator=(secure_channel&& other) noexcept {
  if (this != &other) {
    send_key_ = other.send_key_;
    receive_key_ = other.receive_key_;
    send_counter_ = other.send_counter_;
    receive_counter_ = other.receive_counter_;
    poisoned_ = other.poisoned_;
    send_closed_ = other.send_closed_;
    other.wipe();
  }
  return *this;
}

// Leaves the object unable to seal or open: a moved-from or destroyed channel must never
// reuse a nonce with a key someone else now holds.
void secure_channel::wipe() {
  sodium_memzero(send_key_.data(), send_key_.size());
  sodium_memzero(receive_key_.data(), receive_key_.size());
  poisoned_ = true;
  send_closed_ = true;
}

result<bytes> secure_channel::seal(const uint8_t* plaintext, size_t size) {
  if (send_closed_) return error{errc::closed, "channel was moved from"};
  if (size > limits::envelope_bytes_max)
    return error{errc::too_large, "frame plaintext of " + std::to_string(size) +
                                      " bytes exceeds limits::envelope_bytes_max (" +
                                      std::to_string(limits::envelope_bytes_max) + ")"};
  if (send_counter_ > wire::counter_last)
    return error{errc::closed, "send counter exhausted: the connection must be re-established"};
  const size_t body_size = size + wire::tag_bytes;
  const length_prefix ad = encode_length(body_size);
  const nonce n = nonce_for(send_counter_);
  static const uint8_t empty = 0;  // libsodium wants a valid pointer even for no bytes
  bytes body(body_size);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(body.data(), &written, size > 0 ? plaintext : &empty,
                                             size, ad.data(), ad.size(), nullptr, n.data(),
                                             send_key_.data());
  assert(written == body_size);
  ++send_counter_;
  return body;
}

result<bytes> secure_channel::open(const uint8_t* frame_body, size_t size) {
  if (poisoned_)
    return error{errc::auth_failed, "channel is closed after an earlier failed frame"};
  const uint64_t counter = receive_counter_;
  const auto refuse = [&] {
    poisoned_ = true;
    return error{errc::auth_failed, "frame " + std::to_string(counter) +
                                        " failed authentication: tampered, replayed or reordered"};
  };
  if (size < wire::tag_bytes || size > limits::frame_bytes_max || counter > wire::counter_last)
    return refuse();
  const length_prefix ad = encode_length(size);
  const nonce n = nonce_for(counter);
  bytes plaintext(size - wire::tag_bytes);
  uint8_t scratch = 0;  // valid destination when the plaintext is empty
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plaintext.empty() ? &scratch : plaintext.data(),
                                                 &written, nullptr, frame_body, size, ad.data(),
                                                 ad.size(), n.data(), receive_key_.data()) != 0)
    return refuse();
  assert(written == plaintext.size());
  ++receive_counter_;
  return plaintext;
}

// ---- framing ----------------------------------------------------------------------------------

bytes frame_with_length(const bytes& body) {
  const length_prefix prefix = encode_length(body.size());
  bytes frame;
  frame.reserve(prefix.size() + body.size());
  frame.insert(frame.end(), prefix.begin(), prefix.end());
  frame.insert(frame.end(), body.begin(), body.end());
  return frame;
}

frame_reader::frame_reader(size_t body_bytes_max) : body_bytes_max_(body_bytes_max) {}

status frame_reader::check_front() {
  if (failure_) return failure_;
  if (buffered_bytes() < wire::length_prefix_bytes) return ok_status();
  const uint32_t length = decode_length(buffer_.data() + read_offset_);
  if (length > body_bytes_max_) {
    failure_ = {errc::too_large, "frame length " + std::to_string(length) + " exceeds the limit of " +
                                     std::to_string(body_bytes_max_) + " bytes"};
    bytes().swap(buffer_);  // release the memory: nothing more will be read
    read_offset_ = 0;
  }
  return failure_;
}

status frame_reader::push(const uint8_t* data, size_t size) {
  if (failure_) return failure_;
  if (read_offset_ > 0) {  // drop consumed bytes before growing
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(read_offset_));
    read_offset_ = 0;
  }
  if (size > 0) buffer_.insert(buffer_.end(), data, data + size);
  return check_front();
}

std::optional<bytes> frame_reader::next() {
  if (check_front()) return std::nullopt;
  if (buffered_bytes() < wire::length_prefix_bytes) return std::nullopt;
  const size_t length = decode_length(buffer_.data() + read_offset_);
  if (buffered_bytes() < wire::length_prefix_bytes + length) return std::nullopt;
  const auto begin = buffer_.begin() + static_cast<std::ptrdiff_t>(read_offset_ + wire::length_prefix_bytes);
  bytes body(begin, begin + static_cast<std::ptrdiff_t>(length));
  read_offset_ += wire::length_prefix_bytes + length;
  if (read_offset_ == buffer_.size()) {
    buffer_.clear();
    read_offset_ = 0;
  }
  return body;
}

}  // namespace cmesh
