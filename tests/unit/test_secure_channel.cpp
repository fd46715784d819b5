// secure_channel (AEAD frames with implicit counters) and the length-prefix framing.
#include <doctest/doctest.h>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/handshake.hpp"
#include "runtime/crypto/secure_channel.hpp"

using namespace cmesh;

namespace {

// Two ends of one connection: a's send key is b's receive key and vice versa.
struct channel_pair {
  handshake_keys a_keys, b_keys;
};

channel_pair fixed_keys() {
  channel_pair p;
  p.a_keys.send_key.fill(0xa1);
  p.a_keys.receive_key.fill(0xb2);
  p.b_keys.send_key = p.a_keys.receive_key;
  p.b_keys.receive_key = p.a_keys.send_key;
  return p;
}

bytes text(const std::string& s) { return bytes(s.begin(), s.end()); }

bytes seal(secure_channel& c, const bytes& plaintext) {
  auto body = c.seal(plaintext.data(), plaintext.size());
  REQUIRE(body.ok());
  return std::move(body).value();
}

result<bytes> open(secure_channel& c, const bytes& body) { return c.open(body.data(), body.size()); }

bool is_auth_failure(const result<bytes>& r) { return !r.ok() && r.err().code == errc::auth_failed; }

local_credentials make_node(uint8_t seed_byte, std::string address) {
  if (sodium_init() < 0) std::abort();
  std::array<uint8_t, 32> seed;
  seed.fill(seed_byte);
  local_credentials self;
  crypto_sign_seed_keypair(self.public_key.key.data(), self.secret_key.data(), seed.data());
  self.listen_address = std::move(address);
  return self;
}

}  // namespace

TEST_CASE("secure_channel: many frames round trip in both directions") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  rng random(7);
  for (uint64_t i = 0; i < 1000; ++i) {
    bytes message(static_cast<size_t>(random.below(3000)));
    for (auto& byte : message) byte = static_cast<uint8_t>(random.next());
    const bytes body = seal(a, message);
    CHECK(body.size() == message.size() + channel_wire::tag_bytes);
    auto opened = open(b, body);
    REQUIRE(opened.ok());
    CHECK(*opened == message);

    const bytes reply = text("ack " + std::to_string(i));
    auto back = open(a, seal(b, reply));
    REQUIRE(back.ok());
    CHECK(*back == reply);
  }
  CHECK(a.frames_sent() == 1000);
  CHECK(a.frames_received() == 1000);
  CHECK(b.frames_sent() == 1000);
  CHECK(b.frames_received() == 1000);
}

TEST_CASE("secure_channel: the same plaintext seals differently each frame") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys);
  const bytes message = text("same");
  CHECK(seal(a, message) != seal(a, message));
}

TEST_CASE("secure_channel: empty and largest plaintexts") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  auto empty = open(b, seal(a, bytes{}));
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  const bytes largest(limits::envelope_bytes_max, 0x5a);
  auto big = open(b, seal(a, largest));
  REQUIRE(big.ok());
  CHECK(*big == largest);

  const bytes too_big(limits::envelope_bytes_max + 1, 0);
  auto refused = a.seal(too_big.data(), too_big.size());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == errc::too_large);
  CHECK(a.frames_sent() == 2);  // a refused seal uses no counter
}

TEST_CASE("secure_channel: every tampered byte is rejected") {
  const auto keys = fixed_keys();
  secure_channel sender(keys.a_keys);
  const bytes body = seal(sender, text("transfer 10 coins to bob"));
  for (size_t pos = 0; pos < body.size(); ++pos) {
    CAPTURE(pos);
    secure_channel receiver(keys.b_keys);
    bytes tampered = body;
    tampered[pos] ^= 0x01;
    auto r = open(receiver, tampered);
    REQUIRE(is_auth_failure(r));
    CHECK(r.err().message == "frame 0 failed authentication: tampered, replayed or reordered");
  }
  // Changing the length (the associated data) is rejected too.
  for (size_t size : {size_t{0}, size_t{15}, size_t{16}, body.size() - 1, body.size() + 1}) {
    CAPTURE(size);
    secure_channel receiver(keys.b_keys);
    bytes resized = body;
    resized.resize(size, 0);
    CHECK(is_auth_failure(open(receiver, resized)));
  }
  secure_channel receiver(keys.b_keys);
  CHECK(open(receiver, body).ok());
}

TEST_CASE("secure_channel: a replayed frame is rejected") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  const bytes body = seal(a, text("once"));
  REQUIRE(open(b, body).ok());
  auto replay = open(b, body);
  REQUIRE(is_auth_failure(replay));
  CHECK(replay.err().message.find("frame 1 ") == 0);
}

