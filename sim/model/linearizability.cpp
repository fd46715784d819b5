#include "sim/model/linearizability.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "runtime/core/rng.hpp"

namespace cmesh::sim {

namespace {

// One key's configuration cache never grows past this, whatever max_states_per_key says: a single
// hard key must not take the machine's memory (it is reported as timed out instead).
constexpr uint64_t cache_bytes_max = uint64_t{1} << 30;
// An explanation lists at most this many operations per section, so it stays readable in a log.
constexpr size_t explanation_ops_max = 200;
// Configurations per storage block of the cache (blocks avoid copying the whole cache on growth).
constexpr size_t cache_block_entries = 4096;

constexpr int64_t never_us = std::numeric_limits<int64_t>::max();
// Register value ids: absent, a value no operation can tell apart from another, or an index into
// the key's value_table.
constexpr int32_t absent_value = -1;
constexpr int32_t unobserved_value = -2;

// For our own bugs; stays on in release builds.
void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "linearizability checker: invariant broken: %s\n", what);
  std::abort();
}

// A value as describe() shows it: plain, or quoted and escaped when it could be misread.
std::string shown(std::string_view value) {
  bool plain = !value.empty() && value != "absent";
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= ' ' || byte == '"' || byte == '\\' || byte == 0x7f) plain = false;
  }
  if (plain) return std::string(value);
  std::string text = "\"";
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      text += '\\';
      text += c;
    } else if (byte < ' ' || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      text += escaped;
    } else {
      text += c;
    }
  }
  return text + "\"";
}

// Gives each value that some operation of one key observes (a get reads it, a cas expects it) a
// small id, so that register values compare and hash as integers during the search. Every other
// value is written but never compared with anything, so they are all one value to the search
// (unobserved_value): fewer distinct configurations, same verdicts.
class value_table {
public:
  void observe(const std::string& value) {
    auto [it, inserted] = ids_.try_emplace(value, static_cast<int32_t>(values_.size()));
    if (inserted) values_.push_back(value);
  }
  int32_t id_of(const std::string& value) const {
    auto it = ids_.find(value);
    return it == ids_.end() ? unobserved_value : it->second;
  }
  std::string show(int32_t id) const;

private:
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::string> values_;
};

// The strings of one operation on one register replaced by value ids.
struct register_op {
  size_t source = 0;                      // index into the caller's history
  kv_op_kind kind = kv_op_kind::get;
  bool known = true;                      // outcome ok (must be linearized); else unknown (may not)
  int64_t invoke_us = 0;
  int64_t return_us = never_us;           // never_us for unknown outcomes
  int32_t write_value = absent_value;     // put, cas
  int32_t expected_value = absent_value;  // cas
  int32_t read_value = absent_value;      // get
  bool cas_succeeded = false;
};

// Applies `op` to a register holding `value`: false if the op's recorded return is impossible
// from `value`, else true with the register's value afterwards in `next_value`.
bool step(const register_op& op, int32_t value, int32_t& next_value) {
  switch (op.kind) {
    case kv_op_kind::get:
      next_value = value;
      return value == op.read_value;
    case kv_op_kind::put:
      next_value = op.write_value;
      return true;
    case kv_op_kind::del:
      next_value = absent_value;
      return true;
    case kv_op_kind::cas: {
      const bool matches = value == op.expected_value;
      next_value = matches ? op.write_value : value;
      return !op.known || matches == op.cas_succeeded;  // an unknown cas may have done either
    }
  }
  return false;
}

// Call and return events of one key's operations in time order, as a doubly linked list from
// which a linearized operation's two events are lifted and later put back (in LIFO order).
class event_list {
public:
  explicit event_list(const std::vector<register_op>& ops);
  int32_t first() const { return next_[head()]; }
  int32_t next(int32_t event) const { return next_[event]; }
  bool is_call(int32_t event) const { return is_call_[event] != 0; }
  uint32_t op(int32_t event) const { return op_[event]; }
  void lift(int32_t call) {
    unlink(call);
    unlink(match_[call]);
  }
  void unlift(int32_t call) {
    relink(match_[call]);
    relink(call);
  }

private:
  int32_t head() const { return static_cast<int32_t>(op_.size()); }
  void unlink(int32_t event) {
    next_[prev_[event]] = next_[event];
    if (next_[event] >= 0) prev_[next_[event]] = prev_[event];
  }
  void relink(int32_t event) {
    next_[prev_[event]] = event;
    if (next_[event] >= 0) prev_[next_[event]] = event;
  }
  std::vector<uint32_t> op_;
  std::vector<uint8_t> is_call_;
  std::vector<int32_t> match_;        // call event -> its return event
  std::vector<int32_t> prev_, next_;  // one more slot than events: the head sentinel; -1 = end
};

