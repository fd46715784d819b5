// Tests for runtime/store/store.hpp: the LMDB wrapper and its simulated crashes.
#include <doctest/doctest.h>

#include "tests/temp_directory.hpp"

#include <cstdlib>
#include <map>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/store/store.hpp"

namespace {

using namespace cmesh;

using cmesh::testing::temp_directory;

store_options small_options() {
  store_options options;
  options.map_bytes = limits::store_map_bytes_sim;
  return options;
}

std::unique_ptr<store> open_store(const std::string& directory,
                                  const store_options& options = small_options()) {
  auto opened = store::open(directory, options);
  REQUIRE_MESSAGE(opened.ok(), (opened.ok() ? "" : opened.err().describe()));
  return std::move(opened).value();
}

store::database open_db(store& db, std::string_view name) {
  auto handle = db.open_database(name);
  REQUIRE(handle.ok());
  return *handle;
}

std::optional<std::string> read_key(store& s, store::database db, std::string_view key) {
  auto txn = s.begin_read();
  REQUIRE(txn.ok());
  auto value = txn->get(db, key);
  REQUIRE(value.ok());
  if (!*value) return std::nullopt;
  return std::string((*value)->begin(), (*value)->end());
}

std::map<std::string, std::string> contents(store& s, store::database db) {
  std::map<std::string, std::string> out;
  auto txn = s.begin_read();
  REQUIRE(txn.ok());
  const status visited = txn->for_each(db, [&](std::string_view key, std::string_view value) {
    out.emplace(std::string(key), std::string(value));
    return true;
  });
  REQUIRE_FALSE(visited);
  return out;
}

void put_and_commit(store& s, store::database db,
                    std::map<std::string, std::optional<std::string>> changes) {
  auto txn = s.begin_write();
  REQUIRE(txn.ok());
  for (const auto& [key, value] : changes) {
    if (value)
      REQUIRE_FALSE(txn->put(db, key, *value));
    else
      REQUIRE_FALSE(txn->erase(db, key));
  }
  REQUIRE_FALSE(txn->commit());
}

}  // namespace

TEST_CASE("store: put get erase and commit") {
  temp_directory dir;
  auto s = open_store(dir.path() + "/node");
  const auto db = open_db(*s, "things");
  {
    auto txn = s->begin_write();
    REQUIRE(txn.ok());
    REQUIRE_FALSE(txn->put(db, "a", "1"));
    REQUIRE_FALSE(txn->put(db, "b", std::string("\0two\0", 5)));
    auto own = txn->get(db, "a");
    REQUIRE(own.ok());
    REQUIRE(own->has_value());
    CHECK(**own == bytes{'1'});
    CHECK(read_key(*s, db, "a") == std::nullopt);  // not visible before commit
    REQUIRE_FALSE(txn->commit());
    CHECK(txn->put(db, "c", "3").code == errc::closed);
    CHECK(txn->commit().code == errc::closed);
  }
  CHECK(read_key(*s, db, "a") == "1");
  CHECK(read_key(*s, db, "b") == std::string("\0two\0", 5));
  CHECK(read_key(*s, db, "missing") == std::nullopt);

  put_and_commit(*s, db, {{"a", std::nullopt}, {"never-there", std::nullopt}});
  CHECK(read_key(*s, db, "a") == std::nullopt);
  CHECK(read_key(*s, db, "b").has_value());
}

TEST_CASE("store: an uncommitted write transaction is aborted") {
  temp_directory dir;
  auto s = open_store(dir.path());
  const auto db = open_db(*s, "things");
  put_and_commit(*s, db, {{"kept", "1"}});
  {
    auto txn = s->begin_write();
    REQUIRE(txn.ok());
    REQUIRE_FALSE(txn->put(db, "lost", "2"));
    REQUIRE_FALSE(txn->erase(db, "kept"));
  }
  CHECK(read_key(*s, db, "lost") == std::nullopt);
  CHECK(read_key(*s, db, "kept") == "1");
  {
    auto txn = s->begin_write();
    REQUIRE(txn.ok());
    REQUIRE_FALSE(txn->put(db, "lost", "2"));
    txn->abort();
    CHECK(txn->put(db, "x", "y").code == errc::closed);
  }
  CHECK(read_key(*s, db, "lost") == std::nullopt);
}