TEST_CASE("secure_channel: reordered and dropped frames are rejected") {
  const auto keys = fixed_keys();
  SUBCASE("frame 2 before frame 1") {
    secure_channel a(keys.a_keys), b(keys.b_keys);
    const bytes first = seal(a, text("first"));
    const bytes second = seal(a, text("second"));
    CHECK(is_auth_failure(open(b, second)));
    CHECK(is_auth_failure(open(b, first)));  // poisoned by then
  }
  SUBCASE("a frame goes missing") {
    secure_channel a(keys.a_keys), b(keys.b_keys);
    seal(a, text("lost"));
    CHECK(is_auth_failure(open(b, seal(a, text("after the loss")))));
  }
}

TEST_CASE("secure_channel: a frame reflected back to its sender is rejected") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys);
  CHECK(is_auth_failure(open(a, seal(a, text("echo")))));
}

TEST_CASE("secure_channel: poisoned after a failure") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  const bytes good = seal(a, text("good"));
  bytes bad = good;
  bad.back() ^= 0x80;
  REQUIRE(is_auth_failure(open(b, bad)));
  CHECK(b.poisoned());
  CHECK(is_auth_failure(open(b, good)));  // the genuine frame no longer helps
  CHECK(b.frames_received() == 0);
  // Sending is unaffected (the transport closes the connection anyway).
  CHECK(b.seal(good.data(), good.size()).ok());
}

TEST_CASE("secure_channel: counters never wrap") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys, channel_wire::counter_last, 0);
  secure_channel b(keys.b_keys, 0, channel_wire::counter_last);
  const bytes last = seal(a, text("last"));
  CHECK(open(b, last).ok());
  const bytes one = text("one too many");
  auto refused = a.seal(one.data(), one.size());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == errc::closed);
  CHECK(is_auth_failure(open(b, last)));  // the receiver has no counter left either
}

TEST_CASE("secure_channel: a moved-from channel cannot seal or open") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  secure_channel moved(std::move(a));
  const bytes body = seal(moved, text("from the new owner"));
  CHECK(open(b, body).ok());
  const bytes message = text("from the old owner");
  auto refused = a.seal(message.data(), message.size());  // NOLINT(bugprone-use-after-move)
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == errc::closed);
  CHECK(moved.frames_sent() == 1);
}

TEST_CASE("secure_channel: works on keys from a real handshake") {
  const auto alice = make_node(1, "a:1");
  const auto bob = make_node(2, "b:2");
  std::array<uint8_t, 32> eph_i, eph_r;
  eph_i.fill(0x31);
  eph_r.fill(0x42);
  handshake initiator(handshake::role::initiator, alice, eph_i, bob.public_key);
  handshake responder(handshake::role::responder, bob, eph_r, std::nullopt);
  const bytes msg1 = initiator.start();
  auto r2 = responder.on_message(msg1.data(), msg1.size());
  REQUIRE(r2.ok());
  auto r3 = initiator.on_message(r2->reply.data(), r2->reply.size());
  REQUIRE(r3.ok());
  auto r4 = responder.on_message(r3->reply.data(), r3->reply.size());
  REQUIRE(r4.ok());
  secure_channel i(initiator.outcome().keys), r(responder.outcome().keys);
  auto there = open(r, seal(i, text("hello bob")));
  REQUIRE(there.ok());
  CHECK(*there == text("hello bob"));
  auto back = open(i, seal(r, text("hello alice")));
  REQUIRE(back.ok());
  CHECK(*back == text("hello alice"));
}

TEST_CASE("secure_channel framing: frame_with_length writes a big-endian u32 prefix") {
  const bytes body(0x010203, 7);
  const bytes frame = frame_with_length(body);
  REQUIRE(frame.size() == body.size() + 4);
  CHECK(frame[0] == 0x00);
  CHECK(frame[1] == 0x01);
  CHECK(frame[2] == 0x02);
  CHECK(frame[3] == 0x03);
  CHECK(frame_with_length(bytes{}) == bytes{0, 0, 0, 0});
}