event_list::event_list(const std::vector<register_op>& ops) {
  struct event {
    int64_t time_us;
    uint8_t is_return;  // calls sort before returns at equal times: such ops count as concurrent
    uint32_t op;
  };
  std::vector<event> events;
  events.reserve(ops.size() * 2);
  for (uint32_t i = 0; i < ops.size(); ++i) {
    events.push_back({ops[i].invoke_us, 0, i});
    events.push_back({ops[i].return_us, 1, i});
  }
  std::sort(events.begin(), events.end(), [](const event& a, const event& b) {
    if (a.time_us != b.time_us) return a.time_us < b.time_us;
    if (a.is_return != b.is_return) return a.is_return < b.is_return;
    return a.op < b.op;
  });
  const auto count = static_cast<int32_t>(events.size());
  op_.resize(count);
  is_call_.resize(count);
  match_.assign(count, -1);
  prev_.resize(count + 1);
  next_.resize(count + 1);
  std::vector<int32_t> call_of_op(ops.size(), -1);
  for (int32_t i = 0; i < count; ++i) {
    op_[i] = events[i].op;
    is_call_[i] = events[i].is_return ? 0 : 1;
    if (is_call_[i]) {
      call_of_op[op_[i]] = i;
    } else {
      require(call_of_op[op_[i]] >= 0, "a return event sorts before its call");
      match_[call_of_op[op_[i]]] = i;
    }
    prev_[i] = i == 0 ? count : i - 1;
    next_[i] = i + 1 < count ? i + 1 : -1;
  }
  next_[count] = count > 0 ? 0 : -1;
  prev_[count] = -1;
}

// Bit sets of one fixed size, stored in blocks so that growing never copies what is stored.
class bitset_store {
public:
  explicit bitset_store(size_t words) : words_(words) {}
  uint32_t add(const std::vector<uint64_t>& set) {
    require(count_ < std::numeric_limits<uint32_t>::max() - 1, "bitset store index overflow");
    if (count_ % cache_block_entries == 0)
      blocks_.push_back(std::make_unique<uint64_t[]>(cache_block_entries * words_));
    std::copy(set.begin(), set.end(), blocks_.back().get() + (count_ % cache_block_entries) * words_);
    return static_cast<uint32_t>(count_++);
  }
  const uint64_t* at(uint32_t index) const {
    return blocks_[index / cache_block_entries].get() + (index % cache_block_entries) * words_;
  }
  size_t size() const { return count_; }
  uint64_t bytes() const { return blocks_.size() * cache_block_entries * words_ * sizeof(uint64_t); }

private:
  size_t words_;
  size_t count_ = 0;
  std::vector<std::unique_ptr<uint64_t[]>> blocks_;
};

// The configurations already explored, each (linearized known ops, search state, linearized
// unknown ops). A configuration is dominated by an explored one with the same known ops and state
// and a subset of its unknown ops: unknown ops are optional and impose no deadline, so fewer used
// can only leave more choices. Lowe's cache is the special case without unknown ops.
// Layout: an open addressing table over (known set, state) keys, each with a list of unknown sets.
class configuration_cache {
public:
  configuration_cache(size_t known_words, size_t unknown_words)
      : slots_(1024, 0), known_sets_(known_words), unknown_sets_(unknown_words),
        unknown_words_(unknown_words) {}

