// Tests for sim/model/linearizability.hpp: the WGL/Lowe checker on per-key register histories.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/rng.hpp"
#include "sim/model/linearizability.hpp"

namespace {

using cmesh::sim::check_linearizability;
using cmesh::sim::describe;
using cmesh::sim::kv_op_kind;
using cmesh::sim::kv_operation;
using outcome = kv_operation::outcome;

kv_operation put(uint64_t client, std::string key, std::string value, int64_t invoke_us,
                 int64_t complete_us) {
  kv_operation op;
  op.client = client;
  op.kind = kv_op_kind::put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.invoke_us = invoke_us;
  op.complete_us = complete_us;
  return op;
}

kv_operation get(uint64_t client, std::string key, std::optional<std::string> read,
                 int64_t invoke_us, int64_t complete_us) {
  kv_operation op;
  op.client = client;
  op.kind = kv_op_kind::get;
  op.key = std::move(key);
  op.found = read.has_value();
  op.read_value = read.value_or("");
  op.invoke_us = invoke_us;
  op.complete_us = complete_us;
  return op;
}

kv_operation del(uint64_t client, std::string key, int64_t invoke_us, int64_t complete_us) {
  kv_operation op;
  op.client = client;
  op.kind = kv_op_kind::del;
  op.key = std::move(key);
  op.invoke_us = invoke_us;
  op.complete_us = complete_us;
  return op;
}

kv_operation cas(uint64_t client, std::string key, std::optional<std::string> expected,
                 std::string value, bool swapped, int64_t invoke_us, int64_t complete_us) {
  kv_operation op;
  op.client = client;
  op.kind = kv_op_kind::cas;
  op.key = std::move(key);
  op.expect_present = expected.has_value();
  op.expected = expected.value_or("");
  op.value = std::move(value);
  op.cas_succeeded = swapped;
  op.invoke_us = invoke_us;
  op.complete_us = complete_us;
  return op;
}

kv_operation unknown(kv_operation op) {
  op.result = outcome::unknown;
  op.complete_us = 0;  // ignored for unknown outcomes; deliberately before invoke
  return op;
}

kv_operation failed(kv_operation op) {
  op.result = outcome::failed;
  return op;
}

bool linearizable(const std::vector<kv_operation>& history) {
  auto result = check_linearizability(history);
  REQUIRE_FALSE(result.timed_out);
  return result.linearizable;
}

// Random histories from a real sequential register: every op gets a linearization point inside
// its interval, ops are applied to a std::map in point order, and the results are recorded, so
// every generated history is linearizable by construction.
struct history_shape {
  size_t operations = 200;
  uint32_t keys = 1;
  uint32_t clients = 5;
  uint32_t values = 3;
  int64_t latency_us_max = 50;
  int64_t think_us_max = 20;
  double unknown_fraction = 0;
  double failed_fraction = 0;
};

struct planned_op {
  kv_operation op;
  int64_t point_us = 0;
  bool takes_effect = true;
};

planned_op plan_op(cmesh::rng& random, const history_shape& shape, uint64_t client,
                   int64_t free_us) {
  planned_op planned;
  kv_operation& op = planned.op;
  op.client = client;
  op.key = "k" + std::to_string(random.below(shape.keys));
  const uint64_t roll = random.below(10);
  op.kind = roll < 4 ? kv_op_kind::get : roll < 7 ? kv_op_kind::put
          : roll < 8 ? kv_op_kind::del : kv_op_kind::cas;
  if (op.kind == kv_op_kind::put || op.kind == kv_op_kind::cas)
    op.value = "v" + std::to_string(random.below(shape.values));
  if (op.kind == kv_op_kind::cas) {
    op.expect_present = !random.chance(0.3);
    if (op.expect_present) op.expected = "v" + std::to_string(random.below(shape.values));
  }
  op.invoke_us = free_us + static_cast<int64_t>(random.below(shape.think_us_max + 1));
  const auto duration_us = 1 + static_cast<int64_t>(random.below(shape.latency_us_max));
  op.complete_us = op.invoke_us + duration_us;
  planned.point_us = op.invoke_us + static_cast<int64_t>(random.below(duration_us + 1));
  if (random.chance(shape.unknown_fraction)) {
    op.result = outcome::unknown;
    planned.takes_effect = random.chance(0.6);
    planned.point_us = op.invoke_us +
                       static_cast<int64_t>(random.below(4 * shape.latency_us_max + 1));
  } else if (random.chance(shape.failed_fraction)) {
    op.result = outcome::failed;
    planned.takes_effect = false;
  }
  return planned;
}

void apply_in_point_order(std::vector<planned_op>& plan) {
  std::vector<size_t> order(plan.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return plan[a].point_us < plan[b].point_us; });
  std::map<std::string, std::string> store;
  for (size_t index : order) {
    if (!plan[index].takes_effect) continue;
    kv_operation& op = plan[index].op;
    auto it = store.find(op.key);
    switch (op.kind) {
      case kv_op_kind::get:
        op.found = it != store.end();
        op.read_value = op.found ? it->second : "";
        break;
      case kv_op_kind::put: store[op.key] = op.value; break;
      case kv_op_kind::del: store.erase(op.key); break;
      case kv_op_kind::cas: {
        const bool present = it != store.end();
        op.cas_succeeded = present == op.expect_present && (!present || it->second == op.expected);
        if (op.cas_succeeded) store[op.key] = op.value;
        break;
      }
    }
  }
}

