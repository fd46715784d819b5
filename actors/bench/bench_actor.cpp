#include "actors/bench/bench_actor.hpp"

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/bench_messages.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::bench {

namespace {

caf::behavior echo(caf::event_based_actor* self, caf::actor transport, node_id me) {
  self->set_default_handler(ignore_unexpected);
  self->send(transport, register_atom::value, services::bench, caf::actor{self});
  return {
    [=](deliver_atom, const node_id& from, uint16_t, const bytes& data) {
      auto env = decode_envelope(data.data(), data.size());
      if (!env) return;
      auto message = decode_payload<probe>(*env);
      if (!message) return;
      ++message->hops;
      auto reply = encode_message(me, env->correlation, *message);
      if (reply) self->send(transport, send_atom::value, from, services::bench, std::move(*reply));
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
  };
}

struct flood_state {
  static inline const char* name = "cmesh.bench.flood";
  flood_config config;
  rng random;
  caf::actor transport;
};

void forward(caf::stateful_actor<flood_state>* self, probe message) {
  auto& st = self->state;
  const auto& nodes = *st.config.nodes;
  node_id to = nodes[st.random.below(nodes.size())];
  if (to == st.config.self) to = nodes[(st.random.below(nodes.size() - 1) + 1) % nodes.size()];
  auto encoded = encode_message(st.config.self, 0, message);
  if (encoded) self->send(st.transport, send_atom::value, to, services::bench, std::move(*encoded));
}

caf::behavior flood(caf::stateful_actor<flood_state>* self, caf::actor transport, flood_config config) {
  auto& st = self->state;
  st.config = std::move(config);
  st.random.reseed(st.config.rng_seed);
  st.transport = std::move(transport);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::bench, caf::actor{self});
  if (st.config.nodes && st.config.nodes->size() > 1)
    for (uint32_t i = 0; i < st.config.in_flight; ++i)
      forward(self, probe{i, 0, bytes(st.config.payload_bytes, 0x5a)});
  return {
    [=](deliver_atom, const node_id&, uint16_t, const bytes& data) {
      auto env = decode_envelope(data.data(), data.size());
      if (!env) return;
      auto message = decode_payload<probe>(*env);
      if (!message) return;
      ++message->hops;
      forward(self, std::move(*message));
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
  };
}

}  // namespace

caf::actor spawn_echo_actor(caf::actor_system& system, const caf::actor& transport, node_id self) {
  return system.spawn(echo, transport, self);
}

caf::actor spawn_flood_actor(caf::actor_system& system, const caf::actor& transport, flood_config config) {
  return system.spawn(flood, transport, std::move(config));
}

}  // namespace cmesh::bench
