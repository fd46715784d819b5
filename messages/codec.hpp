// Wire codec: the envelope every message travels in, and msgpack helpers for typed payloads.
//
// Wire form of an envelope (wire_version 1): a msgpack array of exactly 6 elements
//   [version: uint, type: uint16, source: bin(32), service: uint16, correlation: uint64,
//    payload: bin]
// The payload is the msgpack encoding of one typed message (a struct with MSGPACK_DEFINE(...),
// `static constexpr uint16_t type_id` and `static constexpr uint16_t service_id`).
//
// Decoding treats its input as hostile: it never crashes and never throws. Every msgpack decode
// runs under an unpack_limit built from limits::decode_elements_max, limits::decode_depth_max and
// the byte limit, and every exception is caught here and turned into an error:
//   errc::truncated            input ended before the structure did
//   errc::too_large            input (or an encoding) over the byte limit
//   errc::malformed            anything that does not parse as what it claims to be, including
//                              trailing bytes and integers out of range for their field
//   errc::unsupported_version  an envelope whose version is not wire_version
//   errc::unknown_type         decode_payload for a payload of another type or service
// Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <msgpack.hpp>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"

namespace cmesh {

inline constexpr uint8_t wire_version = 1;

struct envelope {
  uint8_t version = wire_version;
  uint16_t type = 0;         // message type within the destination service
  node_id source;            // sending node; receivers check it against the authenticated peer
  uint16_t service = 0;      // destination service id
  uint64_t correlation = 0;  // request/response pairing; 0 = none
  bytes payload;             // msgpack encoding of the typed message