std::vector<kv_operation> generate_history(cmesh::rng& random, const history_shape& shape) {
  std::vector<int64_t> client_free_us(shape.clients, 0);
  std::vector<planned_op> plan;
  for (size_t i = 0; i < shape.operations; ++i) {
    // Closed loop: the client that became idle first issues the next operation.
    const auto client = static_cast<uint64_t>(
        std::min_element(client_free_us.begin(), client_free_us.end()) - client_free_us.begin());
    plan.push_back(plan_op(random, shape, client, client_free_us[client]));
    client_free_us[client] = plan.back().op.complete_us;
  }
  apply_in_point_order(plan);
  std::vector<kv_operation> history;
  for (auto& planned : plan) history.push_back(std::move(planned.op));
  for (size_t i = history.size(); i > 1; --i)  // the checker must not depend on input order
    std::swap(history[i - 1], history[random.below(i)]);
  return history;
}

// Exhaustive reference for small histories: tries every order of the ops over one map of all keys
// (no partitioning by key), each op allowed next unless a pending ok op completed strictly before
// it was invoked; failed ops are left out and unknown ones may be left out.
bool reference_linearizable(const std::vector<kv_operation>& history, uint32_t placed,
                            std::map<std::string, std::string>& store) {
  bool ok_pending = false;
  for (size_t i = 0; i < history.size(); ++i)
    if (!(placed >> i & 1) && history[i].result == outcome::ok) ok_pending = true;
  if (!ok_pending) return true;
  for (size_t i = 0; i < history.size(); ++i) {
    const kv_operation& op = history[i];
    if ((placed >> i & 1) || op.result == outcome::failed) continue;
    bool blocked = false;
    for (size_t j = 0; j < history.size(); ++j)
      if (!(placed >> j & 1) && history[j].result == outcome::ok &&
          history[j].complete_us < op.invoke_us)
        blocked = true;
    if (blocked) continue;
    const auto before = store;
    auto it = store.find(op.key);
    const bool present = it != store.end();
    bool valid = true;
    switch (op.kind) {
      case kv_op_kind::get:
        valid = op.result != outcome::ok ||
                (op.found == present && (!present || it->second == op.read_value));
        break;
      case kv_op_kind::put: store[op.key] = op.value; break;
      case kv_op_kind::del: store.erase(op.key); break;
      case kv_op_kind::cas: {
        const bool matches = present == op.expect_present && (!present || it->second == op.expected);
        valid = op.result != outcome::ok || matches == op.cas_succeeded;
        if (matches) store[op.key] = op.value;
        break;
      }
    }
    if (valid && reference_linearizable(history, placed | 1u << i, store)) return true;
    store = before;
  }
  return false;
}

// Values a and b are read and expected; c is only ever written.
kv_operation random_small_op(cmesh::rng& random, double unknown_fraction) {
  static const char* const values[] = {"a", "b", "c"};
  kv_operation op;
  op.client = random.below(3);
  op.key = random.chance(0.8) ? "x" : "y";
  op.kind = static_cast<kv_op_kind>(random.below(4));
  op.value = values[random.below(3)];
  op.expect_present = random.chance(0.7);
  op.expected = values[random.below(2)];
  op.invoke_us = 5 * static_cast<int64_t>(random.below(8));  // coarse: many equal times
  op.complete_us = op.invoke_us + 5 * static_cast<int64_t>(random.below(4));
  op.result = random.chance(unknown_fraction) ? outcome::unknown
              : random.chance(0.1)            ? outcome::failed
                                              : outcome::ok;
  op.found = random.chance(0.7);
  op.read_value = values[random.below(2)];
  op.cas_succeeded = random.chance(0.5);
  return op;
}

}  // namespace

