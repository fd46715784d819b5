// Linearizability checker for histories of a key/value store. Pure: no CAF, no clock, no I/O.
//
// Algorithm: the Wing & Gong search as improved by Lowe ("Testing for linearizability", 2017):
// walk the history's call/return events in time order, try to linearize each pending call, back
// off when a return is reached whose operation is not yet linearized, and remember every
// (set of linearized operations, register value) pair already explored so that no configuration
// is searched twice. Run independently for each key (P-compositionality, Horn & Kroening, "Faster
// linearizability checking via P-compositionality"): a history of independent registers is
// linearizable exactly when every key's sub-history is.
//
// Model: each key is a register holding std::optional<std::string>; every key starts absent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cmesh::sim {

enum class kv_op_kind : uint8_t { get, put, del, cas };

// One client operation as observed by the client. Times are in microseconds on one clock.
struct kv_operation {
  uint64_t client = 0;          // who issued it (for messages only)
  kv_op_kind kind = kv_op_kind::get;
  std::string key;
  std::string value;            // put: new value; cas: new value
  bool expect_present = false;  // cas: expected present?
  std::string expected;         // cas: expected value when expect_present
  int64_t invoke_us = 0;        // when the client sent it
  int64_t complete_us = 0;      // when the client got the answer; ignored if outcome == unknown
  // ok: took effect exactly once at some instant in [invoke_us, complete_us] and returned what is
  //     recorded below.
  // failed: definitely did not take effect; dropped from the history.
  // unknown: may have taken effect at any instant after invoke_us, or never; its return is unknown.
  enum class outcome : uint8_t { ok, failed, unknown } result = outcome::ok;
  // For ok results: get -> found + value read; cas -> succeeded (true) or mismatch (false);
  // put/del -> nothing (del of an absent key is ok and a no-op).
  bool found = false;           // get: key was present
  std::string read_value;       // get: value read
  bool cas_succeeded = false;   // cas: true if swapped
};

// Three verdicts: proven (linearizable, !timed_out), refuted (!linearizable), undecided
// (linearizable && timed_out: some key's search ran out of budget and no key was refuted).
struct linearizability_result {
  bool linearizable = true;
  bool timed_out = false;             // search budget exhausted: neither proven nor refuted
  std::string key;                    // the failing key reported (or the first that timed out)
  std::string explanation;            // the failing key's operations with times, the longest
                                      // linearizable prefix found, and the operation it stuck on
  uint64_t states_explored = 0;       // configurations cached, summed over keys
};

// Decides whether `history` (in any order) is linearizable. Every key is checked, even after one
// fails; when several fail, the one with the fewest operations is reported (ties: smallest key).
// `max_states_per_key` bounds the configurations cached per key (memory is about
// 32 + operations/8 bytes per configuration, and is also capped at 1 GiB per key); a key that
// reaches either bound is reported as timed out. Time grows with the configurations explored:
// a few million per second. An ok operation with complete_us < invoke_us has no
// instant to take effect, so it refutes its key.
linearizability_result check_linearizability(const std::vector<kv_operation>& history,
                                             uint64_t max_states_per_key = 5'000'000);

// One line, e.g. "client 3 cas k1 (expect absent) -> x ok swapped [120..340]". Values that are
// empty, contain spaces, quotes or control bytes, or read "absent" are quoted.
std::string describe(const kv_operation& op);

}  // namespace cmesh::sim
