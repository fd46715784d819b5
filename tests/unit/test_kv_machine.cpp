// Tests for actors/kv/kv_machine.hpp: the replicated key/value state machine and the registrar,
// driven command by command with explicit log indices (no Raft, no CAF).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/kv/kv_machine.hpp"
#include "messages/codec.hpp"
#include "runtime/crypto/identity.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::kv;

// A distinct 32-byte node key per n.
bytes node_key(uint8_t n) {
  bytes key(32);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(n * 31 + i);
  return key;
}

// prefix followed by n in decimal (appending avoids a g++ 12 -Wrestrict false positive that
// `"k" + std::to_string(n)` triggers).
std::string numbered(const char* prefix, uint64_t n) {
  return std::string(prefix).append(std::to_string(n));
}

const bytes alice = node_key(1);
const bytes bob = node_key(2);

std::string did_of(const bytes& key) { return did_from_node_id(node_id::from_bytes(key.data())); }

request make(op operation, std::string key, std::string value = {}) {
  request r;
  r.operation = static_cast<uint8_t>(operation);
  r.key = std::move(key);
  r.value = std::move(value);
  return r;
}

request put(std::string key, std::string value, uint64_t client = 0, uint64_t sequence = 0) {
  request r = make(op::put, std::move(key), std::move(value));
  r.client_id = client;
  r.sequence = sequence;
  return r;
}

request get(std::string key) { return make(op::get, std::move(key)); }
request del(std::string key) { return make(op::del, std::move(key)); }

request cas(std::string key, std::string value, bool expect_present, std::string expected = {}) {
  request r = make(op::cas, std::move(key), std::move(value));
  r.expect_present = expect_present;
  r.expected = std::move(expected);
  return r;
}

request with_session(request r, uint64_t client, uint64_t sequence) {
  r.client_id = client;
  r.sequence = sequence;
  return r;
}

request register_name(std::string name, std::string target) {
  return make(op::name_register, std::move(name), std::move(target));
}
request resolve(std::string name) { return make(op::name_resolve, std::move(name)); }
request transfer(std::string name, const bytes& new_owner) {
  return make(op::name_transfer, std::move(name), std::string(new_owner.begin(), new_owner.end()));
}
request release(std::string name) { return make(op::name_release, std::move(name)); }

// A machine plus the next log index, as a replica would drive it.
struct replica {
  machine sm;
  uint64_t index = 0;

  explicit replica(limits_config limits = {}) : sm(limits) {}

  response run(const request& r, const bytes& caller = alice) {
    command c;
    c.req = r;
    c.caller = caller;
    return sm.apply(++index, c);
  }
  response read(const request& r) const { return sm.read(r); }
  std::string value_of(const std::string& key) const {
    auto r = sm.read(get(key));
    return r.status == 200 ? r.value : "<absent>";
  }
};

template <class F>
bytes pack_with(F&& write) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  write(packer);
  return bytes(buffer.data(), buffer.data() + buffer.size());
}

// A hand-made snapshot holding the given [key, value] pairs in the given order, no sessions.
bytes snapshot_of(const std::vector<std::pair<std::string, std::string>>& entries,
                  uint64_t version = 1) {
  return pack_with([&](auto& p) {
    p.pack_array(4);
    p.pack(version);
    p.pack(uint64_t{10});
    p.pack_array(1);
    p.pack_array(static_cast<uint32_t>(entries.size()));
    for (const auto& [k, v] : entries) {
      p.pack_array(2);
      p.pack(k);
      p.pack(v);
    }
    p.pack_array(0);
  });
}

// Fills a replica with data, names and sessions.
void populate(replica& r) {
  REQUIRE(r.run(put("alpha", "1")).status == 200);
  REQUIRE(r.run(put("beta", std::string("\0\xff binary", 9), 7, 1)).status == 200);
  REQUIRE(r.run(with_session(cas("gamma", "3", false), 8, 4)).status == 200);
  REQUIRE(r.run(register_name("helloWorld.mcom", "fqmn://hello/world")).status == 201);
  REQUIRE(r.run(register_name("other.mcom", "fqmn://other"), bob).status == 201);
  REQUIRE(r.run(with_session(cas("gamma", "x", true, "nope"), 9, 2)).status == 409);
}

}  // namespace