TEST_CASE("linearizability: a sequential history is linearizable") {
  CHECK(linearizable({
      get(1, "k", std::nullopt, 0, 10),
      put(1, "k", "a", 20, 30),
      get(2, "k", "a", 40, 50),
      put(2, "k", "b", 60, 70),
      get(1, "k", "b", 80, 90),
  }));
  CHECK(linearizable({}));
}

TEST_CASE("linearizability: a stale read after a completed write is refuted") {
  auto result = check_linearizability({
      put(1, "k", "a", 0, 10),
      put(1, "k", "b", 20, 30),
      get(2, "k", "a", 40, 50),
  });
  CHECK_FALSE(result.linearizable);
  CHECK_FALSE(result.timed_out);
  CHECK(result.key == "k");
}

TEST_CASE("linearizability: a read concurrent with a write may see the old or the new value") {
  CHECK(linearizable({put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 60), get(2, "k", "a", 30, 50)}));
  CHECK(linearizable({put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 60), get(2, "k", "b", 30, 50)}));
  CHECK_FALSE(linearizable(
      {put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 60), get(2, "k", "c", 30, 50)}));
}

TEST_CASE("linearizability: a new-old inversion between two reads is refuted") {
  // Both reads overlap the write, but the second starts after the first saw the new value.
  CHECK_FALSE(linearizable({
      put(1, "k", "old", 0, 10),
      put(1, "k", "new", 20, 100),
      get(2, "k", "new", 30, 40),
      get(3, "k", "old", 50, 60),
  }));
  // The same reads overlapping each other may be ordered old then new.
  CHECK(linearizable({
      put(1, "k", "old", 0, 10),
      put(1, "k", "new", 20, 100),
      get(2, "k", "new", 30, 55),
      get(3, "k", "old", 50, 60),
  }));
}

TEST_CASE("linearizability: an op completing exactly when another is invoked counts as concurrent") {
  CHECK(linearizable({put(1, "k", "a", 0, 10), get(2, "k", std::nullopt, 10, 20)}));
  CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), get(2, "k", std::nullopt, 11, 20)}));
}

TEST_CASE("linearizability: cas swaps only on a match and a mismatch saw a different value") {
  SUBCASE("cas expecting absent on a fresh key swaps") {
    CHECK(linearizable({cas(1, "k", std::nullopt, "x", true, 0, 10), get(1, "k", "x", 20, 30)}));
    CHECK_FALSE(linearizable({cas(1, "k", std::nullopt, "x", false, 0, 10)}));
  }
  SUBCASE("cas expecting the current value swaps and a reader sees the new value") {
    CHECK(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "a", "b", true, 20, 30),
                        get(3, "k", "b", 40, 50)}));
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "a", "b", true, 20, 30),
                              get(3, "k", "a", 40, 50)}));
  }
  SUBCASE("a swap reported against a value the key never held is refuted") {
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "z", "b", true, 20, 30)}));
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", std::nullopt, "b", true, 20, 30)}));
  }
  SUBCASE("a mismatch leaves the value and is refuted when the value did match") {
    CHECK(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "z", "b", false, 20, 30),
                        get(3, "k", "a", 40, 50)}));
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "z", "b", false, 20, 30),
                              get(3, "k", "b", 40, 50)}));
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "a", "b", false, 20, 30)}));
    CHECK(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", std::nullopt, "b", false, 20, 30)}));
  }
  SUBCASE("two concurrent cas from the same value cannot both swap") {
    CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "a", "b", true, 20, 40),
                              cas(3, "k", "a", "c", true, 25, 45)}));
    CHECK(linearizable({put(1, "k", "a", 0, 10), cas(2, "k", "a", "b", true, 20, 40),
                        cas(3, "k", "a", "c", false, 25, 45)}));
  }
}

TEST_CASE("linearizability: del removes the value and del of an absent key is a no-op") {
  CHECK(linearizable({del(1, "k", 0, 10), get(1, "k", std::nullopt, 20, 30)}));
  CHECK(linearizable({put(1, "k", "a", 0, 10), del(2, "k", 20, 30), get(3, "k", std::nullopt, 40, 50)}));
  CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), del(2, "k", 20, 30), get(3, "k", "a", 40, 50)}));
  CHECK(linearizable({put(1, "k", "a", 0, 10), del(2, "k", 20, 30), del(2, "k", 40, 50),
                      put(1, "k", "b", 60, 70), get(3, "k", "b", 80, 90)}));
}

