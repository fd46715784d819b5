#include "runtime/store/store.hpp"

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <lmdb.h>
#include <sys/stat.h>

namespace cmesh {

namespace {

errc errc_from_code(int rc) {
  switch (rc) {
    case EACCES:
    case EPERM:
    case EROFS:
      return errc::permission_denied;
    case ENOENT:
      return errc::not_found;
    case MDB_BAD_VALSIZE:
      return errc::invalid_argument;
    case EIO:
    case ENOSPC:
      return errc::io_error;
    default:
      return errc::storage_error;
  }
}

// mdb_strerror covers both LMDB codes and errno values.
error lmdb_error(const std::string& what, int rc) {
  return error{errc_from_code(rc), what + ": " + mdb_strerror(rc)};
}

MDB_val as_val(std::string_view text) {
  return MDB_val{text.size(), const_cast<char*>(text.data())};
}

std::string_view as_view(const MDB_val& value) {
  return {static_cast<const char*>(value.mv_data), value.mv_size};
}

error closed_error() { return error{errc::closed, "transaction has ended"}; }

status check_key(MDB_env* env, std::string_view key) {
  const auto key_max = static_cast<size_t>(mdb_env_get_maxkeysize(env));
  if (key.empty()) return error{errc::invalid_argument, "empty key"};
  if (key.size() > key_max)
    return error{errc::invalid_argument, "key of " + std::to_string(key.size()) +
                                             " bytes exceeds " + std::to_string(key_max)};
  return ok_status();
}

result<std::optional<bytes>> get_in(MDB_txn* txn, store::database db, std::string_view key) {
  if (txn == nullptr) return closed_error();
  if (status bad = check_key(mdb_txn_env(txn), key); bad) return bad;
  MDB_val key_val = as_val(key);
  MDB_val value{};
  const int rc = mdb_get(txn, db, &key_val, &value);
  if (rc == MDB_NOTFOUND) return std::optional<bytes>{};
  if (rc != 0) return lmdb_error("mdb_get", rc);
  // The value points into the map and dies with the transaction: copy it.
  const auto* begin = static_cast<const uint8_t*>(value.mv_data);
  return std::optional<bytes>(bytes(begin, begin + value.mv_size));
}

// Creates `directory` and any missing parents (mode 0700); an existing directory is fine.
status make_directories(const std::string& directory) {
  if (directory.empty()) return error{errc::invalid_argument, "empty store directory"};
  for (size_t end = directory.find('/', 1);; end = directory.find('/', end + 1)) {
    const std::string prefix = directory.substr(0, end);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      const int code = errno;
      return error{
          errc_from_code(code) == errc::storage_error ? errc::io_error : errc_from_code(code),
          "cannot create store directory " + directory +
              (prefix == directory ? "" : " (at " + prefix + ")") + ": " + std::strerror(code)};
    }
    if (end == std::string::npos) break;
  }
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0) {
    const int code = errno;
    return error{errc::io_error,
                 "cannot stat store directory " + directory + ": " + std::strerror(code)};
  }
  if (!S_ISDIR(info.st_mode))
    return error{errc::io_error, "store directory " + directory + " exists and is not a directory"};
  return ok_status();
}

}  // namespace

// ---- store ------------------------------------------------------------------------------------

store::store(std::string directory, const store_options& options, MDB_env* env)
    : env_(env), directory_(std::move(directory)), options_(options) {}

store::~store() {
  assert(!write_open_ && reads_open_ == 0);
  if (env_ != nullptr) mdb_env_close(env_);
}