// ---- plain key/value ----------------------------------------------------------------------------

TEST_CASE("kv machine put then get returns the value and del removes it") {
  replica r;
  auto written = r.run(put("k", "v"));
  CHECK(written.status == 200);
  CHECK_FALSE(written.found);
  CHECK(written.index == 1);
  auto read = r.read(get("k"));
  CHECK(read.status == 200);
  CHECK(read.found);
  CHECK(read.value == "v");
  CHECK(r.sm.size() == 1);
  auto overwritten = r.run(put("k", "w"));
  CHECK(overwritten.status == 200);
  CHECK(overwritten.found);
  CHECK(r.value_of("k") == "w");
  auto removed = r.run(del("k"));
  CHECK(removed.status == 200);
  CHECK(removed.found);
  CHECK(r.read(get("k")).status == 404);
  CHECK_FALSE(r.read(get("k")).found);
  CHECK(r.sm.size() == 0);
  CHECK(r.sm.applied_index() == 3);
}

TEST_CASE("kv machine del of an absent key is 200 with found false") {
  replica r;
  auto removed = r.run(del("missing"));
  CHECK(removed.status == 200);
  CHECK_FALSE(removed.found);
  CHECK(r.sm.size() == 0);
}

TEST_CASE("kv machine cas on a present key swaps only when the expected value matches") {
  replica r;
  r.run(put("k", "old"));
  auto mismatch = r.run(cas("k", "new", true, "other"));
  CHECK(mismatch.status == 409);
  CHECK(mismatch.found);
  CHECK(mismatch.value == "old");
  CHECK(r.value_of("k") == "old");
  auto swapped = r.run(cas("k", "new", true, "old"));
  CHECK(swapped.status == 200);
  CHECK(swapped.found);
  CHECK(r.value_of("k") == "new");
  auto must_be_absent = r.run(cas("k", "again", false));
  CHECK(must_be_absent.status == 409);
  CHECK(must_be_absent.found);
  CHECK(must_be_absent.value == "new");
  CHECK(r.value_of("k") == "new");
}

TEST_CASE("kv machine cas on an absent key creates it only when expecting absence") {
  replica r;
  auto expected_present = r.run(cas("k", "v", true, ""));
  CHECK(expected_present.status == 409);
  CHECK_FALSE(expected_present.found);
  CHECK(expected_present.value.empty());
  CHECK(r.read(get("k")).status == 404);
  auto created = r.run(cas("k", "v", false));
  CHECK(created.status == 200);
  CHECK_FALSE(created.found);
  CHECK(r.value_of("k") == "v");
  // An empty value is a value: expecting "" matches a key that holds "".
  r.run(put("empty", ""));
  CHECK(r.run(cas("empty", "filled", true, "")).status == 200);
  CHECK(r.value_of("empty") == "filled");
}

TEST_CASE("kv machine validate gives 413 over the size limits and 400 for an empty key") {
  limits_config limits;
  CHECK(machine::validate(put("", "v"), limits).status == 400);
  CHECK(machine::validate(put(std::string(1024, 'k'), "v"), limits).status == 0);
  CHECK(machine::validate(put(std::string(1025, 'k'), "v"), limits).status == 413);
  CHECK(machine::validate(put("k", std::string(64 * 1024, 'v')), limits).status == 0);
  CHECK(machine::validate(put("k", std::string(64 * 1024 + 1, 'v')), limits).status == 413);
  CHECK(machine::validate(cas("k", "v", true, std::string(64 * 1024 + 1, 'e')), limits).status ==
        413);
  request unknown = put("k", "v");
  unknown.operation = 0;
  CHECK(machine::validate(unknown, limits).status == 400);
  unknown.operation = 9;
  CHECK(machine::validate(unknown, limits).status == 400);
  CHECK(machine::validate(get("k"), limits).status == 0);
}