TEST_CASE("store: only one write transaction at a time") {
  temp_directory dir;
  auto s = open_store(dir.path());
  const auto db = open_db(*s, "things");
  auto first = s->begin_write();
  REQUIRE(first.ok());
  auto second = s->begin_write();
  REQUIRE_FALSE(second.ok());
  CHECK(second.err().code == errc::unavailable);
  CHECK(s->open_database("other").err().code == errc::unavailable);
  auto reader = s->begin_read();  // readers do not wait for the writer
  REQUIRE(reader.ok());
  REQUIRE_FALSE(first->put(db, "k", "v"));
  REQUIRE_FALSE(first->commit());
  CHECK(reader->get(db, "k")->has_value() == false);  // the reader keeps its snapshot
  CHECK(s->begin_write().ok());
}

TEST_CASE("store: keys must be non-empty and short enough") {
  temp_directory dir;
  auto s = open_store(dir.path());
  const auto db = open_db(*s, "things");
  auto txn = s->begin_write();
  REQUIRE(txn.ok());
  CHECK(txn->put(db, "", "v").code == errc::invalid_argument);
  CHECK(txn->put(db, std::string(600, 'k'), "v").code == errc::invalid_argument);
  CHECK(txn->get(db, "").err().code == errc::invalid_argument);
  CHECK(s->open_database("").err().code == errc::invalid_argument);
}

TEST_CASE("store: for_each visits in key order and stops early") {
  temp_directory dir;
  auto s = open_store(dir.path());
  const auto db = open_db(*s, "things");
  put_and_commit(*s, db, {{"c", "3"}, {"a", "1"}, {"b", "2"}, {"d", "4"}});
  auto txn = s->begin_read();
  REQUIRE(txn.ok());
  std::string order;
  REQUIRE_FALSE(txn->for_each(db, [&](std::string_view key, std::string_view value) {
    order += std::string(key) + "=" + std::string(value) + " ";
    return true;
  }));
  CHECK(order == "a=1 b=2 c=3 d=4 ");
  std::string first_two;
  REQUIRE_FALSE(txn->for_each(db, [&](std::string_view key, std::string_view) {
    first_two += key;
    return first_two.size() < 2;
  }));
  CHECK(first_two == "ab");
  const auto empty_db = open_db(*s, "empty");
  auto later = s->begin_read();
  REQUIRE(later.ok());
  int visits = 0;
  REQUIRE_FALSE(
      later->for_each(empty_db, [&](std::string_view, std::string_view) { return ++visits > 0; }));
  CHECK(visits == 0);
}

TEST_CASE("store: data survives close and reopen") {
  temp_directory dir;
  const std::string path = dir.path() + "/a/b/node";  // parents are created too
  {
    auto s = open_store(path);
    put_and_commit(*s, open_db(*s, "things"), {{"k", "v"}});
  }
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);
  auto s = open_store(path);
  CHECK(s->directory() == path);
  CHECK(read_key(*s, open_db(*s, "things"), "k") == "v");
}

TEST_CASE("store: named databases are isolated") {
  temp_directory dir;
  auto s = open_store(dir.path());
  const auto first = open_db(*s, "first");
  const auto second = open_db(*s, "second");
  CHECK(first != second);
  CHECK(open_db(*s, "first") == first);
  put_and_commit(*s, first, {{"k", "one"}});
  put_and_commit(*s, second, {{"k", "two"}, {"only-second", "x"}});
  CHECK(read_key(*s, first, "k") == "one");
  CHECK(read_key(*s, second, "k") == "two");
  CHECK(read_key(*s, first, "only-second") == std::nullopt);
  CHECK(contents(*s, first).size() == 1);
}

TEST_CASE("store: too many databases is a storage error") {
  temp_directory dir;
  auto s = open_store(dir.path());
  bool refused = false;
  for (unsigned i = 0; i <= limits::store_databases_max; ++i) {
    auto handle = s->open_database("db" + std::to_string(i));
    if (!handle.ok()) {
      CHECK(handle.err().code == errc::storage_error);
      refused = true;
      break;
    }
  }
  CHECK(refused);
}

TEST_CASE("store: a full map is a storage error") {
  temp_directory dir;
  store_options options;
  options.map_bytes = 256 * 1024;
  auto s = open_store(dir.path(), options);
  const auto db = open_db(*s, "things");
  auto txn = s->begin_write();
  REQUIRE(txn.ok());
  status last;
  for (int i = 0; i < 1000 && !last; ++i)
    last = txn->put(db, "key" + std::to_string(i), std::string(4000, 'v'));
  CHECK(last.code == errc::storage_error);
  CHECK(last.message.find("MDB_MAP_FULL") != std::string::npos);
}

