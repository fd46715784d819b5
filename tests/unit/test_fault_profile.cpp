// Tests for sim/model/fault_profile.hpp: the parsers behind `cmesh sim` fault options.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sim/model/fault_profile.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::sim;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

template <class T>
void check_error_mentions(const result<T>& parsed, const std::string& offending) {
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.err().code == errc::invalid_argument);
  CHECK(contains(parsed.err().message, offending));
}

}  // namespace

// ---- durations ---------------------------------------------------------------------------------

TEST_CASE("fault profile: durations in every unit") {
  struct row {
    const char* text;
    int64_t us;
  };
  for (auto [text, us] : {row{"250ms", 250000}, row{"10s", 10000000}, row{"2m", 120000000},
                          row{"2min", 120000000}, row{"1h", 3600000000}, row{"1500us", 1500},
                          row{"42", 42000}, row{"0", 0}, row{"0s", 0}, row{"1.5s", 1500000},
                          row{"0.25ms", 250}, row{"2.5", 2500}, row{".5s", 500000}}) {
    CAPTURE(text);
    auto parsed = parse_duration_us(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == us);
  }
}

TEST_CASE("fault profile: fractional microseconds round to nearest") {
  auto up = parse_duration_us("1.6us");
  REQUIRE(up.ok());
  CHECK(*up == 2);
  auto down = parse_duration_us("1.4us");
  REQUIRE(down.ok());
  CHECK(*down == 1);
}

TEST_CASE("fault profile: bad durations name the text") {
  for (std::string text : {"", "s", "ms", "abc", "10x", "10 s", "10S", "-5s", "1..2s", ".",
                           "5sec", "1e3", "0x10", "10s5"}) {
    CAPTURE(text);
    auto parsed = parse_duration_us(text);
    check_error_mentions(parsed, "'" + text + "'");
    CHECK(contains(parsed.err().message, "not a duration"));
  }
}

TEST_CASE("fault profile: a duration too large for int64 microseconds is an error") {
  // 10^13 hours is 3.6e22 us, far beyond int64: it must not wrap to a negative duration.
  auto parsed = parse_duration_us("10000000000000h");
  check_error_mentions(parsed, "'10000000000000h'");
  auto infinite = parse_duration_us(std::string(400, '9'));  // strtod gives inf
  REQUIRE_FALSE(infinite.ok());
  auto largest = parse_duration_us("2000000h");  // 7.2e15 us: fine
  REQUIRE(largest.ok());
  CHECK(*largest == int64_t{2000000} * 3600 * 1000000);
}

TEST_CASE("fault profile: format_duration_us picks the largest exact unit") {
  CHECK(format_duration_us(0) == "0s");
  CHECK(format_duration_us(10000000) == "10s");
  CHECK(format_duration_us(120000000) == "120s");
  CHECK(format_duration_us(250000) == "250ms");
  CHECK(format_duration_us(1500000) == "1500ms");
  CHECK(format_duration_us(1500) == "1500us");
  CHECK(format_duration_us(1) == "1us");
}

TEST_CASE("fault profile: formatted durations parse back to the same value") {
  for (int64_t us : {int64_t{0}, int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{1001},
                     int64_t{250000}, int64_t{1500000}, int64_t{3600000000}, int64_t{7777777}}) {
    CAPTURE(us);
    auto text = format_duration_us(us);
    auto parsed = parse_duration_us(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == us);
  }
}

// ---- node sets ---------------------------------------------------------------------------------

TEST_CASE("fault profile: node sets with ranges and single nodes") {
  auto parsed = parse_node_set("0-4,7,9-10", 11);
  REQUIRE(parsed.ok());
  CHECK(*parsed == std::vector<uint32_t>{0, 1, 2, 3, 4, 7, 9, 10});
  auto single = parse_node_set("3", 4);
  REQUIRE(single.ok());
  CHECK(*single == std::vector<uint32_t>{3});
  auto one_range = parse_node_set("2-2", 4);
  REQUIRE(one_range.ok());
  CHECK(*one_range == std::vector<uint32_t>{2});
}