  // Adds the configuration unless an explored one dominates it (then false). known_hash must be a
  // hash of `known`.
  bool insert(const std::vector<uint64_t>& known, uint64_t known_hash, uint64_t state,
              const std::vector<uint64_t>& unknown);
  uint64_t size() const { return unknown_sets_.size(); }
  uint64_t bytes() const {
    return slots_.size() * sizeof(uint32_t) +
           (hashes_.capacity() + states_.capacity()) * sizeof(uint64_t) +
           (first_set_.capacity() + next_set_.capacity()) * sizeof(uint32_t) +
           known_sets_.bytes() + unknown_sets_.bytes();
  }

private:
  static constexpr uint32_t end_of_list = std::numeric_limits<uint32_t>::max();
  bool dominated(uint32_t key, const std::vector<uint64_t>& unknown);
  void place(uint32_t key) {
    const size_t mask = slots_.size() - 1;
    size_t slot = hashes_[key] & mask;
    while (slots_[slot] != 0) slot = (slot + 1) & mask;
    slots_[slot] = key + 1;
  }

  std::vector<uint32_t> slots_;  // key index + 1; 0 = empty. Load kept at or below one half.
  std::vector<uint64_t> hashes_;     // per key
  std::vector<uint64_t> states_;     // per key
  std::vector<uint32_t> first_set_;  // per key: its first unknown set
  std::vector<uint32_t> next_set_;   // per unknown set: the next one of the same key
  bitset_store known_sets_;          // per key
  bitset_store unknown_sets_;
  size_t unknown_words_;
};

// Whether an explored set of `key` is a subset of `unknown`. Explored supersets of `unknown` are
// dropped from the list on the way: `unknown` is about to dominate them, which keeps lists short.
bool configuration_cache::dominated(uint32_t key, const std::vector<uint64_t>& unknown) {
  uint32_t* link = &first_set_[key];
  while (*link != end_of_list) {
    const uint64_t* explored = unknown_sets_.at(*link);
    bool subset = true;
    bool superset = true;
    for (size_t word = 0; word < unknown_words_ && (subset || superset); ++word) {
      subset = subset && (explored[word] & ~unknown[word]) == 0;
      superset = superset && (unknown[word] & ~explored[word]) == 0;
    }
    if (subset) return true;
    if (superset) {
      *link = next_set_[*link];
    } else {
      link = &next_set_[*link];
    }
  }
  return false;
}

bool configuration_cache::insert(const std::vector<uint64_t>& known, uint64_t known_hash,
                                 uint64_t state, const std::vector<uint64_t>& unknown) {
  uint64_t mixed = known_hash ^ (state * 0x9e3779b97f4a7c15ULL);
  const uint64_t hash = splitmix64(mixed);
  const size_t mask = slots_.size() - 1;
  for (size_t slot = hash & mask; slots_[slot] != 0; slot = (slot + 1) & mask) {
    const uint32_t key = slots_[slot] - 1;
    if (hashes_[key] != hash || states_[key] != state ||
        !std::equal(known.begin(), known.end(), known_sets_.at(key)))
      continue;
    if (dominated(key, unknown)) return false;
    next_set_.push_back(first_set_[key]);
    first_set_[key] = unknown_sets_.add(unknown);
    return true;
  }
  const uint32_t key = known_sets_.add(known);
  hashes_.push_back(hash);
  states_.push_back(state);
  next_set_.push_back(end_of_list);
  first_set_.push_back(unknown_sets_.add(unknown));
  if (hashes_.size() * 2 > slots_.size()) {
    slots_.assign(slots_.size() * 2, 0);
    for (uint32_t i = 0; i < hashes_.size(); ++i) place(i);
  } else {
    place(key);
  }
  return true;
}

enum class verdict : uint8_t { linearizable, refuted, exhausted };

struct search_outcome {
  verdict result = verdict::linearizable;
  uint64_t states = 0;
  std::vector<uint32_t> longest_prefix;     // op indices in linearization order (if refuted)
  uint64_t longest_prefix_length = 0;
  int32_t value_after_prefix = absent_value;
  int64_t stuck_op = -1;  // op whose return was reached, unlinearized, right after that prefix
};

