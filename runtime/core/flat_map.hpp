// A small ordered map on a sorted vector: deterministic iteration order (by key), O(1) access by
// position (for seeded random picks), cache-friendly scans. For tables bounded to a few hundred
// entries (peer tables, contact lists); insert and erase are O(n) moves.
#pragma once

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

namespace cmesh {

template <class Key, class Value>
class flat_map {
public:
  using value_type = std::pair<Key, Value>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void clear() { items_.clear(); }

  iterator find(const Key& key) {
    auto it = lower(key);
    return it != items_.end() && it->first == key ? it : items_.end();
  }
  const_iterator find(const Key& key) const {
    auto it = std::lower_bound(items_.begin(), items_.end(), key,
                               [](const value_type& item, const Key& k) { return item.first < k; });
    return it != items_.end() && it->first == key ? it : items_.end();
  }
  size_t count(const Key& key) const { return find(key) != end() ? 1 : 0; }
  Value& at(const Key& key) {
    auto it = find(key);
    assert(it != end());
    return it->second;
  }
  const Value& at(const Key& key) const {
    auto it = find(key);
    assert(it != end());
    return it->second;
  }
  // Inserts if absent; returns the entry and whether it was inserted.
  std::pair<iterator, bool> emplace(const Key& key, Value value) {
    auto it = lower(key);
    if (it != items_.end() && it->first == key) return {it, false};
    return {items_.insert(it, value_type(key, std::move(value))), true};
  }
  size_t erase(const Key& key) {
    auto it = find(key);
    if (it == items_.end()) return 0;
    items_.erase(it);
    return 1;
  }
  value_type& nth(size_t index) { return items_[index]; }
  const value_type& nth(size_t index) const { return items_[index]; }

private:
  iterator lower(const Key& key) {
    return std::lower_bound(items_.begin(), items_.end(), key,
                            [](const value_type& item, const Key& k) { return item.first < k; });
  }
  std::vector<value_type> items_;
};

}  // namespace cmesh
