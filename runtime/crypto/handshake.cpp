#include "runtime/crypto/handshake.hpp"

#include <cassert>
#include <cstring>
#include <string_view>
#include <utility>

#include <sodium.h>

namespace cmesh {

namespace {

using key32 = std::array<uint8_t, 32>;
using signature64 = std::array<uint8_t, 64>;
namespace wire = handshake_wire;

// Domain-separation labels (ASCII, no terminating NUL on the wire or in the hash).
constexpr std::string_view transcript_label = "cmesh-handshake-v1";
constexpr std::string_view i2r_label = "cmesh-v1-i2r";
constexpr std::string_view r2i_label = "cmesh-v1-r2i";

void ensure_sodium() {
  const int rc = sodium_init();  // idempotent and thread-safe; 1 = already initialised
  assert(rc >= 0 && "libsodium failed to initialise");
  (void)rc;
}

// BLAKE2b-256 over a sequence of parts, optionally keyed. Wipes its state on destruction.
class hasher {
 public:
  hasher() { crypto_generichash_init(&state_, nullptr, 0, 32); }
  explicit hasher(const key32& key) { crypto_generichash_init(&state_, key.data(), key.size(), 32); }
  ~hasher() { sodium_memzero(&state_, sizeof state_); }
  hasher(const hasher&) = delete;
  hasher& operator=(const hasher&) = delete;

  hasher& add(const uint8_t* data, size_t size) {
    if (size > 0) crypto_generichash_update(&state_, data, size);
    return *this;
  }
  hasher& add(std::string_view text) {
    return add(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  template <size_t N>
  hasher& add(const std::array<uint8_t, N>& data) { return add(data.data(), N); }

  key32 finish() {
    key32 out;
    crypto_generichash_final(&state_, out.data(), out.size());
    return out;
  }

 private:
  crypto_generichash_state state_;
};

void append(bytes& out, const uint8_t* data, size_t size) { out.insert(out.end(), data, data + size); }

uint16_t read_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// Printable ASCII without space: safe to log, covers host:port, [v6]:port and sim:N.
bool address_is_printable(std::string_view address) {
  for (char c : address) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x21 || byte > 0x7e) return false;
  }
  return true;
}

// The part of msg2 after the ephemeral, and all of msg3:
//   static key (32) | address length (u16 BE) | address | signature (64)
struct identity_block {
  node_id key;
  std::string address;
  signature64 signature{};
};

result<identity_block> parse_identity_block(const uint8_t* data, size_t size, const char* name) {
  if (size < wire::identity_block_fixed_bytes)
    return error{errc::truncated, std::string(name) + " ends before its fixed fields"};
  const size_t length = read_be16(data + wire::key_bytes);
  if (length > limits::address_chars_max)
    return error{errc::malformed, std::string(name) + " address length " + std::to_string(length) +
                                      " exceeds limits::address_chars_max (" +
                                      std::to_string(limits::address_chars_max) + ")"};
  const size_t expected = wire::identity_block_fixed_bytes + length;
  if (size < expected)
    return error{errc::truncated, std::string(name) + " ends inside its address or signature"};
  if (size > expected)
    return error{errc::malformed, std::string(name) + " has " + std::to_string(size - expected) +
                                      " trailing bytes"};
  identity_block block;
  block.key = node_id::from_bytes(data);
  const auto* address = data + wire::key_bytes + wire::address_length_bytes;
  block.address.assign(reinterpret_cast<const char*>(address), length);
  if (!address_is_printable(block.address))
    return error{errc::malformed, std::string(name) + " address is not printable ASCII"};
  std::memcpy(block.signature.data(), address + length, wire::signature_bytes);
  return block;
}

// static key | u16 BE address length | address (the signed part of an identity block).
void append_identity(bytes& out, const node_id& key, const std::string& address) {
  append(out, key.key.data(), key.key.size());
  out.push_back(static_cast<uint8_t>(address.size() >> 8));
  out.push_back(static_cast<uint8_t>(address.size() & 0xff));
  append(out, reinterpret_cast<const uint8_t*>(address.data()), address.size());
}

signature64 sign(const key32& message, const std::array<uint8_t, 64>& secret_key) {
  signature64 signature;
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                       secret_key.data());
  return signature;
}

bool signature_valid(const signature64& signature, const key32& message, const node_id& signer) {
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     signer.key.data()) == 0;
}

