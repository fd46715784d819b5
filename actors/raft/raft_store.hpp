// Durable Raft state in the node's LMDB store: hard state, snapshot and log of each group, in one
// named database ("raft") with keys prefixed by the group, so any number of groups fit the
// store's database limit. Keys:
//   [u16 group][u8 'h']            -> msgpack {term, vote, commit}
//   [u16 group][u8 's']            -> msgpack {index, term, membership, data}
//   [u16 group][u8 'e'][u64 index] -> msgpack entry (index big-endian, so keys sort by index)
// persist() writes one ready's persistence part in one transaction and syncs it before it
// returns, so the caller may then send (persist before send).
#pragma once

#include <cstdint>

#include "actors/raft/raft_machine.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::raft {

class log_store {
public:
  // Opens (creating if needed) the "raft" database. Errors: storage_error.
  static result<log_store> open(store& storage, uint32_t group);

  // What was persisted for this group (empty on first start). Errors: storage_error, malformed.
  result<restored_state> load();

  // Writes r.snapshot, r.truncate_from, r.append and (if changed) `hard` in one transaction,
  // then syncs. Errors: storage_error; on error nothing of this ready is durable.
  status persist(const ready& r, const hard_state& hard);

  // After machine::compact: persist the snapshot and drop the entries it covers.
  status save_snapshot(const snapshot_record& snapshot);

private:
  log_store(store* storage, store::database db, uint32_t group)
      : storage_(storage), db_(db), group_(group) {}
  std::string key(char kind) const;
  std::string entry_key(index_t index) const;
  status write_snapshot(store::write_txn& txn, const snapshot_record& snapshot);

  store* storage_ = nullptr;
  store::database db_ = 0;
  uint32_t group_ = 0;
  index_t first_ = 1;  // persisted entries are first_ .. last_ (empty when last_ < first_)
  index_t last_ = 0;
};

}  // namespace cmesh::raft
