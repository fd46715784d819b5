// Tests for actors/events/subject: subject, pattern and queue group validation, the matching rule
// (a table of cases), and the token trie checked against the rule on seeded random patterns.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "actors/events/subject.hpp"
#include "runtime/core/rng.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::events;

std::vector<uint64_t> matches(const subject_index& index, const std::string& subject) {
  std::vector<uint64_t> out;
  index.match(subject, out);
  return out;
}

}  // namespace

TEST_CASE("events subjects: publish subjects are dotted non-empty tokens without wildcards") {
  for (const char* good : {"a", "a.b", "orders.eu.created", "_INBOX.abc.1", "a-b_c.D9", "é.ü"})
    CHECK_MESSAGE(validate_subject(good).ok(), good);
  const char* bad[] = {
      "",         // empty
      ".a",       // leading dot: empty token
      "a.",       // trailing dot
      "a..b",     // doubled dot
      ".",        // only a dot
      "a b",      // space
      "a\tb",     // tab
      "a\r\nb",   // line break
      "a\x01.b",  // control character
      "a.*",      // wildcard
      "a.>",      // wildcard
      "a*.b",     // wildcard inside a token (refused in a publish subject)
      "a.b>",
  };
  for (const char* subject : bad) {
    auto s = validate_subject(subject);
    CHECK_MESSAGE(s.code == errc::invalid_argument, subject);
  }
  CHECK(validate_subject(std::string(subject_chars_max, 'a')).ok());
  CHECK(validate_subject(std::string(subject_chars_max + 1, 'a')).code == errc::invalid_argument);
  std::string tokens = "t";
  for (size_t i = 1; i < subject_tokens_max; ++i) tokens += ".t";
  CHECK(validate_subject(tokens).ok());
  CHECK(validate_subject(tokens + ".t").code == errc::invalid_argument);
}

TEST_CASE("events subjects: patterns allow whole-token wildcards and '>' only last") {
  for (const char* good : {"a", "*", ">", "a.*", "a.>", "*.b.>", "*.*.*", "a.*.c"})
    CHECK_MESSAGE(validate_pattern(good).ok(), good);
  for (const char* bad : {"", "a.>.b", ">.a", "a*", "a.b*", "*a.b", "a.>>", "a.**", "a..*",
                          "a.", "a .b", "> "})
    CHECK_MESSAGE(validate_pattern(bad).code == errc::invalid_argument, bad);
  CHECK(has_wildcard("a.*"));
  CHECK(has_wildcard(">"));
  CHECK_FALSE(has_wildcard("a.b"));
}

TEST_CASE("events subjects: queue group names") {
  CHECK(validate_queue_group("workers").ok());
  CHECK(validate_queue_group("w-1_x").ok());
  CHECK(validate_queue_group(std::string(queue_group_chars_max, 'q')).ok());
  for (const char* bad : {"", "a.b", "a b", "*", ">", "a*"})
    CHECK_MESSAGE(validate_queue_group(bad).code == errc::invalid_argument, bad);
  CHECK(validate_queue_group(std::string(queue_group_chars_max + 1, 'q')).code ==
        errc::invalid_argument);
}

TEST_CASE("events subjects: the matching rule") {
  struct row {
    const char* pattern;
    const char* subject;
    bool matches;
  };
  const row table[] = {
      {"a", "a", true},
      {"a", "b", false},
      {"a", "a.b", false},
      {"a.b", "a", false},
      {"*", "a", true},
      {"*", "a.b", false},      // '*' is exactly one token
      {"a.*", "a", false},      // ... not zero
      {"a.*", "a.b", true},
      {"a.*", "a.b.c", false},
      {"*.b", "a.b", true},
      {"*.b", "a.c", false},
      {"a.*.c", "a.x.c", true},
      {"a.*.c", "a.x.y.c", false},
      {"*.*", "a.b", true},
      {"*.*", "a", false},
      {">", "a", true},
      {">", "a.b.c", true},
      {"a.>", "a", false},      // '>' needs at least one token
      {"a.>", "a.b", true},
      {"a.>", "a.b.c.d", true},
      {"a.>", "b.c", false},
      {"a.b.>", "a.b", false},
      {"*.>", "a", false},
      {"*.>", "a.b", true},
      {"a.*.>", "a.b.c", true},
      {"a.*.>", "a.b", false},
      {"orders.*.created", "orders.eu.created", true},
      {"orders.*.created", "orders.eu.shipped", false},
      {"A", "a", false},        // case-sensitive
  };
  for (const auto& r : table) {
    INFO(r.pattern, " vs ", r.subject);
    CHECK(pattern_matches(r.pattern, r.subject) == r.matches);
    subject_index index;
    index.insert(r.pattern, 7);
    CHECK(matches(index, r.subject) == (r.matches ? std::vector<uint64_t>{7} : std::vector<uint64_t>{}));
  }
}