TEST_CASE("kv machine apply refuses invalid commands without effect") {
  limits_config limits;
  limits.key_bytes_max = 8;
  limits.value_bytes_max = 32;
  replica r(limits);
  auto too_large = r.run(put("k", std::string(33, 'v'), 5, 1));
  CHECK(too_large.status == 413);
  CHECK(too_large.index == 1);
  CHECK(r.run(put("123456789", "v")).status == 413);
  CHECK(r.run(put("", "v")).status == 400);
  CHECK(r.sm.size() == 0);
  CHECK(r.sm.sessions() == 0);
  CHECK(r.sm.applied_index() == 3);
  CHECK(r.sm.state_hash() == machine().state_hash());
  // The refused (client 5 sequence 1) did not enter the session: the same pair applies later.
  CHECK(r.run(put("k", "v", 5, 1)).status == 200);
  CHECK(r.value_of("k") == "v");
}

TEST_CASE("kv machine read answers only reads and has no effect") {
  replica r;
  r.run(put("k", "v"));
  const auto before = r.sm.state_hash();
  CHECK(r.read(put("k", "other")).status == 400);
  CHECK(r.read(del("k")).status == 400);
  CHECK(r.sm.state_hash() == before);
  CHECK(r.value_of("k") == "v");
  CHECK(r.read(get("k")).index == 0);
  // A read that went through the log is answered without effect, at its index.
  auto logged = r.run(get("k"));
  CHECK(logged.status == 200);
  CHECK(logged.value == "v");
  CHECK(logged.index == 2);
  CHECK(r.sm.state_hash() == before);
}

TEST_CASE("kv machine validate_limits refuses limits a command cannot fit") {
  CHECK(validate_limits(limits_config{}).ok());
  limits_config small_value;
  small_value.value_bytes_max = 16;
  CHECK(validate_limits(small_value).code == errc::invalid_argument);
  limits_config no_key;
  no_key.key_bytes_max = 0;
  CHECK(validate_limits(no_key).code == errc::invalid_argument);
  limits_config huge;
  huge.value_bytes_max = limits::envelope_bytes_max / 2;
  CHECK(validate_limits(huge).code == errc::invalid_argument);
  limits_config overflow;
  overflow.value_bytes_max = SIZE_MAX / 2 + 1;
  CHECK(validate_limits(overflow).code == errc::invalid_argument);
}

// ---- exactly-once -------------------------------------------------------------------------------

TEST_CASE("kv machine dedup applies a repeated write once and returns the same response") {
  replica r;
  auto first = r.run(put("x", "1", 42, 1));
  CHECK(first.status == 200);
  CHECK(first.index == 1);
  r.run(put("x", "2", 43, 1));  // another client overwrites
  auto again = r.run(put("x", "1", 42, 1));
  CHECK(again == first);  // same response, index of the first application included
  CHECK(r.value_of("x") == "2");
  CHECK(r.sm.applied_index() == 3);

  // A non-idempotent write: the retried create answers 200 again instead of 409.
  auto created = r.run(with_session(cas("y", "v", false), 42, 2));
  CHECK(created.status == 200);
  auto retried = r.run(with_session(cas("y", "v", false), 42, 2));
  CHECK(retried == created);
  CHECK(r.sm.sessions() == 2);
}

TEST_CASE("kv machine dedup refuses an older sequence without effect") {
  replica r;
  auto last = r.run(put("x", "5", 42, 5));
  REQUIRE(last.status == 200);
  const auto hash = r.sm.state_hash();
  auto stale = r.run(put("y", "3", 42, 3));
  CHECK(stale.status == 400);
  CHECK(stale.reason.find("stale sequence") != std::string::npos);
  CHECK(r.read(get("y")).status == 404);
  CHECK(r.sm.state_hash() == hash);
  // The last sequence is still answered from the cache, and a newer one (gaps allowed) applies.
  CHECK(r.run(put("x", "5", 42, 5)) == last);
  CHECK(r.run(put("x", "9", 42, 9)).status == 200);
  CHECK(r.value_of("x") == "9");
  CHECK(r.run(put("x", "5", 42, 5)).status == 400);
}

