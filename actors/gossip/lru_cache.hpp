// A least-recently-used cache bounded both by entry count and by bytes.
//
// Used by the gossip machine (request/response cache, gossip cache, seen searches, pending offers)
// and by the reputation machine (report cache, subject records). Pure and deterministic: entries
// live in a std::list in recency order, indexed by an ordered std::set of list positions compared
// by key (never an unordered container), so the same inputs give the same evictions on every
// platform. Each key is stored once, in its list entry (the index holds only a position): a
// gossip cache key is five strings, 160 bytes before any heap block, and was stored twice.
//
// Byte accounting: the caller states each entry's size when it stores it (`put(key, value, bytes)`)
// and is responsible for measuring it the same way every time. The cache counts those sizes, not
// allocator overhead. An entry larger than `bytes_max` on its own is refused (put returns false).
//
// Recency: `get` and `put` make the entry the most recent; `peek` and `contains` do not. When either
// bound would be exceeded, the least recent entries are evicted one at a time (counted in
// `evictions()`) until both bounds hold.
//
// REQUIRES: entries_max > 0 and bytes_max > 0. Key has a strict weak order (operator<).
// Not thread-safe; owned by one machine.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <set>
#include <utility>

namespace cmesh {

template <class Key, class Value>
class lru_cache {
public:
  struct entry {
    Key key;
    Value value;
    size_t bytes = 0;
  };
  using const_iterator = typename std::list<entry>::const_iterator;  // most recent first

  lru_cache(size_t entries_max, size_t bytes_max)
      : entries_max_(entries_max), bytes_max_(bytes_max) {
    assert(entries_max_ > 0 && bytes_max_ > 0);
  }

  // Looks `key` up and makes it the most recent. nullptr if absent. Counts a hit or a miss.
  // A caller that changes the value's size through the pointer must put() it again instead.
  Value* get(const Key& key) {
    auto found = index_.find(key);
    if (found == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    order_.splice(order_.begin(), order_, *found);  // list positions stay valid
    return &(*found)->value;
  }

  // Looks `key` up without changing recency or counters.
  const Value* peek(const Key& key) const {
    auto found = index_.find(key);
    return found == index_.end() ? nullptr : &(*found)->value;
  }
  bool contains(const Key& key) const { return index_.count(key) != 0; }

  // Stores `value` under `key` (replacing any old value) as the most recent entry, then evicts
  // least recent entries until both bounds hold. Returns false and stores nothing (the old value,
  // if any, is removed) when `entry_bytes` alone exceeds bytes_max.
  bool put(const Key& key, Value value, size_t entry_bytes) {
    erase(key);
    if (entry_bytes > bytes_max_) {
      ++refused_;
      return false;
    }
    order_.push_front(entry{key, std::move(value), entry_bytes});
    index_.insert(order_.begin());
    bytes_ += entry_bytes;
    while (order_.size() > entries_max_ || bytes_ > bytes_max_) evict_least_recent();
    return true;
  }

  // Removes `key`; returns whether it was present. Not counted as an eviction.
  bool erase(const Key& key) {
    auto found = index_.find(key);
    if (found == index_.end()) return false;
    auto position = *found;
    bytes_ -= position->bytes;
    index_.erase(found);  // before the list entry that holds its key goes
    order_.erase(position);
    return true;
  }

  void clear() {
    order_.clear();
    index_.clear();
    bytes_ = 0;
  }

  // The least recent entry; REQUIRES: !empty().
  const entry& least_recent() const {
    assert(!order_.empty());
    return order_.back();
  }

  const_iterator begin() const { return order_.begin(); }
  const_iterator end() const { return order_.end(); }
  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }
  size_t bytes() const { return bytes_; }
  size_t entries_max() const { return entries_max_; }
  size_t bytes_max() const { return bytes_max_; }
  uint64_t evictions() const { return evictions_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  uint64_t refused() const { return refused_; }

private:
  void evict_least_recent() {
    assert(!order_.empty());
    auto last = std::prev(order_.end());
    bytes_ -= last->bytes;
    index_.erase(last);  // finds it by its key, which must still be alive
    order_.erase(last);
    ++evictions_;
  }

  using position = typename std::list<entry>::iterator;
  // Orders list positions by the key of the entry they point at; also compares with a bare key
  // (transparent), so find(key) needs no entry.
  struct by_key {
    using is_transparent = void;
    bool operator()(const position& a, const position& b) const { return a->key < b->key; }
    bool operator()(const position& a, const Key& b) const { return a->key < b; }
    bool operator()(const Key& a, const position& b) const { return a < b->key; }
  };

  size_t entries_max_;
  size_t bytes_max_;
  size_t bytes_ = 0;
  std::list<entry> order_;            // most recent first; owns the keys
  std::set<position, by_key> index_;  // ordered by key: deterministic
  uint64_t evictions_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace cmesh