TEST_CASE("linearizability: a get of a never written key reads absent") {
  CHECK(linearizable({get(1, "k", std::nullopt, 0, 10)}));
  CHECK_FALSE(linearizable({get(1, "k", "", 0, 10)}));  // present with an empty value is not absent
  CHECK(linearizable({put(1, "k", "", 0, 10), get(1, "k", "", 20, 30)}));
}

TEST_CASE("linearizability: a read may see a value written only by an unknown write") {
  CHECK(linearizable({unknown(put(1, "k", "a", 0, 10)), get(2, "k", "a", 500, 510)}));
  // It may also take effect long after its client gave up on it.
  CHECK(linearizable({unknown(put(1, "k", "a", 0, 10)), get(2, "k", std::nullopt, 500, 510),
                      get(2, "k", "a", 900, 910)}));
  // Or never.
  CHECK(linearizable({unknown(put(1, "k", "a", 0, 10)), get(2, "k", std::nullopt, 500, 510)}));
  // But not before it was invoked.
  CHECK_FALSE(linearizable({get(2, "k", "a", 0, 10), unknown(put(1, "k", "a", 20, 30))}));
  // An unknown cas takes effect only if its expectation holds when it does.
  CHECK(linearizable({put(1, "k", "a", 0, 10), unknown(cas(2, "k", "a", "b", false, 20, 30)),
                      get(3, "k", "b", 40, 50)}));
  CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), unknown(cas(2, "k", "z", "b", true, 20, 30)),
                            get(3, "k", "b", 40, 50)}));
}

TEST_CASE("linearizability: a read of a value never written is refuted") {
  auto result = check_linearizability({put(1, "k", "a", 0, 10), unknown(put(1, "k", "b", 20, 30)),
                                       get(2, "k", "ghost", 40, 50)});
  CHECK_FALSE(result.linearizable);
  CHECK(result.explanation.find("ghost") != std::string::npos);
}

TEST_CASE("linearizability: an unknown write observed and then un-observed is refuted") {
  CHECK_FALSE(linearizable({
      put(1, "k", "a", 0, 10),
      unknown(put(2, "k", "b", 20, 30)),
      get(3, "k", "b", 40, 50),
      get(3, "k", "a", 60, 70),
  }));
  // A second write of the old value makes the same reads fine.
  CHECK(linearizable({
      put(1, "k", "a", 0, 10),
      unknown(put(2, "k", "b", 20, 30)),
      get(3, "k", "b", 40, 50),
      put(1, "k", "a", 52, 58),
      get(3, "k", "a", 60, 70),
  }));
}

TEST_CASE("linearizability: many pending unknown writes do not blow up a refutation") {
  // 40 unknown writes pending forever: a search over their subsets would never finish. Identical
  // ones are interchangeable and values no one reads are indistinguishable, so it must not.
  for (bool distinct_values : {false, true}) {
    CAPTURE(distinct_values);
    std::vector<kv_operation> history;
    for (int i = 0; i < 40; ++i)
      history.push_back(unknown(put(1, "k", distinct_values ? "w" + std::to_string(i) : "w", i, 0)));
    int64_t now_us = 100;
    for (int i = 0; i < 30; ++i) {
      history.push_back(put(2, "k", "a" + std::to_string(i), now_us, now_us + 10));
      history.push_back(get(3, "k", "a" + std::to_string(i), now_us + 20, now_us + 30));
      now_us += 40;
    }
    CHECK(linearizable(history));
    history.push_back(get(3, "k", "ghost", now_us, now_us + 10));
    auto result = check_linearizability(history, 200'000);
    CHECK_FALSE(result.timed_out);
    CHECK_FALSE(result.linearizable);
  }
}

TEST_CASE("linearizability: an unknown write of a value no one reads can explain a cas mismatch") {
  CHECK(linearizable({put(1, "k", "a", 0, 10), unknown(put(2, "k", "zzz", 20, 30)),
                      cas(3, "k", "a", "b", false, 40, 50)}));
  CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), failed(put(2, "k", "zzz", 20, 30)),
                            cas(3, "k", "a", "b", false, 40, 50)}));
}

