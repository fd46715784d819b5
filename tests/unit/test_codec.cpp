// Tests for messages/codec.hpp: envelope round trips, limits, and hostile input.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "messages/codec.hpp"
#include "runtime/core/rng.hpp"

namespace {

using namespace cmesh;

struct test_message {
  static constexpr uint16_t service_id = 9;
  static constexpr uint16_t type_id = 2;
  uint32_t number = 0;
  std::string text;
  std::vector<uint64_t> values;
  MSGPACK_DEFINE(number, text, values);
};

struct other_message {
  static constexpr uint16_t service_id = 9;
  static constexpr uint16_t type_id = 3;
  uint32_t number = 0;
  MSGPACK_DEFINE(number);
};

node_id sample_node(uint8_t fill) {
  node_id id;
  for (size_t i = 0; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(fill + i);
  return id;
}

envelope sample_envelope() {
  envelope env;
  env.type = 7;
  env.source = sample_node(3);
  env.service = 1;
  env.correlation = 0x0123456789abcdefULL;
  env.payload = {1, 2, 3, 4, 5, 0xc1, 0xff};
  return env;
}

bytes encoded(const envelope& env, size_t bytes_max = limits::envelope_bytes_max) {
  auto out = encode_envelope(env, bytes_max);
  REQUIRE(out.ok());
  return *out;
}

result<envelope> decode(const bytes& data) { return decode_envelope(data.data(), data.size()); }

// Packs an arbitrary msgpack value (to build envelopes of the wrong shape).
template <class T>
bytes raw_pack(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  return bytes(buffer.data(), buffer.data() + buffer.size());
}

// An envelope array whose fields are given as pre-encoded msgpack values.
bytes envelope_of(const std::vector<bytes>& fields) {
  bytes out;
  out.push_back(static_cast<uint8_t>(0x90 | fields.size()));
  for (const auto& field : fields) out.insert(out.end(), field.begin(), field.end());
  return out;
}

bytes bin_of(size_t size) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_bin(static_cast<uint32_t>(size));
  std::string body(size, 'x');
  packer.pack_bin_body(body.data(), static_cast<uint32_t>(size));
  return bytes(buffer.data(), buffer.data() + buffer.size());
}

bytes valid_fields_envelope(const bytes& type_field) {
  return envelope_of({raw_pack(1), type_field, bin_of(32), raw_pack(1), raw_pack(0), bin_of(0)});
}

}  // namespace

TEST_CASE("codec: envelope round trip") {
  const envelope env = sample_envelope();
  auto back = decode(encoded(env));
  REQUIRE(back.ok());
  CHECK(*back == env);
}

TEST_CASE("codec: envelope round trip with empty payload and extreme values") {
  envelope env;
  env.type = 65535;
  env.service = 65535;
  env.correlation = ~uint64_t{0};
  env.source = sample_node(200);
  auto back = decode(encoded(env));
  REQUIRE(back.ok());
  CHECK(*back == env);
  CHECK(back->payload.empty());
}

TEST_CASE("codec: envelope exactly at the size limit and one over") {
  envelope env = sample_envelope();
  env.payload.assign(limits::envelope_bytes_max - 100, 0xab);
  const size_t first_size = encoded(env).size();
  env.payload.resize(env.payload.size() + (limits::envelope_bytes_max - first_size), 0xcd);
  const bytes at_limit = encoded(env);
  CHECK(at_limit.size() == limits::envelope_bytes_max);
  auto back = decode(at_limit);
  REQUIRE(back.ok());
  CHECK(*back == env);

  env.payload.push_back(0);
  auto over = encode_envelope(env);
  REQUIRE_FALSE(over.ok());
  CHECK(over.err().code == errc::too_large);

  const bytes over_input = encoded(env, limits::envelope_bytes_max + 1);
  auto refused = decode(over_input);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == errc::too_large);
}

TEST_CASE("codec: encode refuses a payload larger than the limit") {
  envelope env = sample_envelope();
  env.payload.assign(100, 1);
  auto out = encode_envelope(env, 50);
  REQUIRE_FALSE(out.ok());
  CHECK(out.err().code == errc::too_large);
}

TEST_CASE("codec: typed message round trip") {
  test_message msg;
  msg.number = 42;
  msg.text = "hello";
  msg.values = {1, 2, ~uint64_t{0}};
  auto wire = encode_message(sample_node(1), 77, msg);
  REQUIRE(wire.ok());
  auto env = decode(*wire);
  REQUIRE(env.ok());
  CHECK(env->type == test_message::type_id);
  CHECK(env->service == test_message::service_id);
  CHECK(env->correlation == 77);
  CHECK(env->source == sample_node(1));
  auto back = decode_payload<test_message>(*env);
  REQUIRE(back.ok());
  CHECK(back->number == 42);
  CHECK(back->text == "hello");
  CHECK(back->values == msg.values);
}