result<std::unique_ptr<store>> store::open(const std::string& directory,
                                           const store_options& options) {
  if (options.map_bytes == 0) return error{errc::invalid_argument, "store map_bytes is 0"};
  if (status made = make_directories(directory); made) return made;
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return lmdb_error("mdb_env_create for " + directory, rc);
  unsigned flags = MDB_NOTLS;
  // A simulated node's store is used by one process only: no lock file, and a writable map so
  // LMDB does not open a second descriptor for meta writes (one descriptor per node, so 10,000
  // simulated nodes fit the usual descriptor limit), and no fsync at all, because durability in
  // simulation is modelled by the undo journal, not by the disk.
  if (options.simulate_crashes)
    flags |= MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOLOCK | MDB_WRITEMAP;
  else if (!options.durable)
    flags |= MDB_NOSYNC;
  rc = mdb_env_set_mapsize(env, options.map_bytes);
  if (rc == 0) rc = mdb_env_set_maxdbs(env, limits::store_databases_max);
  if (rc == 0) rc = mdb_env_open(env, directory.c_str(), flags, 0600);
  if (rc != 0) {
    mdb_env_close(env);
    return lmdb_error("cannot open store in " + directory, rc);
  }
  return std::unique_ptr<store>(new store(directory, options, env));
}

result<store::database> store::open_database(std::string_view name) {
  if (name.empty() || name.find('\0') != std::string_view::npos)
    return error{errc::invalid_argument, "database name is empty or contains a NUL character"};
  auto txn = begin_write();
  if (!txn) return txn.err();
  MDB_dbi dbi = 0;
  const std::string name_text(name);
  const int rc = mdb_dbi_open(txn->txn_, name_text.c_str(), MDB_CREATE, &dbi);
  if (rc != 0) return lmdb_error("cannot open database " + name_text + " in " + directory_, rc);
  // Creating a database is not journaled (see the header), so commit it directly.
  const int commit_rc = mdb_txn_commit(txn->txn_);
  txn->txn_ = nullptr;
  txn->end();
  if (commit_rc != 0)
    return lmdb_error("cannot create database " + name_text + " in " + directory_, commit_rc);
  return database{dbi};
}

result<store::read_txn> store::begin_read() const {
  if (env_ == nullptr) return error{errc::closed, "store " + directory_ + " is closed"};
  MDB_txn* txn = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return lmdb_error("cannot begin read transaction in " + directory_, rc);
  return read_txn(this, txn);
}

result<store::write_txn> store::begin_write() {
  if (env_ == nullptr) return error{errc::closed, "store " + directory_ + " is closed"};
  if (write_open_)
    return error{errc::unavailable, "a write transaction is already open in " + directory_};
  MDB_txn* txn = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return lmdb_error("cannot begin write transaction in " + directory_, rc);
  return write_txn(this, txn);
}

status store::sync() {
  if (env_ == nullptr) return error{errc::closed, "store " + directory_ + " is closed"};
  // Durable mode: every commit was already synced (data pages, then the meta page), so another
  // flush here would only cost a device round trip.
  if (!options_.simulate_crashes && !options_.durable) {
    const int rc = mdb_env_sync(env_, 1);
    if (rc != 0) return lmdb_error("cannot sync store " + directory_, rc);
  }
  journal_.clear();
  unsynced_commits_ = 0;
  return ok_status();
}

namespace {

[[noreturn]] void crash_failed(const std::string& directory, const char* step, int rc) {
  std::fprintf(stderr, "cmesh: fatal: simulate_crash of store %s failed in %s: %s\n",
               directory.c_str(), step, mdb_strerror(rc));
  std::abort();
}

}  // namespace

void store::simulate_crash() {
  assert(options_.simulate_crashes);
  assert(!write_open_ && reads_open_ == 0);
  if (env_ == nullptr) return;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) crash_failed(directory_, "mdb_txn_begin", rc);
  for (auto commit = journal_.rbegin(); commit != journal_.rend(); ++commit) {
    for (auto entry = commit->rbegin(); entry != commit->rend(); ++entry) {
      MDB_val key = as_val(entry->key);
      if (entry->prior) {
        MDB_val value = as_val(*entry->prior);
        rc = mdb_put(txn, entry->db, &key, &value, 0);
        if (rc != 0) crash_failed(directory_, "mdb_put", rc);
      } else {
        rc = mdb_del(txn, entry->db, &key, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND) crash_failed(directory_, "mdb_del", rc);
      }
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) crash_failed(directory_, "mdb_txn_commit", rc);
  mdb_env_close(env_);
  env_ = nullptr;
  journal_.clear();
  unsynced_commits_ = 0;
}

// ---- read_txn ---------------------------------------------------------------------------------