TEST_CASE("fault profile: node sets come back sorted and without duplicates") {
  auto parsed = parse_node_set("9,1-3,2,0,3-4,9", 10);
  REQUIRE(parsed.ok());
  CHECK(*parsed == std::vector<uint32_t>{0, 1, 2, 3, 4, 9});
}

TEST_CASE("fault profile: node sets reject nodes that do not exist") {
  auto past_end = parse_node_set("0-10", 10);
  check_error_mentions(past_end, "'0-10'");
  CHECK(contains(past_end.err().message, "0-9"));
  auto single = parse_node_set("1,10", 10);
  check_error_mentions(single, "'10'");
  auto reversed = parse_node_set("5-2", 10);
  check_error_mentions(reversed, "'5-2'");
}

TEST_CASE("fault profile: node sets reject malformed items") {
  struct row {
    const char* text;
    const char* offending;
  };
  for (auto [text, offending] : {row{"", "''"}, row{"a", "'a'"}, row{"1,,2", "''"},
                                 row{"1,", "''"}, row{",1", "''"}, row{"-3", "''"},
                                 row{"3-", "''"}, row{"1-x", "'x'"}, row{"1 ,2", "'1 '"},
                                 row{"+1", "'+1'"}, row{"1-2-3", "'2-3'"}}) {
    CAPTURE(text);
    auto parsed = parse_node_set(text, 10);
    check_error_mentions(parsed, offending);
    CHECK(contains(parsed.err().message, "node index"));
  }
}

// ---- partitions --------------------------------------------------------------------------------

TEST_CASE("fault profile: two-way partition between two sets") {
  auto parsed = parse_partition("10s-20s:0-4/5-9", 10);
  REQUIRE(parsed.ok());
  CHECK(parsed->start_us == 10000000);
  CHECK(parsed->end_us == 20000000);
  CHECK(parsed->from_side == std::vector<uint32_t>{0, 1, 2, 3, 4});
  CHECK(parsed->to_side == std::vector<uint32_t>{5, 6, 7, 8, 9});
  CHECK_FALSE(parsed->one_way);
}

TEST_CASE("fault profile: one-way partition with '>'") {
  auto parsed = parse_partition("500ms-1500ms:2>3,5", 6);
  REQUIRE(parsed.ok());
  CHECK(parsed->start_us == 500000);
  CHECK(parsed->end_us == 1500000);
  CHECK(parsed->from_side == std::vector<uint32_t>{2});
  CHECK(parsed->to_side == std::vector<uint32_t>{3, 5});
  CHECK(parsed->one_way);
}

TEST_CASE("fault profile: partition of one set against the rest") {
  auto parsed = parse_partition("0-1m:3", 5);
  REQUIRE(parsed.ok());
  CHECK(parsed->start_us == 0);
  CHECK(parsed->end_us == 60000000);
  CHECK(parsed->from_side == std::vector<uint32_t>{3});
  CHECK(parsed->to_side.empty());  // empty = every other node
  CHECK_FALSE(parsed->one_way);
}

TEST_CASE("fault profile: bad partitions name the text and the reason") {
  struct row {
    const char* text;
    const char* reason;
  };
  for (auto [text, reason] : {row{"10s-20s", "missing ':'"},
                              row{"10s:0/1", "missing '-'"},
                              row{"x-20s:0/1", "'x'"},
                              row{"10s-y:0/1", "'y'"},
                              row{"20s-10s:0/1", "end must be after start"},
                              row{"10s-10s:0/1", "end must be after start"},
                              row{"10s-20s:0/12", "'12'"},
                              row{"10s-20s:12/0", "'12'"},
                              row{"10s-20s:0/", "''"},
                              row{"10s-20s:/1", "''"},
                              row{"10s-20s:0>", "''"},
                              row{"10s-20s:", "''"},
                              row{"10s-20s:0/1/2", "'1/2'"}}) {
    CAPTURE(text);
    auto parsed = parse_partition(text, 10);
    check_error_mentions(parsed, "bad partition '" + std::string(text) + "'");
    CHECK(contains(parsed.err().message, reason));
    CHECK(contains(parsed.err().message, "e.g. 10s-20s:0-4/5-9"));
  }
}

