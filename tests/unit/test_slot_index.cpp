// Tests for actors/router/slot_index.hpp against a reference multimap: random inserts and erases
// with forced hash collisions (so probe runs form, wrap round the table and are shifted back).
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <utility>

#include "actors/router/slot_index.hpp"
#include "runtime/core/rng.hpp"

using cmesh::router::slot_index;

TEST_CASE("slot_index: finds exactly what a reference multimap holds through random inserts and erases with collisions") {
  cmesh::rng random(20261121);
  slot_index index;
  std::set<std::pair<uint64_t, uint32_t>> reference;  // (hash, slot)
  uint32_t next_slot = 0;
  for (int step = 0; step < 50000; ++step) {
    // Few distinct hashes: long collision runs. Slots are unique, as the router's are.
    const uint64_t hash = random.next() % 97;
    // Grows to about 2,000 entries, then hovers there (the table doubles, wraps and shrinks runs).
    const bool grow = reference.size() < 2000 ? random.next() % 3 != 0 : random.next() % 2 == 0;
    if (grow || reference.empty()) {
      index.insert(hash, next_slot);
      reference.emplace(hash, next_slot);
      ++next_slot;
    } else {
      auto victim = reference.lower_bound({hash, 0});
      if (victim == reference.end()) victim = reference.begin();
      CHECK(index.erase(victim->first, victim->second));
      CHECK_FALSE(index.erase(victim->first, victim->second));  // gone: a second erase finds nothing
      reference.erase(victim);
    }
    REQUIRE(index.size() == reference.size());
    if (step % 997 == 0) {
      // Every entry is found, by its own hash and its own slot only.
      for (const auto& [h, s] : reference) {
        const uint32_t want = s;
        REQUIRE(index.find(h, [&](uint32_t got) { return got == want; }) == want);
        CHECK(index.find(h + 1000, [&](uint32_t got) { return got == want; }) == slot_index::npos);
      }
    }
  }
  // Drained, the index finds nothing.
  for (const auto& [h, s] : reference) CHECK(index.erase(h, s));
  CHECK(index.size() == 0);
  CHECK(index.find(5, [](uint32_t) { return true; }) == slot_index::npos);
}
