// What can go wrong in a simulated network, and when. Parsed from `cmesh sim` options.
// Pure data plus parsers; no CAF.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/error.hpp"

namespace cmesh::sim {

// Latency of one message: log-normal around `latency_us_median` with shape `latency_spread`
// (sigma of the underlying normal; 0 = constant), clamped to [latency_us_min, latency_us_max].
struct latency_model {
  int64_t latency_us_median = 5000;
  double latency_spread = 0.5;
  int64_t latency_us_min = 100;
  int64_t latency_us_max = 2000000;
};

// Between start and end, messages from a node in `from_side` to a node in `to_side` are lost;
// unless one_way, the reverse direction too. An empty `to_side` means "every other node".
struct partition {
  int64_t start_us = 0;
  int64_t end_us = 0;
  std::vector<uint32_t> from_side;
  std::vector<uint32_t> to_side;
  bool one_way = false;
};

// Node `node` crashes at `at_us` (its actors die, unsynced storage is lost); if restart_after_us
// is >= 0 it restarts that much later on the same storage.
struct crash {
  uint32_t node = 0;
  int64_t at_us = 0;
  int64_t restart_after_us = -1;
};

// Node `node` is frozen (a stop-the-world pause, SIGSTOP) from start_us to end_us: it neither
// receives nor sends in that time. Messages to it wait and arrive at end_us; what it sends while
// frozen leaves at end_us. Its state is kept (unlike a crash).
struct freeze {
  uint32_t node = 0;
  int64_t start_us = 0;
  int64_t end_us = 0;
};

// Faults that react to what the Raft replicas do, at the moments elections and commitment are
// most fragile (in the spirit of FoundationDB's BUGGIFY and Jepsen's targeted nemeses). Each rule
// fires with its probability, decided by the simulation's own seeded generator:
//   - a replica that has just become leader is crashed: with probability 1/3 at once, before its
//     first appends leave (it alone holds its no-op), otherwise within `leader_crash_delay_max_us`
//     (its appends reached some followers, maybe not a majority);
//   - a leader that has just advanced its commit index for the first time in its term is crashed
//     at once, after it applied the entries and before the new commit index leaves it;
//   - a replica that has just granted a vote is crashed as soon as the answer has left, and comes
//     back within `vote_restart_max_us` (while other candidates of the same term may still ask).
// A crash happens after the replica made its ready durable, so a correct replica survives all of
// it. Crashed leaders restart within `leader_restart_max_us`. A crash that would leave less than
// a majority of the voters up is skipped.
struct raft_nemesis {
  int64_t start_us = 0;                    // active in [start_us, end_us)
  int64_t end_us = 0;
  double crash_new_leader = 0;
  int64_t leader_crash_delay_max_us = 0;
  double crash_after_first_commit = 0;
  int64_t leader_restart_max_us = 0;
  double crash_after_vote = 0;
  int64_t vote_restart_max_us = 0;
  bool enabled() const {
    return end_us > start_us &&
           (crash_new_leader > 0 || crash_after_first_commit > 0 || crash_after_vote > 0);
  }
};

struct fault_profile {
  latency_model latency;
  double loss = 0;        // probability a message is lost
  double duplicate = 0;   // probability a message is delivered twice
  double reorder = 0;     // probability a message gets extra delay (so later ones overtake it)
  std::vector<partition> partitions;
  std::vector<crash> crashes;
  std::vector<freeze> freezes;
  raft_nemesis nemesis;   // only acts on Raft replicas (simulation_options::raft)
};

// "250ms", "10s", "2m", "1500us", plain number = milliseconds.
result<int64_t> parse_duration_us(std::string_view text);
// "0-4,7,9-10" -> sorted unique node indices; each must be < node_count.
result<std::vector<uint32_t>> parse_node_set(std::string_view text, uint32_t node_count);
// "START-END:SET/SET" (two-way), "START-END:SET>SET" (one-way, first set cannot reach second),
// "START-END:SET" (SET cut off from all others, both ways).  Example: "10s-20s:0-4/5-9".
result<partition> parse_partition(std::string_view text, uint32_t node_count);
// "NODE@TIME" or "NODE@TIME+RESTART_AFTER".  Example: "3@5s+4s".
result<crash> parse_crash(std::string_view text, uint32_t node_count);
// "NODE@START-END", e.g. "4@10s-12s". Errors: invalid_argument (with the expected form).
result<freeze> parse_freeze(std::string_view text, uint32_t node_count);
// A probability in [0, 1], also "5%".
result<double> parse_probability(std::string_view text);

std::string format_duration_us(int64_t us);

}  // namespace cmesh::sim

namespace cmesh::sim {

// A seeded storm of faults over [start_us, end_us) for `nodes` nodes: message loss, duplication,
// reordering and latency spread; two-way partitions isolating a random minority, one-way cuts,
// and crashes with restarts, several overlapping. Every fault is over by end_us (crashed nodes
// are restarted by then). Used by the Raft torture runs (`cmesh sim
// --random-faults`, the test suite's 200 seeds and `cmesh bench raft-sim`). The generated
// schedule is spelled out in the replay command, so a run replays without this function.
fault_profile random_fault_storm(uint64_t seed, uint32_t nodes, int64_t start_us, int64_t end_us);

// The nemesis `cmesh sim --raft-nemesis` switches on, active in [start_us, end_us). Aggressive on
// purpose: 9 new leaders in 10 are crashed (a third of them before anything left, the others within
// three median latencies), and so are 9 leaders in 10 right after their first commit; every granted
// vote crashes the voter (a minority at a time). Crashed leaders restart within 100 ms, voters
// within a fifth of the median latency. Its constants depend only on the median latency, which the
// replay command spells.
raft_nemesis standard_raft_nemesis(int64_t latency_median_us, int64_t start_us, int64_t end_us);

// A storm aimed at elections and at the commitment of entries from earlier terms (`cmesh sim
// --election-faults`, docs/raft.md "Planted bugs"). Compared with random_fault_storm: short
// latencies with a wide spread and much reordering (candidates of one term reach voters in either
// order, and a pre-vote grant may arrive after the voter moved on), little loss, frequent short
// partitions that cut one or two nodes off, frequent crashes with quick restarts, and
// standard_raft_nemesis over the same window. Meant to run with the Raft settings below.
fault_profile election_fault_storm(uint64_t seed, uint32_t nodes, int64_t start_us, int64_t end_us);
// The Raft settings for election_fault_storm (`--election-faults` uses them unless
// --election-timeout or --raft-batch are given): a narrow election timeout, so that followers time
// out together (concurrent candidates, split votes); one entry per append, so that a new leader
// brings a follower up one entry at a time and entries of earlier terms can reach a majority before
// its own no-op does (Raft paper, Figure 8). With the default batch the no-op travels with them.
constexpr int64_t election_storm_timeout_min_us = 150'000;
constexpr int64_t election_storm_timeout_max_us = 155'000;
constexpr size_t election_storm_append_batch = 1;

}  // namespace cmesh::sim