// For each unknown op, the previous unknown op (by invoke time) with the same effect, or -1; known
// ops get -1. Two unknown ops with the same effect differ only in their invoke times and both stay
// pending forever, so any linearization using some of them can use the earliest-invoked ones
// instead; the search therefore lets an unknown op take effect only after its previous twin did,
// which stops it from trying every subset of a group of identical writes.
std::vector<int32_t> previous_twins(const std::vector<register_op>& ops) {
  std::vector<uint32_t> by_invoke(ops.size());
  for (uint32_t i = 0; i < ops.size(); ++i) by_invoke[i] = i;
  std::stable_sort(by_invoke.begin(), by_invoke.end(), [&](uint32_t a, uint32_t b) {
    return ops[a].invoke_us < ops[b].invoke_us;
  });
  std::map<std::tuple<kv_op_kind, int32_t, int32_t>, int32_t> last_of_effect;
  std::vector<int32_t> twins(ops.size(), -1);
  for (uint32_t op : by_invoke) {
    if (ops[op].known) continue;
    auto [it, inserted] = last_of_effect.try_emplace(
        std::tuple{ops[op].kind, ops[op].expected_value, ops[op].write_value},
        static_cast<int32_t>(op));
    if (!inserted) {
      twins[op] = it->second;
      it->second = static_cast<int32_t>(op);
    }
  }
  return twins;
}

// Words of a bit set over the known (or the unknown) ops.
size_t words_for(const std::vector<register_op>& ops, bool known) {
  size_t count = 0;
  for (const auto& op : ops) count += op.known == known ? 1 : 0;
  return (count + 63) / 64;
}

// The WGL search with Lowe's configuration cache, iterative. Succeeds once every known (ok) op is
// linearized: unknown ops left over simply never took effect (they never returned, so they may
// stay pending forever).
//
// Unknown writes (put, del, and a cas that swaps) are linearized just in time: the op right after
// one must need it, that is behave differently at the value before it (a known op invalid there,
// or an unknown cas that would not swap there). An unknown cas that would not swap is a no-op and
// is never linearized. No linearization is lost: in any valid one, an unknown write followed by a
// write can be deleted, and one followed by an op that behaves the same without it can be moved
// after that op (it is pending forever, so later is always allowed), until each one is needed by
// its successor. The value before a not yet needed unknown write (the obligation) is part of the
// search state, so the cache stays exact.
class wgl_search {
public:
  wgl_search(const std::vector<register_op>& ops, uint64_t max_states);
  search_outcome run();

private:
  static constexpr int32_t no_obligation = -3;  // last op linearized was not an unknown write
  struct frame {
    int32_t call;
    int32_t value_before;
    int32_t obligation_before;
  };

  bool linearized(int32_t op) const {
    const uint32_t bit = compact_index_[op];
    const auto& set = ops_[op].known ? known_linearized_ : unknown_linearized_;
    return (set[bit / 64] >> (bit % 64)) & 1;
  }
  void toggle(uint32_t op) {
    const uint32_t bit = compact_index_[op];
    auto& set = ops_[op].known ? known_linearized_ : unknown_linearized_;
    set[bit / 64] ^= uint64_t{1} << (bit % 64);
    if (ops_[op].known) known_hash_ ^= op_hash_[op];
  }
  bool allowed(uint32_t op, int32_t& value_after, int32_t& obligation_after) const;
  bool try_linearize(int32_t call);
  int32_t undo_last();
  void record_deepest(int64_t stuck_op);

  const std::vector<register_op>& ops_;
  const uint64_t max_states_;
  event_list events_;
  std::vector<uint32_t> compact_index_;  // op -> its bit among the known or the unknown ops
  std::vector<uint64_t> known_linearized_;
  std::vector<uint64_t> unknown_linearized_;
  std::vector<uint64_t> op_hash_;  // Zobrist keys: the known linearized set's hash is their XOR
  uint64_t known_hash_ = 0;
  std::vector<int32_t> twins_;
  configuration_cache cache_;
  size_t known_remaining_ = 0;
  bool has_unknown_ = false;
  int32_t value_ = absent_value;
  int32_t obligation_ = no_obligation;  // else the value before the last (unknown) write
  std::vector<frame> stack_;
  size_t deepest_ = 0;             // the longest the stack has been
  bool deepest_recorded_ = false;  // outcome_.longest_prefix holds a stack that long
  search_outcome outcome_;
};