TEST_CASE("kv machine sequence 0 and client 0 are never deduplicated") {
  replica r;
  CHECK(r.run(with_session(cas("k", "v", false), 42, 0)).status == 200);
  CHECK(r.run(with_session(cas("k", "v", false), 42, 0)).status == 409);
  CHECK(r.run(with_session(cas("j", "v", false), 0, 7)).status == 200);
  CHECK(r.run(with_session(cas("j", "v", false), 0, 7)).status == 409);
  CHECK(r.run(put("k", "a", 42, 0)).status == 200);
  CHECK(r.run(put("k", "b", 42, 0)).status == 200);
  CHECK(r.value_of("k") == "b");
  CHECK(r.sm.sessions() == 0);
}

TEST_CASE("kv machine sessions are bounded and the least recently used is evicted") {
  limits_config limits;
  limits.sessions_max = 2;
  replica r(limits);
  auto c1 = r.run(with_session(cas("k1", "v", false), 1, 1));  // index 1
  auto c2 = r.run(with_session(cas("k2", "v", false), 2, 1));  // index 2
  REQUIRE(c1.status == 200);
  REQUIRE(c2.status == 200);
  CHECK(r.run(with_session(cas("k1", "v", false), 1, 1)) == c1);  // index 3: client 1 used again
  r.run(del("k1"));                                              // index 4
  r.run(del("k2"));                                              // index 5
  r.run(put("k3", "v", 3, 1));                                   // index 6: evicts client 2
  CHECK(r.sm.sessions() == 2);
  // Client 1 is remembered: its retry is answered from the cache and has no effect.
  CHECK(r.run(with_session(cas("k1", "v", false), 1, 1)) == c1);
  CHECK(r.read(get("k1")).status == 404);
  // Client 2 was evicted: its retry applies again (the documented bounded-session trade-off).
  auto c2_again = r.run(with_session(cas("k2", "v", false), 2, 1));
  CHECK(c2_again.status == 200);
  CHECK(c2_again.index == 8);
  CHECK(r.value_of("k2") == "v");
  CHECK(r.sm.sessions() == 2);
}

TEST_CASE("kv machine with sessions_max 0 keeps no sessions") {
  limits_config limits;
  limits.sessions_max = 0;
  replica r(limits);
  CHECK(r.run(with_session(cas("k", "v", false), 1, 1)).status == 200);
  CHECK(r.run(with_session(cas("k", "v", false), 1, 1)).status == 409);
  CHECK(r.sm.sessions() == 0);
}

// ---- hashing and snapshots ----------------------------------------------------------------------

TEST_CASE("kv machine state hash does not depend on the order of operations") {
  replica a;
  a.run(put("a", "1"));
  a.run(put("b", "2"));
  a.run(put("c", "3"));
  replica b;
  b.run(put("c", "3"));
  b.run(put("x", "gone"));
  b.run(put("b", "old"));
  b.run(put("a", "1", 5, 1));
  b.run(del("x"));
  b.run(put("b", "2"));
  CHECK(a.sm.state_hash() == b.sm.state_hash());
  CHECK(a.sm.applied_index() != b.sm.applied_index());

  replica c;
  c.run(put("a", "1"));
  c.run(put("b", "2"));
  c.run(put("c", "4"));
  CHECK(c.sm.state_hash() != a.sm.state_hash());
  replica d;  // the same bytes split differently between key and value
  d.run(put("a", "1"));
  d.run(put("b", "2"));
  d.run(put("c3", ""));
  CHECK(d.sm.state_hash() != a.sm.state_hash());
  replica emptied;
  emptied.run(put("a", "1"));
  emptied.run(del("a"));
  CHECK(emptied.sm.state_hash() == machine().state_hash());
}

