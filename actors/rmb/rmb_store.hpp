// Durable RMB agent state in the node's LMDB store: the dedup table and the outbox, in one named
// database ("rmb"). Keys (twin = 32-byte key of the message's source twin, uid = 16 bytes):
//   'd' twin uid -> msgpack {state, forget_at_ms, reply_node, [request], [reply]}
//   'o' twin uid -> msgpack {message, to_node}
//   't' twin     -> the hosted twin's own state (actors/rmb/twin_machine.hpp), written in the same
//                   transaction as the reply that changed it (exactly-once effects)
// persist() applies one effects' persist list in one transaction and syncs before it returns, so
// the caller may then send (persist before send: a receiver that acknowledged or answered an
// envelope still recognises its retry after a crash).
//
// Owned by the node's RMB agent actor, like the machine; one agent (so one "rmb" database) per
// node store.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "actors/rmb/rmb_machine.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::rmb {

class message_store {
public:
  // Opens (creating if needed) the "rmb" database. Errors: storage_error, unavailable.
  static result<message_store> open(store& storage);

  // Everything persisted (empty on first start), for machine::restore.
  // Errors: storage_error; malformed for a record that does not decode.
  result<restored_state> load();

  // Applies `ops` in order in one write transaction, commits and syncs. Does nothing for an empty
  // list. Errors: storage_error, invalid_argument; on error none of `ops` is durable.
  status persist(const std::vector<store_op>& ops);

  // As persist(ops), and also writes the given twins' states in the same transaction.
  using twin_write = std::pair<node_id, bytes>;
  status persist(const std::vector<store_op>& ops, const std::vector<twin_write>& twin_states);

  // Every twin state written so far (twin -> state bytes). Errors: storage_error.
  result<std::map<node_id, bytes>> load_twin_states();

private:
  message_store(store* storage, store::database db) : storage_(storage), db_(db) {}

  store* storage_ = nullptr;
  store::database db_ = 0;
};

}  // namespace cmesh::rmb