TEST_CASE("store: simulated crash keeps exactly the synced state") {
  temp_directory dir;
  store_options options = small_options();
  options.simulate_crashes = true;
  const std::string path = dir.path() + "/node";
  std::map<std::string, std::string> synced_things;
  std::map<std::string, std::string> synced_other;
  {
    auto s = open_store(path, options);
    const auto things = open_db(*s, "things");
    const auto other = open_db(*s, "other");
    put_and_commit(*s, things, {{"keep", "1"}, {"overwrite", "old"}, {"erase", "gone?"}});
    put_and_commit(*s, other, {{"o", "1"}});
    CHECK(s->unsynced_commits() == 2);
    REQUIRE_FALSE(s->sync());
    CHECK(s->unsynced_commits() == 0);
    synced_things = contents(*s, things);
    synced_other = contents(*s, other);

    put_and_commit(*s, things, {{"overwrite", "new"}, {"added", "2"}, {"erase", std::nullopt}});
    put_and_commit(*s, things, {{"overwrite", "newer"}, {"added", std::nullopt}, {"added2", "3"}});
    put_and_commit(*s, other, {{"o", "2"}});
    {
      auto aborted = s->begin_write();  // an aborted transaction leaves nothing to undo
      REQUIRE(aborted.ok());
      REQUIRE_FALSE(aborted->put(things, "aborted", "x"));
    }
    const auto created = open_db(*s, "created-after-sync");
    put_and_commit(*s, created, {{"x", "y"}});
    CHECK(s->unsynced_commits() == 4);
    CHECK(read_key(*s, things, "overwrite") == "newer");
    s->simulate_crash();
    CHECK(s->begin_read().err().code == errc::closed);
    CHECK(s->begin_write().err().code == errc::closed);
    CHECK(s->sync().code == errc::closed);
  }
  auto s = open_store(path, options);
  CHECK(contents(*s, open_db(*s, "things")) == synced_things);
  CHECK(contents(*s, open_db(*s, "other")) == synced_other);
  CHECK(contents(*s, open_db(*s, "created-after-sync")).empty());
  CHECK(synced_things.at("overwrite") == "old");
  CHECK(synced_things.count("erase") == 1);
}

TEST_CASE("store: a crash with nothing unsynced loses nothing") {
  temp_directory dir;
  store_options options = small_options();
  options.simulate_crashes = true;
  {
    auto s = open_store(dir.path(), options);
    put_and_commit(*s, open_db(*s, "things"), {{"k", "v"}});
    REQUIRE_FALSE(s->sync());
    s->simulate_crash();
  }
  auto s = open_store(dir.path(), options);
  CHECK(read_key(*s, open_db(*s, "things"), "k") == "v");
}

TEST_CASE("store: durable mode has no unsynced commits") {
  temp_directory dir;
  auto s = open_store(dir.path());
  put_and_commit(*s, open_db(*s, "things"), {{"k", "v"}});
  CHECK(s->unsynced_commits() == 0);
  CHECK_FALSE(s->sync());

  temp_directory lazy_dir;
  store_options lazy = small_options();
  lazy.durable = false;
  auto l = open_store(lazy_dir.path(), lazy);
  put_and_commit(*l, open_db(*l, "things"), {{"k", "v"}});
  CHECK(l->unsynced_commits() == 1);
  CHECK_FALSE(l->sync());
  CHECK(l->unsynced_commits() == 0);
}

TEST_CASE("store: a directory that cannot be created gives a clear error") {
  temp_directory dir;
  const std::string file = dir.path() + "/plain-file";
  const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  ::close(fd);

  auto under_file = store::open(file + "/node", small_options());
  REQUIRE_FALSE(under_file.ok());
  CHECK(under_file.err().code == errc::io_error);
  CHECK(under_file.err().message.find(file + "/node") != std::string::npos);
  CHECK(under_file.err().message.find("Not a directory") != std::string::npos);

  auto is_file = store::open(file, small_options());
  REQUIRE_FALSE(is_file.ok());
  CHECK(is_file.err().message.find("not a directory") != std::string::npos);

  store_options no_map = small_options();
  no_map.map_bytes = 0;
  CHECK(store::open(dir.path() + "/x", no_map).err().code == errc::invalid_argument);
}