TEST_CASE("kv machine snapshot and restore round trip") {
  replica original;
  populate(original);
  const bytes image = original.sm.snapshot();
  machine restored;
  REQUIRE(restored.restore(image).ok());
  CHECK(restored.state_hash() == original.sm.state_hash());
  CHECK(restored.size() == original.sm.size());
  CHECK(restored.applied_index() == original.sm.applied_index());
  CHECK(restored.sessions() == original.sm.sessions());
  CHECK(restored.snapshot() == image);
  for (const char* key : {"alpha", "beta", "gamma", "missing"})
    CHECK(restored.read(get(key)) == original.read(get(key)));
  for (const char* name : {"helloWorld.mcom", "other.mcom", "absent.mcom"})
    CHECK(restored.read(resolve(name)) == original.read(resolve(name)));

  // Sessions survived: both machines answer a retry from the cache, with the same response.
  command retry;
  retry.req = with_session(cas("gamma", "3", false), 8, 4);
  retry.caller = alice;
  auto from_original = original.sm.apply(original.index + 1, retry);
  auto from_restored = restored.apply(original.index + 1, retry);
  CHECK(from_original.status == 200);
  CHECK(from_original == from_restored);
  CHECK(restored.snapshot() == original.sm.snapshot());
}

TEST_CASE("kv machine restore of truncated or garbage bytes errors without changing state") {
  replica source;
  populate(source);
  const bytes image = source.sm.snapshot();

  replica target;
  target.run(put("keep", "me", 3, 1));
  const auto hash = target.sm.state_hash();
  const auto before = target.sm.snapshot();
  auto unchanged = [&] {
    CHECK(target.sm.state_hash() == hash);
    CHECK(target.sm.snapshot() == before);
  };

  for (size_t length = 0; length < image.size(); ++length) {
    bytes prefix(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(length));
    auto s = target.sm.restore(prefix);
    CHECK_MESSAGE(!s.ok(), "prefix of " << length << " bytes was accepted");
  }
  unchanged();

  bytes trailing = image;
  trailing.push_back(0);
  CHECK(target.sm.restore(trailing).code == errc::malformed);
  CHECK(target.sm.restore(bytes{0xc1}).code == errc::malformed);
  CHECK(target.sm.restore(bytes{}).code == errc::truncated);
  bytes noise(200);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(i * 151 + 7);
  CHECK_FALSE(target.sm.restore(noise).ok());
  unchanged();

  // Well-formed msgpack of the wrong shape.
  CHECK(target.sm.restore(pack_with([](auto& p) { p.pack(uint64_t{1}); })).code ==
        errc::malformed);
  CHECK(target.sm.restore(pack_with([](auto& p) {
          p.pack_array(1);
          p.pack(uint64_t{1});
        })).code == errc::malformed);
  CHECK(target.sm.restore(snapshot_of({{"a", "1"}}, 2)).code == errc::unsupported_version);
  CHECK(target.sm.restore(snapshot_of({{"b", "1"}, {"a", "2"}})).code == errc::malformed);
  CHECK(target.sm.restore(snapshot_of({{"a", "1"}, {"a", "2"}})).code == errc::malformed);
  CHECK(target.sm.restore(snapshot_of({{"", "1"}})).code == errc::malformed);
  CHECK(target.sm.restore(snapshot_of({{"name/x.mcom", "not a record"}})).code ==
        errc::malformed);
  CHECK(target.sm.restore(snapshot_of({{"name/bad..mcom", "x"}})).code == errc::malformed);
  CHECK(target.sm.restore(pack_with([](auto& p) {
          p.pack_array(4);
          p.pack(uint64_t{1});
          p.pack(uint64_t{10});
          p.pack_array(0);
          p.pack_array(1);
          p.pack_array(1);
          p.pack_array(4);
          p.pack(uint64_t{5});
          p.pack(uint64_t{1});
          p.pack(uint64_t{11});  // used after the applied index
          p.pack(response{});
        })).code == errc::malformed);
  unchanged();

  // A valid hand-made snapshot is accepted (so the failures above are about their defects).
  CHECK(target.sm.restore(snapshot_of({{"a", "1"}, {"b", "2"}})).ok());
  CHECK(target.sm.applied_index() == 10);
  CHECK(target.sm.size() == 2);
  CHECK(target.sm.sessions() == 0);
}

TEST_CASE("kv machine snapshot of more keys than one decoded array may hold restores") {
  replica r;
  const size_t keys = limits::decode_elements_max + 1000;
  for (size_t i = 0; i < keys; ++i) r.run(put(numbered("k", i), "v"));
  REQUIRE(r.sm.size() == keys);
  machine restored;
  auto s = restored.restore(r.sm.snapshot());
  REQUIRE_MESSAGE(s.ok(), s.describe());
  CHECK(restored.size() == keys);
  CHECK(restored.state_hash() == r.sm.state_hash());
}

