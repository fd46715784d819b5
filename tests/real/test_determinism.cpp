// `cmesh sim` as a user runs it: separate processes, so determinism is checked across address
// space layouts, allocation patterns and actor ids, not just within one process.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/real/process.hpp"

namespace {

// The 16 hex digits after "trace_hash=", or "" if the output has none.
std::string trace_hash_of(const std::string& output) {
  auto at = output.find("trace_hash=");
  if (at == std::string::npos) return {};
  auto hash = output.substr(at + 11, 16);
  if (hash.size() != 16 || hash.find_first_not_of("0123456789abcdef") != std::string::npos)
    return {};
  return hash;
}

// The arguments of the first "replay: cmesh sim ..." line, without the leading "cmesh".
std::vector<std::string> replay_args_of(const std::string& output) {
  auto at = output.find("replay: cmesh ");
  if (at == std::string::npos) return {};
  auto end = output.find('\n', at);
  std::istringstream line(output.substr(at + 14, end == std::string::npos ? end : end - at - 14));
  std::vector<std::string> args;
  for (std::string word; line >> word;) args.push_back(word);
  return args;
}

std::vector<std::string> determinism_args(uint64_t seed) {
  return {"sim", "--nodes", "8", "--seed", std::to_string(seed), "--duration", "20s",
          "--loss", "5%", "--latency", "5ms", "--latency-spread", "0.8",
          "--partition", "5s-10s:0-3/4-7", "--quiet"};
}

}  // namespace

TEST_CASE("determinism: 100 seeds each run twice in separate processes print the same trace hash") {
  cmesh::testing::temp_dir dir;
  REQUIRE(!dir.path().empty());
  std::map<std::string, uint64_t> seed_of_hash;
  int distinct_failures = 0;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    auto args = determinism_args(seed);
    // Both runs of a seed at once (two cores): separate processes, same options.
    std::string log_a = dir.file("a-" + std::to_string(seed) + ".log");
    std::string log_b = dir.file("b-" + std::to_string(seed) + ".log");
    cmesh::testing::process a(CMESH_BINARY, args, log_a);
    cmesh::testing::process b(CMESH_BINARY, args, log_b);
    REQUIRE(a.started());
    REQUIRE(b.started());
    int code_a = a.wait(std::chrono::seconds(60));
    int code_b = b.wait(std::chrono::seconds(60));
    auto out_a = a.output();
    auto out_b = b.output();
    INFO("seed " << seed << "\n--- first run:\n" << out_a << "--- second run:\n" << out_b);
    CHECK(code_a == 0);
    CHECK(code_b == 0);
    CHECK(out_a.find("invariants: ok") != std::string::npos);
    CHECK(out_b.find("invariants: ok") != std::string::npos);
    CHECK(out_a.find("replay: cmesh sim --nodes 8 --seed " + std::to_string(seed) + " ") !=
          std::string::npos);
    auto hash_a = trace_hash_of(out_a);
    auto hash_b = trace_hash_of(out_b);
    REQUIRE(!hash_a.empty());
    CHECK(hash_a == hash_b);
    auto [it, inserted] = seed_of_hash.emplace(hash_a, seed);
    if (!inserted) {
      ++distinct_failures;
      FAIL_CHECK("seeds " << it->second << " and " << seed << " gave the same trace_hash " << hash_a);
    }
  }
  CHECK(seed_of_hash.size() == 100);
  CHECK(distinct_failures == 0);
}