  friend bool operator==(const envelope&, const envelope&) = default;
};

// Encodes `env` as written (including env.version, so tests can produce other versions).
// Errors: too_large if the encoding would exceed bytes_max.
result<bytes> encode_envelope(const envelope& env, size_t bytes_max = limits::envelope_bytes_max);

// Decodes exactly one envelope occupying all of [data, data + size); data may be null if size is 0.
// Errors: too_large (size > bytes_max), truncated, malformed, unsupported_version.
result<envelope> decode_envelope(const uint8_t* data, size_t size,
                                 size_t bytes_max = limits::envelope_bytes_max);

// ---- bundles: several envelopes in one data frame (docs/wire-protocol.md §6) ----------------
//
// Wire form: a msgpack array of k + 1 elements, k >= 2: the string "b1", then k bins, each one
// encoded envelope. An envelope's first element is an unsigned integer, a bundle's a string, so a
// receiver tells them apart by the first element. The whole bundle is at most
// limits::envelope_bytes_max, like one envelope, so the frame limit does not change.
inline constexpr std::string_view bundle_tag = "b1";

// Bytes a bundle adds around `count` envelopes of `total` bytes (an upper bound).
inline size_t bundle_overhead(size_t count) { return 8 + 3 + count * 5; }

// Encodes envelopes (each already encoded) as one bundle. REQUIRES: at least 2, and the result
// within limits::envelope_bytes_max (use bundle_overhead to plan).
bytes encode_bundle(const std::vector<bytes>& envelopes);

// Whether `data` is a bundle (an array whose first element is a string); a plain envelope or
// garbage answers false (the envelope decoder then judges it).
bool is_bundle(const uint8_t* data, size_t size);

// The envelopes of a bundle, as (pointer, size) views into `data` (valid while `data` is).
// Errors: malformed (not a bundle of at least 2 bins after the tag), too_large, truncated.
result<std::vector<std::pair<const uint8_t*, size_t>>> split_bundle(const uint8_t* data, size_t size);

namespace codec_detail {

// Parses exactly one msgpack object from [data, data + size) under the decode limits.
// The returned handle may reference `data` (bin and str bodies are not copied): it must not
// outlive the input. `what` names the value in error messages ("envelope", "value").
// Errors: too_large, truncated, malformed (also for trailing bytes).
result<msgpack::object_handle> unpack_object(const uint8_t* data, size_t size, size_t bytes_max,
                                             const char* what);

// Copies an sbuffer into bytes.
bytes to_bytes(const msgpack::sbuffer& buffer);

// A msgpack stream that fills a buffer on the stack and spills into a vector past it: a small
// value costs one allocation of its exact size (take()), where an sbuffer costs an 8 KiB
// allocation plus a copy.
class bytes_writer {
public:
  void write(const char* data, size_t size) {
    if (spill_.empty() && used_ + size <= sizeof(inline_)) {
      // msgpack writes 1 to 9 bytes at a time for headers and numbers: copied inline, not through
      // a memcpy call.
      if (size <= 16) {
        for (size_t i = 0; i < size; ++i) inline_[used_ + i] = static_cast<uint8_t>(data[i]);
      } else {
        std::memcpy(inline_ + used_, data, size);
      }
      used_ += size;
      return;
    }
    if (spill_.empty()) {
      spill_.reserve(2 * (used_ + size));
      spill_.assign(inline_, inline_ + used_);
    }
    const auto* begin = reinterpret_cast<const uint8_t*>(data);
    spill_.insert(spill_.end(), begin, begin + size);
  }
  size_t size() const { return spill_.empty() ? used_ : spill_.size(); }
  const uint8_t* data() const { return spill_.empty() ? inline_ : spill_.data(); }
  bytes take() { return spill_.empty() ? bytes(inline_, inline_ + used_) : std::move(spill_); }

private:
  uint8_t inline_[512];
  size_t used_ = 0;
  bytes spill_;
};

}  // namespace codec_detail

// msgpack-encodes a value. Errors: too_large if the encoding exceeds limits::envelope_bytes_max
// (it could never travel in an envelope), malformed if packing failed (e.g. out of memory).
template <class T>
result<bytes> pack_value(const T& value) {
  try {
    codec_detail::bytes_writer writer;
    msgpack::pack(writer, value);
    if (writer.size() > limits::envelope_bytes_max)
      return error{errc::too_large, "encoded value of " + std::to_string(writer.size()) +
                                        " bytes exceeds " +
                                        std::to_string(limits::envelope_bytes_max)};
    return writer.take();
  } catch (const std::exception& e) {
    return error{errc::malformed, std::string("cannot encode value: ") + e.what()};
  } catch (...) {
    return error{errc::malformed, "cannot encode value"};
  }
}

// msgpack-decodes one T occupying exactly [data, data + size), under the decode limits.
// Errors: too_large, truncated, malformed (wrong shape, integer out of range, trailing bytes).
template <class T>
result<T> unpack_value(const uint8_t* data, size_t size) {
  auto handle = codec_detail::unpack_object(data, size, limits::envelope_bytes_max, "value");
  if (!handle) return handle.err();
  try {
    T value{};
    handle->get().convert(value);
    return value;
  } catch (const std::exception& e) {
    return error{errc::malformed,
                 std::string("value does not have the expected shape: ") + e.what()};
  } catch (...) {
    return error{errc::malformed, "value does not have the expected shape"};
  }
}

// Encodes `msg` as the payload of an envelope from `source` with T's type and service ids.
// Errors: as pack_value and encode_envelope.
template <class T>
result<bytes> encode_message(const node_id& source, uint64_t correlation, const T& msg) {
  auto payload = pack_value(msg);
  if (!payload) return payload.err();
  envelope env;
  env.type = T::type_id;
  env.source = source;
  env.service = T::service_id;
  env.correlation = correlation;
  env.payload = std::move(payload).value();
  return encode_envelope(env);
}

// Decodes an envelope delivered by the transport from node `from` and checks that it claims to come
// from that node (the transport authenticated `from`; the envelope's source is only a claim).
// Errors: as decode_envelope; malformed if the source is not the sender.
inline result<envelope> decode_envelope_from(const node_id& from, const bytes& data) {
  auto env = decode_envelope(data.data(), data.size());
  if (!env) return env;
  if (env->source != from) return error{errc::malformed, "envelope source is not the sender"};
  return env;
}

// Decodes the payload of `env` as a T.
// Errors: unknown_type if env.service != T::service_id or env.type != T::type_id; then as
// unpack_value.
template <class T>
result<T> decode_payload(const envelope& env) {
  if (env.service != T::service_id)
    return error{errc::unknown_type, "payload service " + std::to_string(env.service) +
                                         " does not match expected " +
                                         std::to_string(T::service_id)};
  if (env.type != T::type_id)
    return error{errc::unknown_type, "payload type " + std::to_string(env.type) +
                                         " does not match expected " + std::to_string(T::type_id)};
  return unpack_value<T>(env.payload.data(), env.payload.size());
}

// Decodes env's payload as a T and hands it to f. Returns "" on success, else the decoding error as
// text (for a service's "malformed" log line and reply). For dispatching on env.type:
//   case ping::type_id: problem = decode_then<ping>(env, on_ping); break;
template <class T, class F>
std::string decode_then(const envelope& env, F f) {
  auto message = decode_payload<T>(env);
  if (!message) return message.err().describe();
  f(std::move(*message));
  return {};
}

}  // namespace cmesh
