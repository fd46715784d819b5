#include "sim/kv_client.hpp"

#include "actors/kv/kv_actor.hpp"
#include "messages/codec.hpp"
#include "messages/kv_messages.hpp"
#include "messages/seam.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::sim {

namespace {

using next_atom = caf::atom_constant<caf::atom("next")>;
using attempt_atom = caf::atom_constant<caf::atom("attempt")>;

struct client_state {
  static inline const char* name = "cmesh.sim.kv_client";
  kv_client_config config;
  world* shared = nullptr;
  kv_history* history = nullptr;
  rng random;
  uint64_t sequence = 0;
  uint64_t counter = 0;
  // The operation in progress.
  bool busy = false;
  size_t slot = 0;              // index in history->operations
  kv::request request;
  bool ambiguous = false;       // some attempt may have taken effect
  int64_t preferred = -1;       // node to try next (leader hint), -1 = random
};

using client_actor = caf::stateful_actor<client_state>;

void finish(client_actor* self, kv_operation::outcome outcome) {
  auto& st = self->state;
  auto& op = st.history->operations[st.slot];
  op.result = outcome;
  op.complete_us = st.shared->now_us;
  st.busy = false;
  self->delayed_send(self, std::chrono::microseconds(st.config.think_us), next_atom::value);
}

void give_up(client_actor* self) {
  auto& st = self->state;
  finish(self, st.ambiguous ? kv_operation::outcome::unknown : kv_operation::outcome::failed);
}

void retry(client_actor* self, int64_t after_us) {
  auto& st = self->state;
  auto& op = st.history->operations[st.slot];
  if (st.shared->now_us + after_us - op.invoke_us > st.config.give_up_us) return give_up(self);
  self->delayed_send(self, std::chrono::microseconds(after_us), attempt_atom::value);
}

void on_answer(client_actor* self, const kv::response& r) {
  auto& st = self->state;
  auto& op = st.history->operations[st.slot];
  switch (r.status) {
    case 200:
    case 201:
    case 404:
    case 409: {
      if (op.kind == kv_op_kind::get) {
        op.found = r.status == 200;
        op.read_value = r.value;
      } else if (op.kind == kv_op_kind::cas) {
        op.cas_succeeded = r.status == 200;
      }
      return finish(self, kv_operation::outcome::ok);
    }
    case 503: {
      st.preferred = -1;
      if (r.leader.size() == 32) {
        auto it = st.shared->index_of_node.find(node_id::from_bytes(r.leader.data()));
        if (it != st.shared->index_of_node.end()) {
          st.preferred = it->second;
          ++st.history->redirects;
          return retry(self, 1'000);
        }
      }
      return retry(self, 50'000);
    }
    case 408:
      st.ambiguous = true;
      ++st.history->ambiguous;
      st.preferred = -1;
      return retry(self, 20'000);
    default:  // 400, 413, 500: refused without effect
      return finish(self, st.ambiguous ? kv_operation::outcome::unknown
                                       : kv_operation::outcome::failed);
  }
}

void attempt(client_actor* self) {
  auto& st = self->state;
  auto& nodes = st.shared->nodes;
  int64_t target = st.preferred;
  st.preferred = -1;
  if (target < 0) target = static_cast<int64_t>(st.random.below(nodes.size()));
  const caf::actor* replica = nodes[target].view.up ? nodes[target].service(services::kv) : nullptr;
  if (!replica) return retry(self, 20'000);  // nothing sent: no ambiguity
  auto packed = pack_value(st.request);
  if (!packed) return finish(self, kv_operation::outcome::failed);
  ++st.history->attempts;
  self->request(*replica, std::chrono::microseconds(st.config.attempt_timeout_us),
                kv::kv_request_atom::value, std::move(*packed), st.config.identity)
      .then(
          [=](const bytes& answer) {
            auto r = unpack_value<kv::response>(answer.data(), answer.size());
            if (!r) {
              self->state.ambiguous = true;
              return retry(self, 20'000);
            }
            on_answer(self, *r);
          },
          [=](caf::error&) {
            // Timeout or the replica died: the write may or may not have been proposed.
            self->state.ambiguous = true;
            ++self->state.history->ambiguous;
            retry(self, 20'000);
          });
}

void start_operation(client_actor* self) {
  auto& st = self->state;
  kv_operation op;
  op.client = st.config.id;
  op.key = "k" + std::to_string(st.random.below(st.config.keys));
  op.invoke_us = st.shared->now_us;
  op.result = kv_operation::outcome::unknown;
  kv::request req;
  req.key = op.key;
  req.client_id = st.config.id + 1;
  auto dice = st.random.below(100);
  auto fresh_value = [&] { return "c" + std::to_string(st.config.id) + "-" + std::to_string(++st.counter); };
  if (dice < 40) {
    op.kind = kv_op_kind::get;
    req.operation = static_cast<uint8_t>(kv::op::get);
  } else if (dice < 75) {
    op.kind = kv_op_kind::put;
    op.value = fresh_value();
    req.operation = static_cast<uint8_t>(kv::op::put);
    req.value = op.value;
  } else if (dice < 90) {
    op.kind = kv_op_kind::cas;
    // Expect a value this client saw recently, or absence: both succeed and fail in practice.
    op.expect_present = st.random.chance(0.8);
    if (op.expect_present) {
      const auto& ops = st.history->operations;
      for (size_t i = ops.size(); i-- > 0;) {
        if (ops[i].key == op.key && ops[i].result == kv_operation::outcome::ok &&
            ops[i].kind == kv_op_kind::get && ops[i].found) {
          op.expected = ops[i].read_value;
          break;
        }
      }
      if (op.expected.empty()) op.expected = "none";
    }
    op.value = fresh_value();
    req.operation = static_cast<uint8_t>(kv::op::cas);
    req.expect_present = op.expect_present;
    req.expected = op.expected;
    req.value = op.value;
  } else {
    op.kind = kv_op_kind::del;
    req.operation = static_cast<uint8_t>(kv::op::del);
  }
  if (op.kind != kv_op_kind::get) req.sequence = ++st.sequence;
  st.slot = st.history->operations.size();
  st.history->operations.push_back(std::move(op));
  st.request = std::move(req);
  st.ambiguous = false;
  st.busy = true;
  attempt(self);
}

caf::behavior kv_client(client_actor* self, world* shared, kv_history* history,
                        kv_client_config config) {
  auto& st = self->state;
  st.config = std::move(config);
  st.shared = shared;
  st.history = history;
  st.random.reseed(st.config.seed);
  self->delayed_send(self, std::chrono::microseconds(st.config.think_us), next_atom::value);
  return {
    [=](next_atom) {
      if (!self->state.busy) start_operation(self);
    },
    [=](attempt_atom) {
      if (self->state.busy) attempt(self);
    },
  };
}

}  // namespace

caf::actor spawn_kv_client(caf::actor_system& system, world* shared, kv_history* history,
                           kv_client_config config) {
  return system.spawn(kv_client, shared, history, std::move(config));
}

}  // namespace cmesh::sim