TEST_CASE("kv machine restore trims sessions to this machine's bound oldest first") {
  replica source;
  source.run(put("a", "1", 1, 1));
  source.run(put("b", "1", 2, 1));
  source.run(put("c", "1", 3, 1));
  limits_config limits;
  limits.sessions_max = 2;
  replica small(limits);
  REQUIRE(small.sm.restore(source.sm.snapshot()).ok());
  CHECK(small.sm.sessions() == 2);
  small.index = small.sm.applied_index();
  CHECK(small.run(put("a", "1", 1, 1)).index == 4);  // client 1 was evicted: applied anew
  CHECK(small.run(put("c", "1", 3, 1)).index == 3);  // client 3 kept: cached response
}

TEST_CASE("kv machine replicas applying the same commands agree and a restored one catches up") {
  // A deterministic mixed workload: two replicas apply it all; a third restores a snapshot
  // taken half way and applies the rest. All three end with the same snapshot bytes.
  std::vector<command> log;
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int i = 0; i < 400; ++i) {
    command c;
    const auto key = numbered("k", next() % 20);
    const auto name = numbered("n", next() % 5) + ".mcom";
    switch (next() % 7) {
      case 0: c.req = put(key, std::to_string(next() % 3)); break;
      case 1: c.req = del(key); break;
      case 2: c.req = cas(key, "c", next() % 2 == 0, std::to_string(next() % 3)); break;
      case 3: c.req = register_name(name, numbered("t", next() % 3)); break;
      case 4: c.req = transfer(name, node_key(static_cast<uint8_t>(next() % 3))); break;
      case 5: c.req = release(name); break;
      default: c.req = put(key, "s"); break;
    }
    c.req.client_id = next() % 4;
    c.req.sequence = next() % 6;
    c.caller = node_key(static_cast<uint8_t>(next() % 3));
    log.push_back(std::move(c));
  }
  limits_config limits;
  limits.sessions_max = 3;
  machine a(limits), b(limits), late(limits);
  size_t created = 0, refused = 0, deduplicated = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    const uint64_t index = i + 1;
    auto answer = a.apply(index, log[i]);
    CHECK(b.apply(index, log[i]) == answer);
    if (index > log.size() / 2) CHECK(late.apply(index, log[i]) == answer);
    if (index == log.size() / 2) REQUIRE(late.restore(a.snapshot()).ok());
    created += answer.status == 201;
    refused += answer.status == 403;
    deduplicated += answer.index != index;
    CHECK(a.state_hash() == b.state_hash());
  }
  CHECK(a.snapshot() == b.snapshot());
  CHECK(late.snapshot() == a.snapshot());
  CHECK(late.state_hash() == a.state_hash());
  // The workload exercised what it is meant to.
  CHECK(created > 0);
  CHECK(refused > 0);
  CHECK(deduplicated > 0);
}

// ---- registrar ----------------------------------------------------------------------------------

TEST_CASE("kv registrar is first come first served and 409 names the owner") {
  replica r;
  auto created = r.run(register_name("helloWorld.mcom", "fqmn://alice/hello"), alice);
  CHECK(created.status == 201);
  auto taken = r.run(register_name("helloWorld.mcom", "fqmn://bob/hello"), bob);
  CHECK(taken.status == 409);
  CHECK(taken.reason.find("name taken") != std::string::npos);
  CHECK(taken.reason.find(did_of(alice)) != std::string::npos);
  // Names compare case-insensitively.
  CHECK(r.run(register_name("HELLOWORLD.MCOM", "fqmn://bob/hello"), bob).status == 409);
  CHECK(r.run(register_name("helloWorld.mcom", "fqmn://alice/other"), alice).status == 409);
  CHECK(r.read(resolve("helloworld.mcom")).value == "fqmn://alice/hello");
  CHECK(r.run(register_name("helloWorldExample.mcom", "fqmn://bob/x"), bob).status == 201);
  CHECK(r.sm.size() == 2);
}

