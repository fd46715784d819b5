#include "messages/codec.hpp"

#include <cassert>

#include <algorithm>
#include <limits>
#include <new>

namespace cmesh {

namespace codec_detail {

namespace {

// Let bin and str bodies point into the input instead of copying them into the zone.
bool reference_input(msgpack::type::object_type, std::size_t, void*) { return true; }

std::string count_text(size_t n) { return std::to_string(n); }

}  // namespace

bytes to_bytes(const msgpack::sbuffer& buffer) {
  const auto* begin = reinterpret_cast<const uint8_t*>(buffer.data());
  return bytes(begin, begin + buffer.size());
}

result<msgpack::object_handle> unpack_object(const uint8_t* data, size_t size, size_t bytes_max,
                                             const char* what) {
  if (size > bytes_max)
    return error{errc::too_large,
                 "input of " + count_text(size) + " bytes exceeds " + count_text(bytes_max)};
  if (size == 0) return error{errc::truncated, "input is empty"};
  // Every array element takes at least one input byte and every map entry two, so a length
  // prefix larger than the input can never be satisfied: clamping the limits to the input size
  // keeps a hostile prefix from reserving memory for elements that cannot exist.
  const size_t array_max = std::min(limits::decode_elements_max, size);
  const size_t map_max = std::min(limits::decode_elements_max, size / 2);
  const msgpack::unpack_limit limit(array_max, map_max, bytes_max, bytes_max, bytes_max,
                                    limits::decode_depth_max);
  const bool clamped = size < limits::decode_elements_max;
  try {
    size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(reinterpret_cast<const char*>(data), size,
                                                    offset, reference_input, nullptr, limit);
    if (!handle.zone()) return error{errc::malformed, "input is not msgpack"};
    if (offset != size)
      return error{errc::malformed, std::string("trailing bytes after ") + what + ": " +
                                        count_text(size - offset) + " of " + count_text(size) +
                                        " bytes unused"};
    return handle;
  } catch (const msgpack::insufficient_bytes&) {
    return error{errc::truncated,
                 "input of " + count_text(size) + " bytes is truncated inside a value"};
  } catch (const msgpack::array_size_overflow&) {
    if (clamped)
      return error{errc::truncated, "input of " + count_text(size) +
                                        " bytes is truncated: an array claims more elements"};
    return error{errc::too_large, "an array claims more than " +
                                      count_text(limits::decode_elements_max) + " elements"};
  } catch (const msgpack::map_size_overflow&) {
    if (clamped)
      return error{errc::truncated, "input of " + count_text(size) +
                                        " bytes is truncated: a map claims more entries"};
    return error{errc::too_large,
                 "a map claims more than " + count_text(limits::decode_elements_max) + " entries"};
  } catch (const msgpack::depth_size_overflow&) {
    return error{errc::too_large,
                 "nesting deeper than " + count_text(limits::decode_depth_max) + " levels"};
  } catch (const msgpack::size_overflow&) {
    return error{errc::too_large,
                 "a string, binary or extension value exceeds " + count_text(bytes_max) + " bytes"};
  } catch (const msgpack::parse_error& e) {
    return error{errc::malformed, std::string("not valid msgpack: ") + e.what()};
  } catch (const std::bad_alloc&) {
    return error{errc::too_large, "out of memory while decoding " + count_text(size) + " bytes"};
  } catch (const std::exception& e) {
    return error{errc::malformed, std::string("cannot decode: ") + e.what()};
  } catch (...) {
    return error{errc::malformed, "cannot decode"};
  }
}

}  // namespace codec_detail

namespace {

constexpr size_t envelope_fields = 6;

// Reads an unsigned integer field no larger than `max`.
result<uint64_t> read_uint(const msgpack::object& field, const char* name, uint64_t max) {
  if (field.type == msgpack::type::NEGATIVE_INTEGER)
    return error{errc::malformed, std::string(name) + " is negative"};
  if (field.type != msgpack::type::POSITIVE_INTEGER)
    return error{errc::malformed, std::string(name) + " is not an unsigned integer"};
  const uint64_t value = field.via.u64;
  if (value > max)
    return error{errc::malformed, std::string(name) + " " + std::to_string(value) +
                                      " is out of range (max " + std::to_string(max) + ")"};
  return value;
}

result<envelope> envelope_from_object(const msgpack::object& root) {
  if (root.type != msgpack::type::ARRAY) return error{errc::malformed, "envelope is not an array"};
  const msgpack::object_array& fields = root.via.array;
  if (fields.size == 0) return error{errc::malformed, "envelope has 0 fields, expected 6"};
  // The version comes first so that a future version with another shape is reported as such.
  auto version = read_uint(fields.ptr[0], "version", std::numeric_limits<uint64_t>::max());
  if (!version) return version.err();
  if (*version != wire_version)
    return error{errc::unsupported_version, "unsupported version " + std::to_string(*version)};
  if (fields.size != envelope_fields)
    return error{errc::malformed, "envelope has " + std::to_string(fields.size) +
                                      " fields, expected " + std::to_string(envelope_fields)};
  auto type = read_uint(fields.ptr[1], "type", std::numeric_limits<uint16_t>::max());
  if (!type) return type.err();
  const msgpack::object& source = fields.ptr[2];
  if (source.type != msgpack::type::BIN) return error{errc::malformed, "source is not binary"};
  if (source.via.bin.size != 32)
    return error{errc::malformed,
                 "source is " + std::to_string(source.via.bin.size) + " bytes, expected 32"};
  auto service = read_uint(fields.ptr[3], "service", std::numeric_limits<uint16_t>::max());
  if (!service) return service.err();
  auto correlation = read_uint(fields.ptr[4], "correlation", std::numeric_limits<uint64_t>::max());
  if (!correlation) return correlation.err();
  const msgpack::object& payload = fields.ptr[5];
  if (payload.type != msgpack::type::BIN) return error{errc::malformed, "payload is not binary"};

  envelope env;
  env.version = wire_version;
  env.type = static_cast<uint16_t>(*type);
  env.source = node_id::from_bytes(reinterpret_cast<const uint8_t*>(source.via.bin.ptr));
  env.service = static_cast<uint16_t>(*service);
  env.correlation = *correlation;
  const auto* body = reinterpret_cast<const uint8_t*>(payload.via.bin.ptr);
  env.payload.assign(body, body + payload.via.bin.size);
  return env;
}

}  // namespace

result<bytes> encode_envelope(const envelope& env, size_t bytes_max) {
  // Checked before packing so an absurd payload is refused without copying it.
  if (env.payload.size() > bytes_max || env.payload.size() > std::numeric_limits<uint32_t>::max())
    return error{errc::too_large, "payload of " + std::to_string(env.payload.size()) +
                                      " bytes exceeds " + std::to_string(bytes_max)};
  try {
    msgpack::sbuffer buffer(env.payload.size() + 64);
    msgpack::packer<msgpack::sbuffer> packer(buffer);
    packer.pack_array(envelope_fields);
    packer.pack_uint8(env.version);
    packer.pack_uint16(env.type);
    packer.pack_bin(32);
    packer.pack_bin_body(reinterpret_cast<const char*>(env.source.key.data()), 32);
    packer.pack_uint16(env.service);
    packer.pack_uint64(env.correlation);
    packer.pack_bin(static_cast<uint32_t>(env.payload.size()));
    packer.pack_bin_body(reinterpret_cast<const char*>(env.payload.data()),
                         static_cast<uint32_t>(env.payload.size()));
    if (buffer.size() > bytes_max)
      return error{errc::too_large, "envelope of " + std::to_string(buffer.size()) +
                                        " bytes exceeds " + std::to_string(bytes_max)};
    return codec_detail::to_bytes(buffer);
  } catch (const std::exception& e) {
    return error{errc::too_large, std::string("cannot encode envelope: ") + e.what()};
  } catch (...) {
    return error{errc::too_large, "cannot encode envelope"};
  }
}

bytes encode_bundle(const std::vector<bytes>& envelopes) {
  assert(envelopes.size() >= 2);
  size_t total = bundle_overhead(envelopes.size());
  for (const auto& e : envelopes) total += e.size();
  msgpack::sbuffer buffer(total);
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(static_cast<uint32_t>(envelopes.size() + 1));
  packer.pack_str(static_cast<uint32_t>(bundle_tag.size()));
  packer.pack_str_body(bundle_tag.data(), static_cast<uint32_t>(bundle_tag.size()));
  for (const auto& e : envelopes) {
    packer.pack_bin(static_cast<uint32_t>(e.size()));
    packer.pack_bin_body(reinterpret_cast<const char*>(e.data()), static_cast<uint32_t>(e.size()));
  }
  return codec_detail::to_bytes(buffer);
}

bool is_bundle(const uint8_t* data, size_t size) {
  // fixarray (0x90-0x9f), array16 (0xdc) or array32 (0xdd), then a fixstr (0xa0-0xbf).
  if (size < 2) return false;
  size_t first = 1;
  if (data[0] == 0xdc) first = 3;
  else if (data[0] == 0xdd) first = 5;
  else if ((data[0] & 0xf0) != 0x90) return false;
  return size > first && (data[first] & 0xe0) == 0xa0;
}

result<std::vector<std::pair<const uint8_t*, size_t>>> split_bundle(const uint8_t* data, size_t size) {
  auto handle = codec_detail::unpack_object(data, size, limits::envelope_bytes_max, "bundle");
  if (!handle) return handle.err();
  const msgpack::object& o = handle->get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 3)
    return error{errc::malformed, "a bundle is an array of a tag and at least 2 envelopes"};
  const msgpack::object& tag = o.via.array.ptr[0];
  if (tag.type != msgpack::type::STR ||
      std::string_view(tag.via.str.ptr, tag.via.str.size) != bundle_tag)
    return error{errc::malformed, "unknown bundle tag"};
  std::vector<std::pair<const uint8_t*, size_t>> out;
  out.reserve(o.via.array.size - 1);
  for (uint32_t i = 1; i < o.via.array.size; ++i) {
    const msgpack::object& e = o.via.array.ptr[i];
    if (e.type != msgpack::type::BIN)
      return error{errc::malformed, "bundle element " + std::to_string(i) + " is not a bin"};
    // reference_input: the bin body points into `data` itself.
    out.emplace_back(reinterpret_cast<const uint8_t*>(e.via.bin.ptr), e.via.bin.size);
  }
  return out;
}

result<envelope> decode_envelope(const uint8_t* data, size_t size, size_t bytes_max) {
  auto handle = codec_detail::unpack_object(data, size, bytes_max, "envelope");
  if (!handle) return handle.err();
  return envelope_from_object(handle->get());
}

}  // namespace cmesh