TEST_CASE("secure_channel framing: frame_reader handles a split at every byte boundary") {
  std::vector<bytes> bodies;
  for (size_t size : {0, 1, 3, 4, 5, 17, 255, 256, 300}) {
    bytes body(size);
    for (size_t i = 0; i < size; ++i) body[i] = static_cast<uint8_t>(size + i);
    bodies.push_back(body);
  }
  bytes stream;
  for (const auto& body : bodies) {
    const bytes frame = frame_with_length(body);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  auto drain = [](frame_reader& reader, std::vector<bytes>& out) {
    while (auto body = reader.next()) out.push_back(std::move(*body));
    CHECK_FALSE(reader.failed());
  };

  for (size_t split = 0; split <= stream.size(); ++split) {
    CAPTURE(split);
    frame_reader reader(1024);
    std::vector<bytes> got;
    REQUIRE_FALSE(reader.push(stream.data(), split));
    drain(reader, got);
    REQUIRE_FALSE(reader.push(stream.data() + split, stream.size() - split));
    drain(reader, got);
    CHECK(got == bodies);
    CHECK(reader.buffered_bytes() == 0);
  }

  frame_reader one_by_one(1024);
  std::vector<bytes> got;
  for (uint8_t byte : stream) {
    REQUIRE_FALSE(one_by_one.push(&byte, 1));
    drain(one_by_one, got);
  }
  CHECK(got == bodies);
}

TEST_CASE("secure_channel framing: an over-limit length is rejected and the reader stays failed") {
  const size_t limit = 100;
  SUBCASE("at the front") {
    frame_reader reader(limit);
    const bytes header = {0, 0, 0, 101};
    const status st = reader.push(header.data(), header.size());
    REQUIRE(st);
    CHECK(st.code == errc::too_large);
    CHECK_FALSE(reader.next().has_value());
    CHECK(reader.failed());
    const bytes fine = frame_with_length(bytes(10, 1));
    CHECK(reader.push(fine.data(), fine.size()).code == errc::too_large);
    CHECK_FALSE(reader.next().has_value());
    CHECK(reader.buffered_bytes() == 0);
  }
  SUBCASE("a hostile 4 GiB length") {
    frame_reader reader(limits::frame_bytes_max);
    const bytes header = {0xff, 0xff, 0xff, 0xff};
    CHECK(reader.push(header.data(), header.size()).code == errc::too_large);
  }
  SUBCASE("exactly the limit is accepted") {
    frame_reader reader(limit);
    const bytes frame = frame_with_length(bytes(limit, 9));
    REQUIRE_FALSE(reader.push(frame.data(), frame.size()));
    auto body = reader.next();
    REQUIRE(body.has_value());
    CHECK(body->size() == limit);
  }
  SUBCASE("behind a good frame") {
    frame_reader reader(limit);
    bytes stream = frame_with_length(bytes(3, 1));
    const bytes header = {0, 0, 1, 0};
    stream.insert(stream.end(), header.begin(), header.end());
    REQUIRE_FALSE(reader.push(stream.data(), stream.size()));
    auto first = reader.next();
    REQUIRE(first.has_value());
    CHECK(first->size() == 3);
    CHECK_FALSE(reader.next().has_value());
    CHECK(reader.failed());
    CHECK(reader.failure().code == errc::too_large);
    const bytes more = {1};
    CHECK(reader.push(more.data(), more.size()).code == errc::too_large);
  }
}

TEST_CASE("secure_channel framing: the limit can be raised after the handshake messages") {
  // The last handshake message and a large first data frame arrive in one read.
  bytes stream = frame_with_length(bytes(98, 3));
  const bytes data_body(5000, 4);
  const bytes data_frame = frame_with_length(data_body);
  stream.insert(stream.end(), data_frame.begin(), data_frame.end());

  frame_reader reader(limits::handshake_message_bytes_max);
  REQUIRE_FALSE(reader.push(stream.data(), stream.size()));
  auto handshake_message = reader.next();
  REQUIRE(handshake_message.has_value());
  CHECK(handshake_message->size() == 98);
  reader.set_body_bytes_max(limits::frame_bytes_max);
  auto data = reader.next();
  REQUIRE(data.has_value());
  CHECK(*data == data_body);
  CHECK_FALSE(reader.failed());
}

TEST_CASE("secure_channel framing: sealed frames survive a chunked stream end to end") {
  const auto keys = fixed_keys();
  secure_channel a(keys.a_keys), b(keys.b_keys);
  std::vector<bytes> sent;
  bytes stream;
  for (int i = 0; i < 50; ++i) {
    sent.push_back(text("message number " + std::to_string(i) + std::string(static_cast<size_t>(i * 37), '.')));
    const bytes frame = frame_with_length(seal(a, sent.back()));
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  rng random(99);
  frame_reader reader(limits::frame_bytes_max);
  std::vector<bytes> received;
  for (size_t offset = 0; offset < stream.size();) {
    const size_t chunk = std::min(stream.size() - offset, static_cast<size_t>(1 + random.below(200)));
    REQUIRE_FALSE(reader.push(stream.data() + offset, chunk));
    offset += chunk;
    while (auto body = reader.next()) {
      auto plain = open(b, *body);
      REQUIRE(plain.ok());
      received.push_back(std::move(plain).value());
    }
  }
  CHECK(received == sent);
}