TEST_CASE("kv registrar resolve returns the target or 404") {
  replica r;
  r.run(register_name("helloWorld.mcom", "fqmn://alice/hello"));
  auto found = r.read(resolve("helloWorld.mcom"));
  CHECK(found.status == 200);
  CHECK(found.found);
  CHECK(found.value == "fqmn://alice/hello");
  auto missing = r.read(resolve("nobody.mcom"));
  CHECK(missing.status == 404);
  CHECK_FALSE(missing.found);
  CHECK(r.read(resolve("bad..mcom")).status == 400);
}

TEST_CASE("kv registrar transfer is allowed only to the owner") {
  replica r;
  r.run(register_name("helloWorld.mcom", "fqmn://hello"), alice);
  CHECK(r.run(transfer("helloWorld.mcom", bob), bob).status == 403);
  CHECK(r.run(transfer("nobody.mcom", bob), alice).status == 404);
  CHECK(r.run(transfer("helloWorld.mcom", bob), alice).status == 200);
  // Now bob owns it: alice may neither transfer nor release it.
  CHECK(r.run(transfer("helloWorld.mcom", alice), alice).status == 403);
  CHECK(r.run(release("helloWorld.mcom"), alice).status == 403);
  auto taken = r.run(register_name("helloWorld.mcom", "fqmn://again"), alice);
  CHECK(taken.status == 409);
  CHECK(taken.reason.find(did_of(bob)) != std::string::npos);
  CHECK(r.read(resolve("helloWorld.mcom")).value == "fqmn://hello");  // target unchanged
  request short_key = transfer("helloWorld.mcom", bob);
  short_key.value.pop_back();
  CHECK(r.run(short_key, bob).status == 400);
}

TEST_CASE("kv registrar release is allowed only to the owner and frees the name") {
  replica r;
  r.run(register_name("helloWorld.mcom", "fqmn://alice"), alice);
  CHECK(r.run(release("helloWorld.mcom"), bob).status == 403);
  CHECK(r.read(resolve("helloWorld.mcom")).status == 200);
  CHECK(r.run(release("nobody.mcom"), alice).status == 404);
  CHECK(r.run(release("helloWorld.mcom"), alice).status == 200);
  CHECK(r.read(resolve("helloWorld.mcom")).status == 404);
  CHECK(r.sm.size() == 0);
  CHECK(r.sm.state_hash() == machine().state_hash());
  CHECK(r.run(release("helloWorld.mcom"), alice).status == 404);
  CHECK(r.run(register_name("helloWorld.mcom", "fqmn://bob"), bob).status == 201);
  CHECK(r.read(resolve("helloWorld.mcom")).value == "fqmn://bob");
  auto taken = r.run(register_name("helloWorld.mcom", "fqmn://alice"), alice);
  CHECK(taken.status == 409);
  CHECK(taken.reason.find(did_of(bob)) != std::string::npos);
}