TEST_CASE("codec: decode_payload refuses the wrong type or service") {
  auto wire = encode_message(sample_node(1), 0, other_message{5});
  REQUIRE(wire.ok());
  auto env = decode(*wire);
  REQUIRE(env.ok());
  auto wrong = decode_payload<test_message>(*env);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.err().code == errc::unknown_type);
  CHECK(wrong.err().message == "payload type 3 does not match expected 2");

  env->type = test_message::type_id;
  env->service = 4;
  auto wrong_service = decode_payload<test_message>(*env);
  REQUIRE_FALSE(wrong_service.ok());
  CHECK(wrong_service.err().code == errc::unknown_type);
}

TEST_CASE("codec: decode_payload refuses a payload of the wrong shape") {
  envelope env = sample_envelope();
  env.type = test_message::type_id;
  env.service = test_message::service_id;
  env.payload = raw_pack(std::string("not an array"));
  auto wrong = decode_payload<test_message>(env);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.err().code == errc::malformed);

  env.payload = raw_pack(std::vector<int>{-1, 0, 0});  // number out of range for uint32
  CHECK_FALSE(decode_payload<test_message>(env).ok());
}

TEST_CASE("codec: unpack_value rejects trailing bytes and values out of range") {
  bytes two = raw_pack(1);
  two.push_back(0x02);
  auto trailing = unpack_value<uint32_t>(two.data(), two.size());
  REQUIRE_FALSE(trailing.ok());
  CHECK(trailing.err().code == errc::malformed);

  const bytes big = raw_pack(uint64_t{1} << 40);
  CHECK_FALSE(unpack_value<uint32_t>(big.data(), big.size()).ok());
  const bytes negative = raw_pack(-5);
  CHECK_FALSE(unpack_value<uint16_t>(negative.data(), negative.size()).ok());
  const bytes small = raw_pack(513);
  auto fine = unpack_value<uint16_t>(small.data(), small.size());
  REQUIRE(fine.ok());
  CHECK(*fine == 513);
}