wgl_search::wgl_search(const std::vector<register_op>& ops, uint64_t max_states)
    : ops_(ops),
      max_states_(max_states),
      events_(ops),
      compact_index_(ops.size()),
      op_hash_(ops.size()),
      twins_(previous_twins(ops)),
      cache_(words_for(ops, true), words_for(ops, false)) {
  uint32_t known_count = 0;
  uint32_t unknown_count = 0;
  for (uint32_t op = 0; op < ops.size(); ++op)
    compact_index_[op] = ops[op].known ? known_count++ : unknown_count++;
  known_linearized_.assign(words_for(ops, true), 0);
  unknown_linearized_.assign(words_for(ops, false), 0);
  known_remaining_ = known_count;
  has_unknown_ = unknown_count > 0;
  uint64_t seed = 0x6c696e6561726973ULL;
  for (auto& key : op_hash_) key = splitmix64(seed);
}

// The pending calls are tried in two passes, known ops first: configurations are then first
// reached with few unknown ops used, and those dominate the ones reached later with more.
search_outcome wgl_search::run() {
  int32_t event = events_.first();
  bool known_pass = true;
  while (known_remaining_ > 0 && outcome_.result != verdict::exhausted) {
    require(event >= 0, "ran past the last event with known operations pending");
    if (events_.is_call(event)) {
      if (ops_[events_.op(event)].known == known_pass && try_linearize(event)) {
        event = events_.first();
        known_pass = true;
      } else {
        event = events_.next(event);
      }
      continue;
    }
    if (known_pass && has_unknown_) {  // every pending known op tried: now the unknown ones
      known_pass = false;
      event = events_.first();
      continue;
    }
    // This op had to be linearized by now and was not: undo the last choice.
    if (stack_.size() == deepest_ && !deepest_recorded_) record_deepest(events_.op(event));
    if (stack_.empty()) {
      outcome_.result = verdict::refuted;
      break;
    }
    const int32_t undone = undo_last();
    known_pass = ops_[events_.op(undone)].known;
    event = events_.next(undone);
  }
  outcome_.states = cache_.size();
  outcome_.longest_prefix_length = deepest_;
  return outcome_;
}

// Whether `op` may be linearized next, and the value and obligation after it.
bool wgl_search::allowed(uint32_t index, int32_t& value_after,
                         int32_t& obligation_after) const {
  const register_op& op = ops_[index];
  if (op.known) {
    int32_t unused = 0;
    if (obligation_ != no_obligation && step(op, obligation_, unused)) return false;  // not needed
    obligation_after = no_obligation;
    return step(op, value_, value_after);
  }
  if (twins_[index] >= 0 && !linearized(twins_[index])) return false;
  step(op, value_, value_after);
  if (value_after == value_) return false;  // a no-op: leaving it out is the same
  if (obligation_ != no_obligation) {
    // Only a cas can need the unknown write before it: it swaps now but would not have there.
    if (op.kind != kv_op_kind::cas || obligation_ == op.expected_value) return false;
  }
  obligation_after = value_;
  return true;
}

// Linearizes the op of `call` if allowed and it leads to a configuration not explored yet.
bool wgl_search::try_linearize(int32_t call) {
  const uint32_t op = events_.op(call);
  int32_t value_after = value_;
  int32_t obligation_after = no_obligation;
  if (!allowed(op, value_after, obligation_after)) return false;
  toggle(op);
  const uint64_t state = static_cast<uint32_t>(value_after) |
                         uint64_t{static_cast<uint32_t>(obligation_after)} << 32;
  if (!cache_.insert(known_linearized_, known_hash_, state, unknown_linearized_)) {
    toggle(op);
    return false;
  }
  stack_.push_back({call, value_, obligation_});
  value_ = value_after;
  obligation_ = obligation_after;
  events_.lift(call);
  known_remaining_ -= ops_[op].known ? 1 : 0;
  if (stack_.size() > deepest_) {
    deepest_ = stack_.size();
    deepest_recorded_ = false;
  }
  if (cache_.size() >= max_states_ || cache_.bytes() >= cache_bytes_max)
    outcome_.result = verdict::exhausted;
  return true;
}