TEST_CASE("events subject index: ascending unique ids whatever the insertion order") {
  subject_index index;
  CHECK(index.insert("a.>", 30));
  CHECK(index.insert("a.b", 10));
  CHECK(index.insert("*.b", 20));
  CHECK(index.insert(">", 5));
  CHECK(index.insert("a.b", 40));
  CHECK(index.insert("a.*", 10));  // same id under a second pattern: reported once
  CHECK_FALSE(index.insert("a.b", 10));
  CHECK(index.size() == 6);
  CHECK(matches(index, "a.b") == std::vector<uint64_t>{5, 10, 20, 30, 40});
  CHECK(matches(index, "a.c") == std::vector<uint64_t>{5, 10, 30});
  CHECK(matches(index, "a") == std::vector<uint64_t>{5});
  CHECK(matches(index, "x.y.z") == std::vector<uint64_t>{5});
  // Ids already in the output are left alone; new ones are sorted after them.
  std::vector<uint64_t> out{99};
  index.match("z.b", out);
  CHECK(out == std::vector<uint64_t>{99, 5, 20});
}

TEST_CASE("events subject index: erase removes one pair and prunes empty nodes") {
  subject_index index;
  const size_t empty_nodes = index.node_count();
  index.insert("a.b.c", 1);
  index.insert("a.b.>", 2);
  index.insert("a.*.c", 3);
  CHECK(matches(index, "a.b.c") == std::vector<uint64_t>{1, 2, 3});
  CHECK_FALSE(index.erase("a.b.c", 2));  // wrong pattern for this id
  CHECK_FALSE(index.erase("x.y", 1));    // unknown pattern
  CHECK(index.erase("a.b.>", 2));
  CHECK(matches(index, "a.b.c") == std::vector<uint64_t>{1, 3});
  CHECK(matches(index, "a.b.d").empty());
  CHECK(index.erase("a.b.c", 1));
  CHECK(index.erase("a.*.c", 3));
  CHECK(index.empty());
  CHECK(index.node_count() == empty_nodes);
}

TEST_CASE("events subject index: agrees with the matching rule on seeded random patterns") {
  // Small alphabets so patterns and subjects collide often.
  rng random(20240601);
  const char* words[] = {"a", "b", "c"};
  auto random_subject = [&](size_t tokens_max) {
    std::string s;
    const size_t n = 1 + random.below(tokens_max);
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) s += '.';
      s += words[random.below(3)];
    }
    return s;
  };
  auto random_pattern = [&] {
    std::string p;
    const size_t n = 1 + random.below(4);
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) p += '.';
      const auto roll = random.below(10);
      if (roll < 2) p += '*';
      else if (roll < 3 && i + 1 == n) p += '>';
      else p += words[random.below(3)];
    }
    return p;
  };
  for (int round = 0; round < 20; ++round) {
    subject_index index;
    std::vector<std::pair<std::string, uint64_t>> stored;
    for (uint64_t id = 1; id <= 60; ++id) {
      auto p = random_pattern();
      REQUIRE(validate_pattern(p).ok());
      if (index.insert(p, id)) stored.emplace_back(p, id);
    }
    // Remove a third, so pruning is exercised too.
    for (size_t i = 0; i < stored.size(); i += 3) REQUIRE(index.erase(stored[i].first, stored[i].second));
    std::vector<std::pair<std::string, uint64_t>> kept;
    for (size_t i = 0; i < stored.size(); ++i)
      if (i % 3 != 0) kept.push_back(stored[i]);
    for (int probe = 0; probe < 100; ++probe) {
      const auto subject = random_subject(5);
      std::set<uint64_t> expected;
      for (const auto& [p, id] : kept)
        if (pattern_matches(p, subject)) expected.insert(id);
      CHECK(matches(index, subject) == std::vector<uint64_t>(expected.begin(), expected.end()));
    }
  }
}