TEST_CASE("codec: envelope field errors") {
  SUBCASE("too few fields") {
    auto out =
        decode(envelope_of({raw_pack(1), raw_pack(1), bin_of(32), raw_pack(1), raw_pack(0)}));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
    CHECK(out.err().message == "envelope has 5 fields, expected 6");
  }
  SUBCASE("too many fields") {
    auto out = decode(envelope_of(
        {raw_pack(1), raw_pack(1), bin_of(32), raw_pack(1), raw_pack(0), bin_of(0), raw_pack(0)}));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
  SUBCASE("short source") {
    auto out = decode(
        envelope_of({raw_pack(1), raw_pack(1), bin_of(31), raw_pack(1), raw_pack(0), bin_of(0)}));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
    CHECK(out.err().message == "source is 31 bytes, expected 32");
  }
  SUBCASE("unsupported version") {
    envelope env = sample_envelope();
    env.version = 7;
    auto out = decode(encoded(env));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::unsupported_version);
    CHECK(out.err().message == "unsupported version 7");
  }
  SUBCASE("type out of range") {
    auto out = decode(valid_fields_envelope(raw_pack(65536)));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
  SUBCASE("negative type") {
    auto out = decode(valid_fields_envelope(raw_pack(-1)));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
  SUBCASE("type is a string") {
    auto out = decode(valid_fields_envelope(raw_pack(std::string("1"))));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
  SUBCASE("the largest type is accepted") {
    CHECK(decode(valid_fields_envelope(raw_pack(65535))).ok());
  }
  SUBCASE("not an array") {
    auto out = decode(raw_pack(5));
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
  SUBCASE("trailing bytes") {
    bytes wire = encoded(sample_envelope());
    wire.push_back(0);
    auto out = decode(wire);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
    CHECK(out.err().message.find("trailing bytes after envelope") != std::string::npos);
  }
  SUBCASE("empty input") {
    auto out = decode_envelope(nullptr, 0);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::truncated);
  }
}

TEST_CASE("codec: every truncation of a valid envelope is an error") {
  const bytes wire = encoded(sample_envelope());
  for (size_t length = 0; length < wire.size(); ++length) {
    CAPTURE(length);
    auto out = decode_envelope(wire.data(), length);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::truncated);
  }
}

TEST_CASE("codec: every single bit flip of a valid envelope is handled") {
  const bytes wire = encoded(sample_envelope());
  size_t decoded = 0;
  for (size_t bit = 0; bit < wire.size() * 8; ++bit) {
    bytes flipped = wire;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    auto out = decode(flipped);
    if (out.ok()) {
      ++decoded;
      CHECK(out->version == wire_version);
    } else {
      CHECK(out.err().code != errc::ok);
    }
  }
  CHECK(decoded > 0);  // flips inside the payload, source or correlation still decode
}

TEST_CASE("codec: deep nesting bomb is refused quickly") {
  bytes bomb(100000, 0x91);
  bomb.push_back(0x00);
  const auto start = std::chrono::steady_clock::now();
  auto out = decode(bomb);
  REQUIRE_FALSE(out.ok());
  CHECK(out.err().code == errc::too_large);
  auto value = unpack_value<std::vector<int>>(bomb.data(), bomb.size());
  CHECK_FALSE(value.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

TEST_CASE("codec: huge length prefixes are refused without allocating") {
  for (const bytes& hostile :
       {bytes{0xdd, 0xff, 0xff, 0xff, 0xff}, bytes{0xdf, 0xff, 0xff, 0xff, 0xff},
        bytes{0xc6, 0xff, 0xff, 0xff, 0xff}, bytes{0xdb, 0xff, 0xff, 0xff, 0xff},
        bytes{0x96, 0xdd, 0x7f, 0xff, 0xff, 0xff}}) {
    auto out = decode(hostile);
    CHECK_FALSE(out.ok());
  }
  // A big input whose array prefix still claims more than the element limit.
  bytes big(200000, 0x00);
  big[0] = 0xdd;
  big[1] = 0xff;
  big[2] = 0xff;
  big[3] = 0xff;
  big[4] = 0xff;
  auto out = decode(big);
  REQUIRE_FALSE(out.ok());
  CHECK(out.err().code == errc::too_large);
}

TEST_CASE("codec: oversized input is refused before parsing") {
  const bytes huge(2000000, 0x90);
  auto out = decode(huge);
  REQUIRE_FALSE(out.ok());
  CHECK(out.err().code == errc::too_large);
  CHECK(out.err().message == "input of 2000000 bytes exceeds 1048576");
}

TEST_CASE("codec: random byte strings never crash") {
  rng random(20240601);
  size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    bytes input(random.below(64));
    for (auto& byte : input) byte = static_cast<uint8_t>(random.next());
    // Bias some inputs towards the envelope shape so the field checks are reached.
    if (!input.empty() && random.chance(0.5)) input[0] = 0x96;
    auto out = decode(input);
    if (out.ok()) ++decoded;
    auto value = unpack_value<test_message>(input.data(), input.size());
    (void)value;
  }
  CHECK(decoded < 20000);
}

TEST_CASE("codec: bundles carry several envelopes and are told apart from one envelope") {
  const envelope a = sample_envelope();
  envelope b = sample_envelope();
  b.correlation = 99;
  b.payload.assign(300, 7);
  const bytes ea = encoded(a), eb = encoded(b);
  CHECK_FALSE(is_bundle(ea.data(), ea.size()));
  const bytes bundle = encode_bundle({ea, eb, ea});
  CHECK(is_bundle(bundle.data(), bundle.size()));
  CHECK(bundle.size() <= ea.size() * 2 + eb.size() + bundle_overhead(3));
  auto parts = split_bundle(bundle.data(), bundle.size());
  REQUIRE(parts.ok());
  REQUIRE(parts->size() == 3);
  auto second = decode_envelope((*parts)[1].first, (*parts)[1].second);
  REQUIRE(second.ok());
  CHECK(*second == b);
  CHECK(bytes((*parts)[2].first, (*parts)[2].first + (*parts)[2].second) == ea);
  // A bundle bigger than 15 envelopes uses a longer array header; still a bundle.
  const bytes many = encode_bundle(std::vector<bytes>(20, ea));
  CHECK(is_bundle(many.data(), many.size()));
  CHECK(split_bundle(many.data(), many.size())->size() == 20);

  SUBCASE("malformed bundles are refused") {
    bytes tag = bundle;
    tag[2] = 'x';
    CHECK(split_bundle(tag.data(), tag.size()).err().code == errc::malformed);
    // Only one envelope after the tag.
    msgpack::sbuffer one;
    msgpack::packer<msgpack::sbuffer> p1(one);
    p1.pack_array(2);
    p1.pack(std::string("b1"));
    p1.pack_bin(static_cast<uint32_t>(ea.size()));
    p1.pack_bin_body(reinterpret_cast<const char*>(ea.data()), static_cast<uint32_t>(ea.size()));
    CHECK(split_bundle(reinterpret_cast<const uint8_t*>(one.data()), one.size()).err().code == errc::malformed);
    // An element that is not a bin.
    msgpack::sbuffer mixed;
    msgpack::packer<msgpack::sbuffer> p2(mixed);
    p2.pack_array(3);
    p2.pack(std::string("b1"));
    p2.pack(uint64_t{5});
    p2.pack(uint64_t{6});
    CHECK(split_bundle(reinterpret_cast<const uint8_t*>(mixed.data()), mixed.size()).err().code == errc::malformed);
    // Truncated anywhere: an error, never a crash.
    for (size_t cut = 0; cut < bundle.size(); ++cut) CHECK_FALSE(split_bundle(bundle.data(), cut).ok());
  }
}