TEST_CASE("linearizability: unknown reads are dropped whatever they recorded") {
  CHECK(linearizable({put(1, "k", "a", 0, 10), unknown(get(2, "k", "never", 20, 30))}));
}

TEST_CASE("linearizability: failed operations are ignored") {
  CHECK(linearizable({put(1, "k", "a", 0, 10), failed(put(2, "k", "b", 20, 30)),
                      get(3, "k", "a", 40, 50), failed(get(3, "k", "garbage", 60, 70))}));
  // The same write as ok makes the read stale.
  CHECK_FALSE(linearizable({put(1, "k", "a", 0, 10), put(2, "k", "b", 20, 30),
                            get(3, "k", "a", 40, 50)}));
}

TEST_CASE("linearizability: an ok op completing before it is invoked is refuted") {
  auto result = check_linearizability({put(1, "k", "a", 50, 40)});
  CHECK_FALSE(result.linearizable);
  CHECK(result.explanation.find("completes before it is invoked") != std::string::npos);
}

TEST_CASE("linearizability: keys are checked independently and the failing key is named") {
  // Interleaved in time, but each key alone is fine.
  CHECK(linearizable({put(1, "x", "1", 0, 10), put(2, "y", "1", 5, 15), get(3, "x", "1", 20, 30),
                      get(3, "y", "1", 20, 30), put(1, "x", "2", 40, 50), get(2, "y", "1", 60, 70)}));
  std::vector<kv_operation> history = {
      put(1, "alpha", "1", 0, 10), get(2, "alpha", "1", 20, 30),
      put(1, "beta", "1", 0, 10),  put(1, "beta", "2", 20, 30), get(2, "beta", "1", 40, 50),
      put(1, "gamma", "1", 0, 10), get(2, "gamma", "1", 20, 30),
  };
  auto result = check_linearizability(history);
  CHECK_FALSE(result.linearizable);
  CHECK(result.key == "beta");
  CHECK(result.explanation.find("key beta") == 0);
  CHECK(result.explanation.find(describe(history[4])) != std::string::npos);
  CHECK(result.explanation.find("alpha") == std::string::npos);
  CHECK(result.explanation.find("longest linearizable prefix: 2 of 3") != std::string::npos);
  CHECK(result.explanation.find("then stuck: " + describe(history[4])) != std::string::npos);
}

TEST_CASE("linearizability: the smallest failing key is the one reported") {
  std::vector<kv_operation> history = {
      put(1, "a", "1", 0, 10), put(1, "a", "2", 20, 30), get(1, "a", "1", 40, 50),
      get(1, "a", "2", 60, 70),
      put(1, "b", "1", 0, 10), get(2, "b", "0", 20, 30),
  };
  auto result = check_linearizability(history);
  CHECK_FALSE(result.linearizable);
  CHECK(result.key == "b");
  CHECK(result.explanation.find("keys not linearizable: a b") != std::string::npos);
}

TEST_CASE("linearizability: histories longer than 64 ops per key use the whole bitset") {
  std::vector<kv_operation> history;
  int64_t now_us = 0;
  for (int i = 0; i < 150; ++i) {
    history.push_back(put(1, "k", "v" + std::to_string(i), now_us, now_us + 10));
    history.push_back(get(2, "k", "v" + std::to_string(i), now_us + 5, now_us + 15));
    now_us += 20;
  }
  CHECK(linearizable(history));
  history.push_back(get(3, "k", "v70", now_us, now_us + 10));  // stale by 79 writes
  auto result = check_linearizability(history);
  CHECK_FALSE(result.linearizable);
  CHECK(result.explanation.find("longest linearizable prefix: 300 of 301") != std::string::npos);
}

TEST_CASE("linearizability: a search over budget is flagged as timed out without a verdict") {
  std::vector<kv_operation> history;
  for (int i = 0; i < 10; ++i) history.push_back(put(1, "k", "v", i * 20, i * 20 + 10));
  auto result = check_linearizability(history, 3);
  CHECK(result.timed_out);
  CHECK(result.linearizable);
  CHECK(result.key == "k");
  CHECK(result.states_explored == 3);
  CHECK_FALSE(check_linearizability(history, 100).timed_out);
}

