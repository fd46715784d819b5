// An open-addressing index from a 64-bit hash to a slot number (uint32_t), for tables whose rows
// live in a slot pool: the index holds no keys, so a lookup compares the caller's key against the
// row with a predicate. Linear probing, at most half full, backward-shift deletion (no
// tombstones). Inserting allocates only when the table doubles; erasing never allocates.
//
// Not iterated by anyone, so its order (which depends on hashes) never reaches an output.
// Thread confinement: one owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cmesh::router {

class slot_index {
public:
  static constexpr uint32_t npos = UINT32_MAX;

  // The slot whose hash is `hash` and for which `matches(slot)` holds, or npos.
  template <class Match>
  uint32_t find(uint64_t hash, Match&& matches) const {
    if (cells_.empty()) return npos;
    for (size_t i = home(hash);; i = (i + 1) & mask_) {
      const cell& c = cells_[i];
      if (c.slot == npos) return npos;
      if (c.hash == hash && matches(c.slot)) return c.slot;
    }
  }

  // REQUIRES: no entry (hash, slot) is present.
  void insert(uint64_t hash, uint32_t slot) {
    if ((size_ + 1) * 2 > cells_.size()) grow();
    place(hash, slot);
    ++size_;
  }

  // Removes the entry (hash, slot); false if it is not present.
  bool erase(uint64_t hash, uint32_t slot) {
    if (cells_.empty()) return false;
    size_t i = home(hash);
    for (;; i = (i + 1) & mask_) {
      if (cells_[i].slot == npos) return false;
      if (cells_[i].hash == hash && cells_[i].slot == slot) break;
    }
    // Backward shift: pull later cells of the run into the hole when their home allows it.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; cells_[j].slot != npos; j = (j + 1) & mask_) {
      const size_t h = home(cells_[j].hash);
      // The cell at j may move to the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      cells_[hole] = cells_[j];
      hole = j;
    }
    cells_[hole] = cell{};
    --size_;
    return true;
  }

  size_t size() const { return size_; }

private:
  struct cell {
    uint64_t hash = 0;
    uint32_t slot = npos;
  };

  size_t home(uint64_t hash) const { return static_cast<size_t>(mix(hash)) & mask_; }
  // Spreads hashes whose low bits agree (sequential ids) over the table.
  static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
  }
  void place(uint64_t hash, uint32_t slot) {
    size_t i = home(hash);
    while (cells_[i].slot != npos) i = (i + 1) & mask_;
    cells_[i] = cell{hash, slot};
  }
  void grow() {
    std::vector<cell> old = std::move(cells_);
    cells_.assign(old.empty() ? 64 : old.size() * 2, cell{});
    mask_ = cells_.size() - 1;
    for (const cell& c : old)
      if (c.slot != npos) place(c.hash, c.slot);
  }

  std::vector<cell> cells_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace cmesh::router