// ---- crashes -----------------------------------------------------------------------------------

TEST_CASE("fault profile: crash without restart") {
  auto parsed = parse_crash("3@5s", 4);
  REQUIRE(parsed.ok());
  CHECK(parsed->node == 3);
  CHECK(parsed->at_us == 5000000);
  CHECK(parsed->restart_after_us == -1);
}

TEST_CASE("fault profile: crash with restart") {
  auto parsed = parse_crash("0@250ms+4s", 1);
  REQUIRE(parsed.ok());
  CHECK(parsed->node == 0);
  CHECK(parsed->at_us == 250000);
  CHECK(parsed->restart_after_us == 4000000);
  auto immediate = parse_crash("1@1s+0", 2);
  REQUIRE(immediate.ok());
  CHECK(immediate->restart_after_us == 0);
}

TEST_CASE("fault profile: bad crashes name the text and the reason") {
  struct row {
    const char* text;
    const char* reason;
  };
  for (auto [text, reason] : {row{"3", "missing '@'"},
                              row{"x@5s", "'x'"},
                              row{"@5s", "''"},
                              row{"4@5s", "node 4 does not exist"},
                              row{"99999999999@5s", "does not exist"},
                              row{"3@", "''"},
                              row{"3@soon", "'soon'"},
                              row{"3@5s+", "''"},
                              row{"3@5s+later", "'later'"},
                              row{"3@5s+1s+1s", "'1s+1s'"}}) {
    CAPTURE(text);
    auto parsed = parse_crash(text, 4);
    check_error_mentions(parsed, "bad crash '" + std::string(text) + "'");
    CHECK(contains(parsed.err().message, reason));
    CHECK(contains(parsed.err().message, "e.g. 3@5s+4s"));
  }
}

// ---- probabilities -----------------------------------------------------------------------------

TEST_CASE("fault profile: probabilities as fractions and percentages") {
  struct row {
    const char* text;
    double value;
  };
  for (auto [text, value] : {row{"0", 0.0}, row{"1", 1.0}, row{"0.25", 0.25}, row{".5", 0.5},
                             row{"5%", 0.05}, row{"100%", 1.0}, row{"0%", 0.0},
                             row{"12.5%", 0.125}}) {
    CAPTURE(text);
    auto parsed = parse_probability(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == doctest::Approx(value));
  }
}

TEST_CASE("fault profile: bad probabilities name the text") {
  for (std::string text : {"", "%", "1.5", "101%", "-0.1", "-1%", "abc", "0.5x", "5%%", "inf",
                           "nan", "NaN%"}) {
    CAPTURE(text);
    auto parsed = parse_probability(text);
    check_error_mentions(parsed, "'" + text + "'");
    CHECK(contains(parsed.err().message, "not a probability"));
  }
}

TEST_CASE("fault profile: defaults describe a healthy network") {
  fault_profile profile;
  CHECK(profile.loss == 0);
  CHECK(profile.duplicate == 0);
  CHECK(profile.reorder == 0);
  CHECK(profile.partitions.empty());
  CHECK(profile.crashes.empty());
  CHECK(profile.latency.latency_us_min <= profile.latency.latency_us_median);
  CHECK(profile.latency.latency_us_median <= profile.latency.latency_us_max);
}

TEST_CASE("fault profile: freezes parse and bad ones say what is expected") {
  auto z = sim::parse_freeze("4@10s-12s", 10);
  REQUIRE(z);
  CHECK(z->node == 4);
  CHECK(z->start_us == 10'000'000);
  CHECK(z->end_us == 12'000'000);
  for (const char* bad : {"4@10s", "4-10s-12s", "12@1s-2s", "4@2s-1s", "x@1s-2s"}) {
    auto r = sim::parse_freeze(bad, 10);
    REQUIRE_FALSE(r);
    CHECK(r.err().message.find("NODE@START-END") != std::string::npos);
  }
}