TEST_CASE("linearizability: describe names client kind key values outcome and times") {
  CHECK(describe(cas(3, "k1", std::nullopt, "x", true, 120, 340)) ==
        "client 3 cas k1 (expect absent) -> x ok swapped [120..340]");
  CHECK(describe(cas(3, "k1", "a", "x", false, 120, 340)) ==
        "client 3 cas k1 (expect a) -> x ok mismatch [120..340]");
  CHECK(describe(get(1, "k", "hello world", 1, 2)) == "client 1 get k ok read \"hello world\" [1..2]");
  CHECK(describe(get(1, "k", std::nullopt, 1, 2)) == "client 1 get k ok read absent [1..2]");
  CHECK(describe(get(1, "k", "absent", 1, 2)) == "client 1 get k ok read \"absent\" [1..2]");
  CHECK(describe(unknown(put(2, "k", "", 5, 9))) == "client 2 put k -> \"\" unknown [5..?]");
  CHECK(describe(failed(del(2, "k", 5, 9))) == "client 2 del k failed [5..9]");
}

TEST_CASE("linearizability: random register histories pass and a forged read is refuted") {
  cmesh::rng random(20240611);
  history_shape shape;
  shape.operations = 120;
  shape.keys = 3;
  shape.unknown_fraction = 0.1;
  shape.failed_fraction = 0.05;
  int refuted = 0;
  for (int round = 0; round < 200; ++round) {
    CAPTURE(round);
    auto history = generate_history(random, shape);
    auto result = check_linearizability(history);
    CHECK_FALSE(result.timed_out);
    REQUIRE_MESSAGE(result.linearizable, result.explanation);
    std::vector<size_t> reads;
    for (size_t i = 0; i < history.size(); ++i)
      if (history[i].kind == kv_op_kind::get && history[i].result == outcome::ok) reads.push_back(i);
    REQUIRE_FALSE(reads.empty());
    kv_operation& forged = history[reads[random.below(reads.size())]];
    forged.found = true;
    forged.read_value = "never-written";
    auto forged_result = check_linearizability(history);
    CHECK_FALSE(forged_result.timed_out);
    CHECK_FALSE(forged_result.linearizable);
    CHECK(forged_result.key == forged.key);
    refuted += forged_result.linearizable ? 0 : 1;
  }
  CHECK(refuted == 200);
}

TEST_CASE("linearizability: verdicts agree with an exhaustive search on small random histories") {
  cmesh::rng random(31337);
  int linearizable_count = 0;
  int refuted_count = 0;
  for (int round = 0; round < 4000; ++round) {
    std::vector<kv_operation> history;
    const uint64_t size = 1 + random.below(8);
    const double unknown_fraction = round % 2 == 0 ? 0.15 : 0.5;
    for (uint64_t i = 0; i < size; ++i) history.push_back(random_small_op(random, unknown_fraction));
    std::map<std::string, std::string> store;
    const bool expected = reference_linearizable(history, 0, store);
    auto result = check_linearizability(history);
    CAPTURE(round);
    REQUIRE_FALSE(result.timed_out);
    if (result.linearizable != expected) {
      std::string listing;
      for (const auto& op : history) listing += describe(op) + "\n";
      FAIL_CHECK("expected " << (expected ? "linearizable" : "refuted") << " for\n" << listing);
    }
    (expected ? linearizable_count : refuted_count) += 1;
  }
  MESSAGE(linearizable_count << " linearizable and " << refuted_count << " refuted");
  CHECK(linearizable_count > 500);
  CHECK(refuted_count > 500);
}

TEST_CASE("linearizability: a 2000 operation history from 5 clients is decided quickly") {
  cmesh::rng random(7);
  history_shape shape;
  shape.operations = 2000;
  shape.keys = 10;
  shape.clients = 5;
  auto history = generate_history(random, shape);
  const auto start = std::chrono::steady_clock::now();
  auto result = check_linearizability(history);
  const auto elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start).count();
  MESSAGE("2000 ops over 10 keys: " << elapsed_us << " us, " << result.states_explored
                                    << " configurations");
  CHECK_FALSE(result.timed_out);
  CHECK(result.linearizable);

  shape.unknown_fraction = 0.05;  // unknown writes stay pending forever: a harder search
  history = generate_history(random, shape);
  const auto start_unknown = std::chrono::steady_clock::now();
  result = check_linearizability(history);
  const auto elapsed_unknown_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - start_unknown).count();
  MESSAGE("2000 ops with 5% unknown: " << elapsed_unknown_us << " us, " << result.states_explored
                                       << " configurations");
  CHECK_FALSE(result.timed_out);
  CHECK(result.linearizable);
}