// Undoes the last linearization; returns its call event, back in the list.
int32_t wgl_search::undo_last() {
  const frame top = stack_.back();
  stack_.pop_back();
  const uint32_t op = events_.op(top.call);
  events_.unlift(top.call);
  toggle(op);
  value_ = top.value_before;
  obligation_ = top.obligation_before;
  known_remaining_ += ops_[op].known ? 1 : 0;
  return top.call;
}

// Keeps the stack as the longest linearizable prefix, with the op it got stuck on. Called when the
// search leaves its deepest point so far (which it can only do by backing off from it), so that a
// search that keeps getting deeper does not copy its stack every time.
void wgl_search::record_deepest(int64_t stuck_op) {
  outcome_.longest_prefix.clear();
  for (const auto& f : stack_) outcome_.longest_prefix.push_back(events_.op(f.call));
  outcome_.value_after_prefix = value_;
  outcome_.stuck_op = stuck_op;
  deepest_recorded_ = true;
}

std::string value_table::show(int32_t id) const {
  if (id == absent_value) return "absent";
  if (id == unobserved_value) return "(a value no operation reads or expects)";
  return shown(values_.at(static_cast<size_t>(id)));
}

// One key's sub-history prepared for the search.
struct key_check {
  std::string_view key;
  std::vector<size_t> sources;     // every op of this key in the caller's history
  std::vector<register_op> ops;    // those the search considers
  value_table values;
  std::string malformed;           // non-empty: refuted before searching
  search_outcome outcome;
};

// Whether the search considers `op`: failed ops never took effect, unknown reads had no effect.
bool considered(const kv_operation& op) {
  using outcome = kv_operation::outcome;
  if (op.result == outcome::failed) return false;
  return op.result == outcome::ok || op.kind != kv_op_kind::get;
}

void prepare(const std::vector<kv_operation>& history, key_check& check) {
  using outcome = kv_operation::outcome;
  for (size_t source : check.sources) {
    const kv_operation& op = history[source];
    if (!considered(op)) continue;
    if (op.kind == kv_op_kind::get && op.found) check.values.observe(op.read_value);
    if (op.kind == kv_op_kind::cas && op.expect_present) check.values.observe(op.expected);
  }
  for (size_t source : check.sources) {
    const kv_operation& op = history[source];
    if (!considered(op)) continue;
    register_op prepared;
    prepared.source = source;
    prepared.kind = op.kind;
    prepared.known = op.result == outcome::ok;
    prepared.invoke_us = op.invoke_us;
    prepared.return_us = prepared.known ? op.complete_us : never_us;
    if (op.kind == kv_op_kind::put || op.kind == kv_op_kind::cas)
      prepared.write_value = check.values.id_of(op.value);
    if (op.kind == kv_op_kind::cas && op.expect_present)
      prepared.expected_value = check.values.id_of(op.expected);
    if (op.kind == kv_op_kind::get && op.found)
      prepared.read_value = check.values.id_of(op.read_value);
    prepared.cas_succeeded = op.cas_succeeded;
    if (prepared.known && op.complete_us < op.invoke_us && check.malformed.empty())
      check.malformed = describe(op) + " completes before it is invoked: no instant to take effect";
    check.ops.push_back(prepared);
  }
}

void append_ops(std::string& text, const std::vector<kv_operation>& history,
                const std::vector<size_t>& sources, bool numbered) {
  const size_t skipped = sources.size() > explanation_ops_max
                             ? sources.size() - explanation_ops_max : 0;
  if (skipped > 0) text += "  ... " + std::to_string(skipped) + " earlier operations omitted\n";
  for (size_t i = skipped; i < sources.size(); ++i) {
    text += numbered ? "  " + std::to_string(i + 1) + ". " : "  ";
    text += describe(history[sources[i]]) + "\n";
  }
}

