// Persistent key-value storage for one node: an LMDB environment with named databases.
//
// One store (one LMDB environment, one directory) per node, owned by that node's storage owner
// (a single actor): a store and its transactions are not shared between threads at the same time.
// Transactions are RAII objects: a read_txn sees one snapshot; a write_txn is aborted by its
// destructor unless commit() succeeded. At most one write_txn per store is open at a time.
// Every transaction must end before its store is destroyed or crashed.
//
// Durability:
//   durable (real mode, default)   every commit is fsynced before commit() returns
//   durable = false                commits are fsynced only by sync()
//   simulate_crashes (simulation)  sync is off (MDB_NOSYNC | MDB_NOMETASYNC); the store keeps an
//                                  undo journal of the commits since the last sync(), and
//                                  simulate_crash() rolls them back: a reopened store holds exactly
//                                  the state at the last sync(). Creating a named database is not
//                                  rolled back (an empty database looks the same as a missing one,
//                                  since open_database creates it).
//
// Errors are values, never exceptions. LMDB failures become errc::storage_error (for example
// MDB_MAP_FULL, "mdb_put: MDB_MAP_FULL: Environment mapsize limit reached"), except: a key that is
// empty or too long is errc::invalid_argument, and file-system errors keep their meaning
// (permission_denied, not_found, io_error). After simulate_crash() every call returns errc::closed.
//
// lmdb.h stays out of this header: only the opaque LMDB handle types are declared.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"

struct MDB_env;
struct MDB_txn;

namespace cmesh {

struct store_options {
  size_t map_bytes = limits::store_map_bytes_default;  // largest size the data may grow to
  bool durable = true;            // real mode: every commit is fsynced (default LMDB flags)
  bool simulate_crashes = false;  // simulation: no sync, undo journal for simulate_crash()
};

class store {
public:
  using database = unsigned;  // an MDB_dbi, from open_database()

private:
  // How to undo one changed key: restore `prior`, or erase the key if it had no value.
  struct undo_entry {
    database db = 0;
    std::string key;
    std::optional<std::string> prior;
  };

public:
  // A snapshot for reading. Movable, not copyable; ends (mdb_txn_abort) when destroyed.
  class read_txn {
  public:
    read_txn(read_txn&& other) noexcept;
    read_txn& operator=(read_txn&&) = delete;
    ~read_txn();

    // The value stored under key (a copy), or nullopt if there is none.
    // Errors: invalid_argument for an empty or too long key, storage_error.
    result<std::optional<bytes>> get(database db, std::string_view key) const;
    // Visits every entry of db in key order (bytewise) until `visit` returns false. The views
    // point into the map and are valid only during the call. Errors: storage_error.
    status for_each(
        database db,
        const std::function<bool(std::string_view key, std::string_view value)>& visit) const;

  private:
    friend class store;
    read_txn(const store* owner, MDB_txn* txn);
    const store* owner_ = nullptr;
    MDB_txn* txn_ = nullptr;
  };

  // The one open write transaction. Sees its own writes. Aborted by its destructor (or abort())
  // unless commit() succeeded; after commit() or abort() every call returns errc::closed.
  class write_txn {
  public:
    write_txn(write_txn&& other) noexcept;
    write_txn& operator=(write_txn&&) = delete;
    ~write_txn();

    // As read_txn::get, including this transaction's uncommitted writes.
    result<std::optional<bytes>> get(database db, std::string_view key) const;
    // Errors: invalid_argument (empty or too long key), storage_error (e.g. MDB_MAP_FULL; the
    // transaction can then only be aborted).
    status put(database db, std::string_view key, std::string_view value);
    // Removes key; removing a key that is not there succeeds.
    status erase(database db, std::string_view key);
    // Makes the writes visible (and durable in durable mode). Ends the transaction either way.
    status commit();
    // Drops the writes and ends the transaction. Does nothing if it has already ended.
    void abort();

  private:
    friend class store;
    write_txn(store* owner, MDB_txn* txn);
    status remember_prior(database db, std::string_view key);
    void end();

    store* owner_ = nullptr;
    MDB_txn* txn_ = nullptr;
    std::vector<undo_entry> undo_;                        // simulate_crashes only
    std::set<std::pair<database, std::string>> touched_;  // keys already in undo_
  };

  // Opens (creating if needed) the store in `directory`, creating missing directories with mode
  // 0700. Errors: permission_denied, not_found, io_error for the directory (message has the path
  // and strerror text); invalid_argument for map_bytes == 0; storage_error from LMDB.
  static result<std::unique_ptr<store>> open(const std::string& directory,
                                             const store_options& options);
  store(const store&) = delete;
  store& operator=(const store&) = delete;
  // Closes the environment. REQUIRES: no transaction of this store is open.
  ~store();

  // The handle of the named database, creating it if missing (in its own write transaction).
  // Errors: invalid_argument (empty name or one containing '\0'), unavailable (a write
  // transaction is open), storage_error (e.g. more than limits::store_databases_max databases).
  result<database> open_database(std::string_view name);

  result<read_txn> begin_read() const;
  // Errors: unavailable if a write transaction is already open (LMDB would deadlock);
  // storage_error.
  result<write_txn> begin_write();

  // Durability point: flushes to disk (mdb_env_sync, force); a no-op in durable mode, where each
  // commit is already synced. In simulate_crashes mode everything committed so far survives a
  // later simulate_crash(). Errors: storage_error, io_error.
  status sync();

  // Simulation only. REQUIRES: options.simulate_crashes and no open transaction.
  // Rolls back every commit made since the last sync() (the undo journal, applied newest first in
  // one transaction) and closes the environment. Afterwards the object is only good for
  // destruction; reopen the directory with open(). Aborts the process if the rollback itself
  // fails (the simulation could no longer be trusted).
  void simulate_crash();

  const std::string& directory() const { return directory_; }
  // Commits not yet made durable: always 0 in durable mode.
  size_t unsynced_commits() const { return unsynced_commits_; }

private:
  store(std::string directory, const store_options& options, MDB_env* env);

  MDB_env* env_ = nullptr;  // null after simulate_crash()
  std::string directory_;
  store_options options_;
  bool write_open_ = false;
  mutable size_t reads_open_ = 0;
  size_t unsynced_commits_ = 0;
  // One entry per commit since the last sync() (simulate_crashes only).
  std::vector<std::vector<undo_entry>> journal_;
};

}  // namespace cmesh