// X25519; false if the peer's point is of low order (the shared secret would be all zero).
bool agree(key32& shared, const key32& own_secret, const uint8_t* peer_public) {
  if (crypto_scalarmult(shared.data(), own_secret.data(), peer_public) != 0) return false;
  return sodium_is_zero(shared.data(), shared.size()) == 0;
}

handshake_keys derive_keys(const key32& shared, const key32& final_hash, handshake::role r) {
  const key32 i2r = hasher(shared).add(i2r_label).add(final_hash).finish();
  const key32 r2i = hasher(shared).add(r2i_label).add(final_hash).finish();
  if (r == handshake::role::initiator) return {i2r, r2i};
  return {r2i, i2r};
}

}  // namespace

handshake::handshake(role r, local_credentials self, const std::array<uint8_t, 32>& ephemeral_secret,
                     std::optional<node_id> expected_peer)
    : role_(r),
      stage_(r == role::initiator ? stage::initiator_idle : stage::responder_wait_msg1),
      self_(std::move(self)),
      expected_peer_(std::move(expected_peer)),
      ephemeral_secret_(ephemeral_secret) {
  ensure_sodium();
  // libsodium's ed25519 secret key is seed || public key.
  assert(std::memcmp(self_.secret_key.data() + 32, self_.public_key.key.data(), 32) == 0 &&
         "secret key does not belong to the public key");
  crypto_scalarmult_base(ephemeral_public_.data(), ephemeral_secret_.data());
}

handshake::~handshake() {
  wipe_secrets();
  sodium_memzero(self_.secret_key.data(), self_.secret_key.size());
  sodium_memzero(outcome_.keys.send_key.data(), outcome_.keys.send_key.size());
  sodium_memzero(outcome_.keys.receive_key.data(), outcome_.keys.receive_key.size());
}

void handshake::wipe_secrets() {
  sodium_memzero(ephemeral_secret_.data(), ephemeral_secret_.size());
  sodium_memzero(shared_secret_.data(), shared_secret_.size());
}

error handshake::fail(error err) {
  stage_ = stage::failed;
  wipe_secrets();
  return err;
}

const handshake_result& handshake::outcome() const {
  assert(done());
  return outcome_;
}

bytes handshake::start() {
  assert(role_ == role::initiator && stage_ == stage::initiator_idle);
  std::memcpy(msg1_.data(), wire::magic, wire::magic_bytes);
  msg1_[wire::magic_bytes] = wire::version;
  std::memcpy(msg1_.data() + wire::magic_bytes + 1, ephemeral_public_.data(), wire::key_bytes);
  stage_ = stage::initiator_sent_msg1;
  return bytes(msg1_.begin(), msg1_.end());
}

result<handshake::step_output> handshake::on_message(const uint8_t* data, size_t size) {
  switch (stage_) {
    case stage::done:
      return error{errc::invalid_argument, "handshake message after the handshake completed"};
    case stage::failed:
      return error{errc::closed, "handshake message after the handshake failed"};
    case stage::initiator_idle:
      return error{errc::invalid_argument, "handshake message before start()"};
    default:
      break;
  }
  if (size > limits::handshake_message_bytes_max)
    return fail({errc::too_large, "handshake message of " + std::to_string(size) +
                                      " bytes exceeds limits::handshake_message_bytes_max (" +
                                      std::to_string(limits::handshake_message_bytes_max) + ")"});
  if (stage_ == stage::responder_wait_msg1) return on_msg1(data, size);
  if (stage_ == stage::initiator_sent_msg1) return on_msg2(data, size);
  return on_msg3(data, size);
}

status handshake::check_peer(const node_id& peer) const {
  if (peer == self_.public_key)
    return {errc::auth_failed, "peer authenticated as our own identity " + peer.short_name() +
                                   ": refusing to talk to ourselves"};
  if (expected_peer_ && peer != *expected_peer_)
    return {errc::identity_mismatch,
            "expected peer " + expected_peer_->hex() + " but it authenticated as " + peer.hex()};
  return ok_status();
}

status handshake::check_own_address() const {
  if (self_.listen_address.size() > limits::address_chars_max ||
      !address_is_printable(self_.listen_address))
    return {errc::invalid_argument,
            "our own listen address is longer than limits::address_chars_max or not printable"};
  return ok_status();
}