TEST_CASE("determinism: the printed replay command reproduces the run") {
  cmesh::testing::temp_dir dir;
  REQUIRE(!dir.path().empty());
  // Options whose spelling is easy to lose: non-default join spread and seed nodes, fractional
  // probabilities, a one-way partition, a crash with restart and one without.
  std::vector<std::vector<std::string>> runs = {
      {"sim", "--nodes", "9", "--seed", "4242", "--duration", "15s", "--seed-nodes", "2",
       "--join-spread", "2500ms", "--latency", "3ms", "--latency-spread", "0.35", "--loss",
       "7.5%", "--duplicate", "0.02", "--reorder", "0.0123456789", "--partition",
       "3s-8s:0-2>5-8", "--partition", "9s-11s:4", "--crash", "6@4s+3s", "--crash", "7@6s",
       "--quiet"},
      {"sim", "--nodes", "6", "--seed", "17", "--duration", "12s", "--join-spread", "0",
       "--crash", "2@3s+1500ms", "--no-storage", "--quiet"},
  };
  int index = 0;
  for (const auto& args : runs) {
    ++index;
    auto [code, output] = cmesh::testing::run(CMESH_BINARY, args, dir.file("first-" + std::to_string(index)));
    INFO("first run:\n" << output);
    REQUIRE(code == 0);
    auto hash = trace_hash_of(output);
    REQUIRE(!hash.empty());
    auto replay = replay_args_of(output);
    REQUIRE(replay.size() > 2);
    CHECK(replay[0] == "sim");
    replay.push_back("--quiet");
    auto [replay_code, replay_output] =
        cmesh::testing::run(CMESH_BINARY, replay, dir.file("replay-" + std::to_string(index)));
    INFO("replay run:\n" << replay_output);
    CHECK(replay_code == 0);
    CHECK(trace_hash_of(replay_output) == hash);
    // The replay of the replay is spelled the same way.
    auto again = replay_args_of(replay_output);
    again.push_back("--quiet");
    CHECK(again == replay);
  }
}

TEST_CASE("determinism: cmesh sim rejects bad option values with exit code 2 and says why") {
  cmesh::testing::temp_dir dir;
  REQUIRE(!dir.path().empty());
  struct bad_case {
    std::vector<std::string> args;
    std::string expected;  // part of the message naming the problem
  };
  std::vector<bad_case> cases = {
      {{"--partition", "5s:0-3"}, "bad partition '5s:0-3': missing '-'"},
      {{"--partition", "5s-3s:0-3/4-7"}, "end must be after start"},
      {{"--partition", "1s-3s:0-9"}, "node range '0-9' is outside 0-7"},
      {{"--crash", "99@1s"}, "bad crash '99@1s': node 99 does not exist"},
      {{"--crash", "3"}, "missing '@'"},
      {{"--loss", "2"}, "--loss: '2' is not a probability"},
      {{"--duplicate", "150%"}, "--duplicate: '150%' is not a probability"},
      {{"--latency-spread", "9"}, "--latency-spread: '9' is not in 0..5"},
      {{"--duration", "ten"}, "--duration: 'ten' is not a duration"},
      {{"--join-spread", "5 s"}, "--join-spread: '5 s' is not a duration"},
      {{"--nodes", "9"}, "--nodes given more than once"},
      {{"--seed-nodes", "9"}, "--seed-nodes"},
      {{"--bogus"}, "unknown option --bogus"},
  };
  int index = 0;
  for (const auto& c : cases) {
    std::vector<std::string> args = {"sim", "--nodes", "8", "--seed", "1", "--quiet"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto [code, output] = cmesh::testing::run(CMESH_BINARY, args, dir.file("bad-" + std::to_string(++index)));
    INFO("args: " << c.args[0] << (c.args.size() > 1 ? " " + c.args[1] : "") << "\noutput:\n" << output);
    CHECK(code == 2);
    CHECK(output.find(c.expected) != std::string::npos);
    CHECK(output.find("trace_hash=") == std::string::npos);  // nothing ran
  }
  // The same command line without a bad value runs.
  auto [code, output] = cmesh::testing::run(
      CMESH_BINARY, {"sim", "--nodes", "8", "--seed", "1", "--quiet"},
      dir.file("good"));
  INFO(output);
  CHECK(code == 0);
  CHECK(output.find("invariants: ok") != std::string::npos);
}