std::string explain_refuted(const std::vector<kv_operation>& history, const key_check& check) {
  std::string text = "key " + shown(check.key) + ": not linearizable (" +
                     std::to_string(check.ops.size()) + " operations checked, " +
                     std::to_string(check.sources.size() - check.ops.size()) +
                     " dropped as failed or unknown reads)\n";
  if (!check.malformed.empty()) return text + check.malformed + "\n";
  std::vector<size_t> by_invoke;
  for (const auto& op : check.ops) by_invoke.push_back(op.source);
  std::stable_sort(by_invoke.begin(), by_invoke.end(), [&](size_t a, size_t b) {
    return history[a].invoke_us < history[b].invoke_us;
  });
  text += "operations by invoke time:\n";
  append_ops(text, history, by_invoke, false);
  const search_outcome& outcome = check.outcome;
  std::vector<size_t> prefix;
  for (uint32_t op : outcome.longest_prefix) prefix.push_back(check.ops[op].source);
  text += "longest linearizable prefix: " + std::to_string(prefix.size()) + " of " +
          std::to_string(check.ops.size()) + " operations, leaving the value " +
          check.values.show(outcome.value_after_prefix) + ":\n";
  append_ops(text, history, prefix, true);
  if (outcome.stuck_op >= 0)
    text += "then stuck: " + describe(history[check.ops[outcome.stuck_op].source]) +
            " must have taken effect by its completion, but no order of the pending operations"
            " lets it return what it returned\n";
  return text;
}

}  // namespace

linearizability_result check_linearizability(const std::vector<kv_operation>& history,
                                             uint64_t max_states_per_key) {
  std::map<std::string_view, key_check> keys;  // ordered: keys are checked and named in order
  for (size_t i = 0; i < history.size(); ++i) {
    key_check& check = keys[history[i].key];
    check.key = history[i].key;
    check.sources.push_back(i);
  }
  linearizability_result result;
  const key_check* refuted = nullptr;
  const key_check* exhausted = nullptr;
  std::vector<std::string_view> refuted_keys;
  for (auto& [key, check] : keys) {
    prepare(history, check);
    if (check.malformed.empty()) {
      check.outcome = wgl_search(check.ops, max_states_per_key).run();
      result.states_explored += check.outcome.states;
    } else {
      check.outcome.result = verdict::refuted;
    }
    if (check.outcome.result == verdict::refuted) {
      refuted_keys.push_back(key);
      if (refuted == nullptr || check.ops.size() < refuted->ops.size()) refuted = &check;
    } else if (check.outcome.result == verdict::exhausted && exhausted == nullptr) {
      exhausted = &check;
    }
  }
  if (refuted != nullptr) {
    result.linearizable = false;
    result.key = std::string(refuted->key);
    result.explanation = explain_refuted(history, *refuted);
    if (refuted_keys.size() > 1) {
      result.explanation += "keys not linearizable:";
      for (auto key : refuted_keys) result.explanation += " " + shown(key);
      result.explanation += "\n";
    }
  } else if (exhausted != nullptr) {
    result.timed_out = true;
    result.key = std::string(exhausted->key);
    result.explanation = "key " + shown(result.key) + ": search budget exhausted after " +
                         std::to_string(exhausted->outcome.states) + " configurations (" +
                         std::to_string(exhausted->ops.size()) +
                         " operations, longest linearizable prefix " +
                         std::to_string(exhausted->outcome.longest_prefix_length) +
                         "): neither proven nor refuted\n";
  }
  return result;
}

std::string describe(const kv_operation& op) {
  std::string text = "client " + std::to_string(op.client) + " ";
  switch (op.kind) {
    case kv_op_kind::get: text += "get " + shown(op.key); break;
    case kv_op_kind::put: text += "put " + shown(op.key) + " -> " + shown(op.value); break;
    case kv_op_kind::del: text += "del " + shown(op.key); break;
    case kv_op_kind::cas:
      text += "cas " + shown(op.key) + " (expect " +
              (op.expect_present ? shown(op.expected) : std::string("absent")) + ") -> " +
              shown(op.value);
      break;
  }
  using outcome = kv_operation::outcome;
  switch (op.result) {
    case outcome::ok:
      text += " ok";
      if (op.kind == kv_op_kind::get) text += op.found ? " read " + shown(op.read_value)
                                                       : std::string(" read absent");
      if (op.kind == kv_op_kind::cas) text += op.cas_succeeded ? " swapped" : " mismatch";
      break;
    case outcome::failed: text += " failed"; break;
    case outcome::unknown: text += " unknown"; break;
  }
  text += " [" + std::to_string(op.invoke_us) + "..";
  text += op.result == outcome::unknown ? std::string("?") : std::to_string(op.complete_us);
  return text + "]";
}

}  // namespace cmesh::sim