TEST_CASE("kv registrar name syntax errors name the position of the first bad character") {
  limits_config limits;
  auto reason_of = [&](const std::string& name) {
    return machine::validate(register_name(name, "fqmn://t"), limits).reason;
  };
  auto position_of = [&](const std::string& name) -> long {
    auto r = machine::validate(register_name(name, "fqmn://t"), limits);
    if (r.status == 0) return -1;
    REQUIRE(r.status == 400);
    const std::string marker = "position ";
    auto at = r.reason.find(marker);
    REQUIRE(at != std::string::npos);
    return std::stol(r.reason.substr(at + marker.size()));
  };
  CHECK(position_of("a.mcom") == -1);
  CHECK(position_of("helloWorld.mcom") == -1);
  CHECK(position_of("helloWorldExample.mcom") == -1);
  CHECK(position_of("sub.hello-world.mcom") == -1);
  CHECK(position_of("x.MCOM") == -1);
  CHECK(position_of("bad..mcom") == 4);
  CHECK(position_of(".a.mcom") == 0);
  CHECK(position_of("-x.mcom") == 0);
  CHECK(position_of("x-.mcom") == 1);
  CHECK(position_of("a.-b.mcom") == 2);
  CHECK(position_of("foo.com") == 4);
  CHECK(position_of("foo") == 3);
  CHECK(position_of("mcom") == 4);
  CHECK(position_of("foo.mcom.") == 8);
  CHECK(position_of("foo.mcom-") == 8);
  CHECK(position_of("a b.mcom") == 1);
  CHECK(position_of("a_b.mcom") == 1);
  CHECK(position_of("caf\xc3\xa9.mcom") == 3);
  CHECK(position_of(std::string(63, 'a') + ".mcom") == -1);
  CHECK(position_of(std::string(64, 'a') + ".mcom") == 63);
  const std::string label(63, 'a');
  const std::string longest = label + "." + label + "." + label + "." + std::string(56, 'b') + ".mcom";
  REQUIRE(longest.size() == 253);
  CHECK(position_of(longest) == -1);
  CHECK(position_of("c." + longest) == 253);
  CHECK(reason_of("c." + longest).find("longer than 253") != std::string::npos);
  CHECK(reason_of("bad..mcom").find("empty label") != std::string::npos);
  CHECK(reason_of("a_b.mcom").find("'_'") != std::string::npos);
  // apply refuses bad names the same way, without effect.
  replica r;
  auto refused = r.run(register_name("foo.com", "fqmn://t"));
  CHECK(refused.status == 400);
  CHECK(refused.reason.find("position 4") != std::string::npos);
  CHECK(r.run(release("-x.mcom")).status == 400);
  CHECK(r.sm.size() == 0);
}

TEST_CASE("kv registrar keys under name/ are refused for plain writes") {
  replica r;
  r.run(register_name("helloWorld.mcom", "fqmn://hello"), alice);
  const auto hash = r.sm.state_hash();
  CHECK(r.run(put("name/helloworld.mcom", "mine"), bob).status == 400);
  CHECK(r.run(put("name/new.mcom", "mine"), bob).status == 400);
  CHECK(r.run(del("name/helloworld.mcom"), bob).status == 400);
  CHECK(r.run(cas("name/helloworld.mcom", "x", false), bob).status == 400);
  CHECK(r.sm.state_hash() == hash);
  CHECK(r.read(resolve("helloWorld.mcom")).value == "fqmn://hello");
  // A plain get reads the raw record.
  auto raw = r.read(get("name/helloworld.mcom"));
  REQUIRE(raw.status == 200);
  auto record = unpack_value<name_record>(reinterpret_cast<const uint8_t*>(raw.value.data()),
                                          raw.value.size());
  REQUIRE(record.ok());
  CHECK(record->owner == alice);
  CHECK(record->target == "fqmn://hello");
  // Keys that merely look similar are ordinary keys.
  CHECK(r.run(put("names/x", "v")).status == 200);
  CHECK(r.run(put("Name/x", "v")).status == 200);
}

TEST_CASE("kv registrar checks targets and callers") {
  replica r;
  CHECK(r.run(register_name("a.mcom", "")).status == 400);
  CHECK(r.run(register_name("a.mcom", std::string(1025, 't'))).status == 413);
  CHECK(r.run(register_name("a.mcom", std::string(1024, 't'))).status == 201);
  CHECK(r.run(register_name("b.mcom", "fqmn://b"), bytes{}).status == 400);
  CHECK(r.run(register_name("b.mcom", "fqmn://b"), bytes(31, 1)).status == 400);
  CHECK(r.run(release("a.mcom"), bytes{}).status == 400);
  CHECK(r.read(resolve("b.mcom")).status == 404);
  CHECK(r.sm.size() == 1);
}

TEST_CASE("kv registrar writes are deduplicated like other writes") {
  replica r;
  auto created = r.run(with_session(register_name("a.mcom", "fqmn://a"), 11, 1), alice);
  CHECK(created.status == 201);
  CHECK(r.run(with_session(register_name("a.mcom", "fqmn://a"), 11, 1), alice) == created);
  CHECK(r.run(with_session(register_name("a.mcom", "fqmn://a"), 12, 1), alice).status == 409);
}