store::read_txn::read_txn(const store* owner, MDB_txn* txn) : owner_(owner), txn_(txn) {
  ++owner_->reads_open_;
}

store::read_txn::read_txn(read_txn&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), txn_(std::exchange(other.txn_, nullptr)) {}

store::read_txn::~read_txn() {
  if (txn_ == nullptr) return;
  mdb_txn_abort(txn_);
  --owner_->reads_open_;
}

result<std::optional<bytes>> store::read_txn::get(database db, std::string_view key) const {
  return get_in(txn_, db, key);
}

status store::read_txn::for_each(
    database db, const std::function<bool(std::string_view, std::string_view)>& visit) const {
  if (txn_ == nullptr) return closed_error();
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn_, db, &cursor);
  if (rc != 0) return lmdb_error("mdb_cursor_open", rc);
  // Closes the cursor on every way out, including an exception thrown by `visit`.
  const std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> guard(cursor, mdb_cursor_close);
  MDB_val key{};
  MDB_val value{};
  for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
    if (!visit(as_view(key), as_view(value))) return ok_status();
  }
  if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get", rc);
  return ok_status();
}

// ---- write_txn --------------------------------------------------------------------------------

store::write_txn::write_txn(store* owner, MDB_txn* txn) : owner_(owner), txn_(txn) {
  owner_->write_open_ = true;
}

store::write_txn::write_txn(write_txn&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      txn_(std::exchange(other.txn_, nullptr)),
      undo_(std::move(other.undo_)),
      touched_(std::move(other.touched_)) {}

store::write_txn::~write_txn() { abort(); }

void store::write_txn::abort() {
  if (txn_ == nullptr) return;
  mdb_txn_abort(txn_);
  txn_ = nullptr;
  end();
}

void store::write_txn::end() {
  owner_->write_open_ = false;
  undo_.clear();
  touched_.clear();
}

result<std::optional<bytes>> store::write_txn::get(database db, std::string_view key) const {
  return get_in(txn_, db, key);
}

// Journals the value `key` had before this transaction first changed it (simulate_crashes only).
status store::write_txn::remember_prior(database db, std::string_view key) {
  if (!owner_->options_.simulate_crashes) return ok_status();
  auto [where, inserted] = touched_.emplace(db, std::string(key));
  if (!inserted) return ok_status();
  auto prior = get_in(txn_, db, key);
  if (!prior) {
    touched_.erase(where);
    return prior.err();
  }
  undo_entry entry{db, std::string(key), std::nullopt};
  if (*prior) entry.prior.emplace((*prior)->begin(), (*prior)->end());
  undo_.push_back(std::move(entry));
  return ok_status();
}

status store::write_txn::put(database db, std::string_view key, std::string_view value) {
  if (txn_ == nullptr) return closed_error();
  if (status bad = check_key(owner_->env_, key); bad) return bad;
  if (status journaled = remember_prior(db, key); journaled) return journaled;
  MDB_val key_val = as_val(key);
  MDB_val value_val = as_val(value);
  const int rc = mdb_put(txn_, db, &key_val, &value_val, 0);
  if (rc != 0) return lmdb_error("mdb_put", rc);
  return ok_status();
}

status store::write_txn::erase(database db, std::string_view key) {
  if (txn_ == nullptr) return closed_error();
  if (status bad = check_key(owner_->env_, key); bad) return bad;
  if (status journaled = remember_prior(db, key); journaled) return journaled;
  MDB_val key_val = as_val(key);
  const int rc = mdb_del(txn_, db, &key_val, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error("mdb_del", rc);
  return ok_status();
}

status store::write_txn::commit() {
  if (txn_ == nullptr) return closed_error();
  const int rc = mdb_txn_commit(txn_);  // frees the transaction even when it fails
  txn_ = nullptr;
  if (rc != 0) {
    end();
    return lmdb_error("mdb_txn_commit in " + owner_->directory_, rc);
  }
  if (owner_->options_.simulate_crashes) owner_->journal_.push_back(std::move(undo_));
  if (owner_->options_.simulate_crashes || !owner_->options_.durable) ++owner_->unsynced_commits_;
  end();
  return ok_status();
}

}  // namespace cmesh
