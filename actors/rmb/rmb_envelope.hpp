// Signing, verifying and measuring RMB twin envelopes (messages/rmb_messages.hpp).
//
// The signed bytes are the msgpack encoding of the array
//   ["cmesh-rmb-envelope-v1", version, uid, kind, created_ms, expiry_s, source, destination,
//    command, data, reply_to, status, reason]
// i.e. every field but the signature, behind a domain string so that an RMB signature can never
// be replayed as a signature of another protocol (or the other way round). msgpack-c always uses
// the shortest encoding, so the same field values give the same bytes on every node.
//
// Header-only (the machine library compiles only *_machine.cpp and *_store.cpp). Pure and
// deterministic: ed25519 signatures are deterministic, so signing needs no random source.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string_view>

#include <msgpack.hpp>

#include "messages/rmb_messages.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::rmb {

inline constexpr std::string_view signing_domain = "cmesh-rmb-envelope-v1";

using message_uid = std::array<uint8_t, uid_bytes>;

// A message's identity on the bus: its source twin and its uid (deduplication key).
struct message_key {
  node_id twin;
  message_uid uid{};
  friend auto operator<=>(const message_key&, const message_key&) = default;
  friend bool operator==(const message_key&, const message_key&) = default;
};

inline bytes to_bytes(const node_id& id) { return bytes(id.key.begin(), id.key.end()); }
inline bytes to_bytes(const message_uid& uid) { return bytes(uid.begin(), uid.end()); }
inline message_uid uid_from(const bytes& b) {
  message_uid uid{};
  if (b.size() == uid.size()) std::memcpy(uid.data(), b.data(), uid.size());
  return uid;
}
inline node_id twin_from(const bytes& b) {
  return b.size() == twin_key_bytes ? node_id::from_bytes(b.data()) : node_id{};
}
// REQUIRES: well_formed(env).
inline message_key key_of(const twin_envelope& env) {
  return {twin_from(env.source), uid_from(env.uid)};
}

// Fixed-size fields have their sizes, and kind/status/reply_to agree with each other.
inline bool well_formed(const twin_envelope& env) {
  if (env.version != envelope_version || env.uid.size() != uid_bytes ||
      env.source.size() != twin_key_bytes || env.destination.size() != twin_key_bytes ||
      env.signature.size() != signature_bytes)
    return false;
  if (env.kind == static_cast<uint8_t>(envelope_kind::request))
    return env.reply_to.empty() && env.status == 0 && env.reason.empty();
  if (env.kind == static_cast<uint8_t>(envelope_kind::reply))
    return env.reply_to.size() == uid_bytes &&
           (env.status == static_cast<uint8_t>(status_code::ok) ||
            env.status == static_cast<uint8_t>(status_code::command_failed));
  return false;
}

// The bytes the source twin signs (see the top of this file).
inline bytes signing_bytes(const twin_envelope& env) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(13);
  packer.pack_str(static_cast<uint32_t>(signing_domain.size()));
  packer.pack_str_body(signing_domain.data(), static_cast<uint32_t>(signing_domain.size()));
  packer.pack(env.version);
  packer.pack(env.uid);
  packer.pack(env.kind);
  packer.pack(env.created_ms);
  packer.pack(env.expiry_s);
  packer.pack(env.source);
  packer.pack(env.destination);
  packer.pack(env.command);
  packer.pack(env.data);
  packer.pack(env.reply_to);
  packer.pack(env.status);
  packer.pack(env.reason);
  const auto* begin = reinterpret_cast<const uint8_t*>(buffer.data());
  return bytes(begin, begin + buffer.size());
}

// Sets env.source to the signer's key and env.signature to its signature over signing_bytes.
inline void sign_envelope(twin_envelope& env, const identity& signer) {
  env.source = to_bytes(signer.public_key);
  const bytes signed_bytes = signing_bytes(env);
  const auto signature = signer.sign(signed_bytes.data(), signed_bytes.size());
  env.signature.assign(signature.begin(), signature.end());
}

// True iff env.signature is source's valid signature over signing_bytes(env). False for wrong
// field sizes (never reads out of bounds).
inline bool verify_envelope(const twin_envelope& env) {
  if (env.source.size() != twin_key_bytes || env.signature.size() != signature_bytes) return false;
  const bytes signed_bytes = signing_bytes(env);
  return verify_signature(twin_from(env.source), signed_bytes.data(), signed_bytes.size(),
                          env.signature.data());
}

// ---- Where twins live: a twin's consent to be hosted by an agent node (twins_hosted) ----------

inline constexpr std::string_view hosted_domain = "cmesh/rmb/hosted/v1";

inline bytes hosted_signed_bytes(const node_id& twin, const node_id& agent) {
  bytes out(hosted_domain.begin(), hosted_domain.end());
  out.push_back(0);
  out.insert(out.end(), twin.key.begin(), twin.key.end());
  out.insert(out.end(), agent.key.begin(), agent.key.end());
  return out;
}

// `twin` signs that the agent of node `agent` hosts it.
inline hosted_twin sign_hosted(const identity& twin, const node_id& agent) {
  const bytes signed_bytes = hosted_signed_bytes(twin.public_key, agent);
  const auto signature = twin.sign(signed_bytes.data(), signed_bytes.size());
  return {to_bytes(twin.public_key), bytes(signature.begin(), signature.end())};
}

// True iff `entry` is its twin's valid consent to be hosted by `agent`.
inline bool verify_hosted(const hosted_twin& entry, const node_id& agent) {
  if (entry.twin.size() != twin_key_bytes || entry.signature.size() != signature_bytes) return false;
  const bytes signed_bytes = hosted_signed_bytes(twin_from(entry.twin), agent);
  return verify_signature(twin_from(entry.twin), signed_bytes.data(), signed_bytes.size(),
                          entry.signature.data());
}

// Length of env's msgpack encoding (the payload that travels): what the size bound applies to.
inline size_t encoded_size(const twin_envelope& env) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, env);
  return buffer.size();
}

// When the envelope stops being valid, in mesh-epoch milliseconds.
inline int64_t expires_at_ms(const twin_envelope& env) {
  return static_cast<int64_t>(env.created_ms) + int64_t{env.expiry_s} * 1000;
}

}  // namespace cmesh::rmb
