// Tests for runtime/core/flat_map.hpp: ordered iteration, lookup, insert, erase, positional access.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "runtime/core/flat_map.hpp"
#include "runtime/core/rng.hpp"

namespace {

using cmesh::flat_map;

std::vector<int> keys_of(const flat_map<int, std::string>& map) {
  std::vector<int> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  return keys;
}

}  // namespace

TEST_CASE("flat_map: iteration is in key order whatever the insertion order") {
  flat_map<int, std::string> map;
  for (int key : {42, 7, 19, -3, 100, 0}) map.emplace(key, std::to_string(key));
  CHECK(keys_of(map) == std::vector<int>{-3, 0, 7, 19, 42, 100});
  CHECK(map.size() == 6);
  CHECK_FALSE(map.empty());
  for (const auto& [key, value] : map) CHECK(value == std::to_string(key));
}

TEST_CASE("flat_map: find returns the entry or end") {
  flat_map<int, std::string> map;
  map.emplace(5, "five");
  map.emplace(9, "nine");
  auto it = map.find(9);
  REQUIRE(it != map.end());
  CHECK(it->first == 9);
  CHECK(it->second == "nine");
  CHECK(map.find(6) == map.end());   // between two keys
  CHECK(map.find(1) == map.end());   // before the first
  CHECK(map.find(10) == map.end());  // after the last
  const auto& constant = map;
  REQUIRE(constant.find(5) != constant.end());
  CHECK(constant.find(5)->second == "five");
  CHECK(constant.find(7) == constant.end());
}

TEST_CASE("flat_map: count and at") {
  flat_map<int, std::string> map;
  CHECK(map.count(1) == 0);
  map.emplace(1, "one");
  CHECK(map.count(1) == 1);
  CHECK(map.count(2) == 0);
  map.at(1) = "uno";
  const auto& constant = map;
  CHECK(constant.at(1) == "uno");
}

TEST_CASE("flat_map: emplace of an existing key keeps the old value") {
  flat_map<int, std::string> map;
  auto [first, inserted] = map.emplace(3, "old");
  CHECK(inserted);
  CHECK(first->second == "old");
  auto [again, inserted_again] = map.emplace(3, "new");
  CHECK_FALSE(inserted_again);
  CHECK(again->first == 3);
  CHECK(again->second == "old");
  CHECK(map.size() == 1);
  CHECK(map.at(3) == "old");
}

TEST_CASE("flat_map: emplace returns an iterator to the new entry") {
  flat_map<int, std::string> map;
  map.emplace(10, "ten");
  map.emplace(30, "thirty");
  auto [it, inserted] = map.emplace(20, "twenty");
  CHECK(inserted);
  CHECK(it->first == 20);
  CHECK(it - map.begin() == 1);
}

TEST_CASE("flat_map: erase removes one key and reports how many") {
  flat_map<int, std::string> map;
  for (int key : {1, 2, 3, 4}) map.emplace(key, "x");
  CHECK(map.erase(2) == 1);
  CHECK(map.erase(2) == 0);
  CHECK(map.erase(99) == 0);
  CHECK(keys_of(map) == std::vector<int>{1, 3, 4});
  CHECK(map.find(2) == map.end());
  CHECK(map.erase(1) == 1);
  CHECK(map.erase(4) == 1);
  CHECK(map.erase(3) == 1);
  CHECK(map.empty());
}

TEST_CASE("flat_map: nth gives the entry at a position in key order") {
  flat_map<int, std::string> map;
  for (int key : {50, 10, 40, 20, 30}) map.emplace(key, std::to_string(key * 2));
  CHECK(map.nth(0).first == 10);
  CHECK(map.nth(2).first == 30);
  CHECK(map.nth(4).first == 50);
  CHECK(map.nth(4).second == "100");
  map.nth(1).second = "changed";
  CHECK(map.at(20) == "changed");
  const auto& constant = map;
  CHECK(constant.nth(3).first == 40);
}

TEST_CASE("flat_map: clear empties the map") {
  flat_map<int, std::string> map;
  map.emplace(1, "a");
  map.emplace(2, "b");
  map.clear();
  CHECK(map.empty());
  CHECK(map.size() == 0);
  CHECK(map.begin() == map.end());
  CHECK(map.find(1) == map.end());
}

TEST_CASE("flat_map: agrees with std::map over random operations") {
  flat_map<int, std::string> map;
  std::map<int, std::string> reference;
  cmesh::rng random(12345);
  for (int step = 0; step < 5000; ++step) {
    int key = static_cast<int>(random.below(200));
    switch (random.below(3)) {
      case 0: {
        auto value = std::to_string(step);
        bool inserted = map.emplace(key, value).second;
        CHECK(inserted == reference.emplace(key, value).second);
        break;
      }
      case 1: CHECK(map.erase(key) == reference.erase(key)); break;
      default: CHECK(map.count(key) == reference.count(key)); break;
    }
  }
  REQUIRE(map.size() == reference.size());
  size_t index = 0;
  for (const auto& [key, value] : reference) {
    CHECK(map.nth(index).first == key);
    CHECK(map.nth(index).second == value);
    ++index;
  }
}
