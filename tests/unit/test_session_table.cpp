// iam::session_table: who holds a live session, with which scopes (docs/iam.md §13).
#include <doctest/doctest.h>

#include "actors/iam/session_table.hpp"
#include "runtime/crypto/identity.hpp"

using cmesh::identity;
using cmesh::iam::session_table;

TEST_CASE("session table: a holder is served while a live session covers the scope - revoked and expired sessions stop counting - the bound drops the first to end") {
  const auto alice = identity::derive_for_simulation(31, 1).public_key;
  const auto bob = identity::derive_for_simulation(31, 2).public_key;
  session_table t(3);
  CHECK(t.check(alice, "state.read", 0) == session_table::verdict::no_session);
  t.add(alice, "a1", {"state.read"}, 1'000, 0);
  CHECK(t.check(alice, "state.read", 10) == session_table::verdict::ok);
  CHECK(t.check(alice, "state.write", 10) == session_table::verdict::insufficient_scope);
  CHECK(t.check(bob, "state.read", 10) == session_table::verdict::no_session);
  t.add(alice, "a2", {"state.write", "events.read"}, 500, 0);
  CHECK(t.check(alice, "state.write", 10) == session_table::verdict::ok);
  CHECK(t.check(alice, "state.write", 500) == session_table::verdict::insufficient_scope);  // a2 ended
  CHECK(t.check(alice, "state.read", 1'000) == session_table::verdict::no_session);          // both ended
  cmesh::node_id holder;
  CHECK(t.remove("a1", &holder));
  CHECK(holder == alice);
  CHECK_FALSE(t.remove("a1"));
  CHECK(t.check(alice, "state.read", 10) == session_table::verdict::insufficient_scope);
  CHECK(t.has_live(alice, 10));
  CHECK_FALSE(t.has_live(alice, 600));
  // Full (3): the session that ends first goes.
  t.add(bob, "b1", {"state.read"}, 2'000, 0);
  t.add(bob, "b2", {"state.read"}, 3'000, 0);
  CHECK(t.size() == 3);
  t.add(bob, "b3", {"state.read"}, 4'000, 10);
  CHECK(t.size() == 3);
  CHECK_FALSE(t.has_live(alice, 10));  // a2 (ends at 500) was dropped
  // Expired ones go before a live one when there is room to make.
  auto emptied = t.prune(2'500);
  CHECK(t.size() == 2);
  CHECK(emptied.empty());
  CHECK(t.check(bob, "state.read", 2'500) == session_table::verdict::ok);
}

TEST_CASE("session table: grant parses the scope the IAM sends and counts the lifetime from now") {
  const auto alice = identity::derive_for_simulation(31, 1).public_key;
  session_table t;
  CHECK(t.grant(alice, "g1", "state.read events.read", 1'000, 500));
  CHECK(t.check(alice, "events.read", 1'499) == session_table::verdict::ok);
  CHECK(t.check(alice, "events.read", 1'500) == session_table::verdict::no_session);
  CHECK_FALSE(t.grant(alice, "g2", "state.read\x01", 1'000, 500));
  CHECK(t.size() == 1);
}