// Responder: msg1 = "CMSH" | version | initiator ephemeral. Replies with msg2.
result<handshake::step_output> handshake::on_msg1(const uint8_t* data, size_t size) {
  if (size < wire::msg1_bytes)
    return fail({errc::truncated, "msg1 is " + std::to_string(size) + " bytes, expected " +
                                      std::to_string(wire::msg1_bytes)});
  if (size > wire::msg1_bytes)
    return fail({errc::malformed, "msg1 is " + std::to_string(size) + " bytes, expected " +
                                      std::to_string(wire::msg1_bytes)});
  if (std::memcmp(data, wire::magic, wire::magic_bytes) != 0)
    return fail({errc::malformed, "msg1 does not start with the CMSH magic: not a cmesh peer"});
  if (data[wire::magic_bytes] != wire::version)
    return fail({errc::unsupported_version,
                 "peer speaks handshake version " + std::to_string(data[wire::magic_bytes]) +
                     ", this node speaks " + std::to_string(wire::version)});
  if (auto st = check_own_address(); st) return fail(std::move(st));
  std::memcpy(msg1_.data(), data, wire::msg1_bytes);
  if (!agree(shared_secret_, ephemeral_secret_, data + wire::magic_bytes + 1))
    return fail({errc::auth_failed, "initiator ephemeral key is a low-order point"});

  bytes msg2;
  msg2.reserve(wire::msg2_fixed_bytes + self_.listen_address.size());
  append(msg2, ephemeral_public_.data(), ephemeral_public_.size());
  append_identity(msg2, self_.public_key, self_.listen_address);
  h2_ = hasher().add(transcript_label).add(msg1_).add(msg2.data(), msg2.size()).finish();
  signature2_ = sign(h2_, self_.secret_key);
  append(msg2, signature2_.data(), signature2_.size());
  stage_ = stage::responder_wait_msg3;
  return step_output{std::move(msg2), false};
}

// Initiator: msg2 = responder ephemeral | identity block. Replies with msg3 and completes.
result<handshake::step_output> handshake::on_msg2(const uint8_t* data, size_t size) {
  if (size < wire::key_bytes) return fail({errc::truncated, "msg2 ends inside its ephemeral key"});
  auto block = parse_identity_block(data + wire::key_bytes, size - wire::key_bytes, "msg2");
  if (!block) return fail(block.err());
  const key32 h2 = hasher()
                       .add(transcript_label)
                       .add(msg1_)
                       .add(data, size - wire::signature_bytes)
                       .finish();
  if (!signature_valid(block->signature, h2, block->key))
    return fail({errc::auth_failed,
                 "msg2 signature does not verify for claimed responder " + block->key.hex()});
  if (auto st = check_peer(block->key); st) return fail(std::move(st));
  if (auto st = check_own_address(); st) return fail(std::move(st));
  if (!agree(shared_secret_, ephemeral_secret_, data))
    return fail({errc::auth_failed, "responder ephemeral key is a low-order point"});

  bytes msg3;
  msg3.reserve(wire::msg3_fixed_bytes + self_.listen_address.size());
  append_identity(msg3, self_.public_key, self_.listen_address);
  const key32 h3 = hasher().add(h2).add(block->signature).add(msg3.data(), msg3.size()).finish();
  const signature64 signature3 = sign(h3, self_.secret_key);
  append(msg3, signature3.data(), signature3.size());
  const key32 final_hash = hasher().add(h3).add(signature3).finish();

  outcome_.peer = block->key;
  outcome_.peer_address = std::move(block->address);
  outcome_.keys = derive_keys(shared_secret_, final_hash, role_);
  wipe_secrets();
  stage_ = stage::done;
  return step_output{std::move(msg3), true};
}

// Responder: msg3 = identity block. Completes; nothing to send.
result<handshake::step_output> handshake::on_msg3(const uint8_t* data, size_t size) {
  auto block = parse_identity_block(data, size, "msg3");
  if (!block) return fail(block.err());
  const key32 h3 =
      hasher().add(h2_).add(signature2_).add(data, size - wire::signature_bytes).finish();
  if (!signature_valid(block->signature, h3, block->key))
    return fail({errc::auth_failed,
                 "msg3 signature does not verify for claimed initiator " + block->key.hex()});
  if (auto st = check_peer(block->key); st) return fail(std::move(st));
  const key32 final_hash = hasher().add(h3).add(block->signature).finish();

  outcome_.peer = block->key;
  outcome_.peer_address = std::move(block->address);
  outcome_.keys = derive_keys(shared_secret_, final_hash, role_);
  wipe_secrets();
  stage_ = stage::done;
  return step_output{{}, true};
}

}  // namespace cmesh
