#include "actors/aggregator/aggregator_actor.hpp"

#include <chrono>
#include <memory>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::aggregator {

namespace {

constexpr std::string_view service_name = "aggregator";

struct aggregator_state {
  static inline const char* name = "cmesh.aggregator";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> directory;  // serving
  std::unique_ptr<client> agent;       // registering (created once the aggregator is known)
  node_id aggregator;                  // zero until known
  uint64_t malformed = 0;
  uint64_t requests = 0;
  uint64_t lookups_done = 0;
};

using aggregator_actor = caf::stateful_actor<aggregator_state>;
using lookup_atom = caf::atom_constant<caf::atom("ag_lookup")>;

int64_t clock_us(aggregator_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

int64_t mesh_us(aggregator_actor* self) { return clock_us(self) + self->state.ctx.epoch_offset_us; }

void record(aggregator_actor* self, std::string_view kind, const node_id& peer,
            const std::string& detail, int64_t value) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

void report(aggregator_actor* self, const event& e) {
  auto& st = self->state;
  std::string detail = e.detail;
  if (e.code != status_code::ok) detail = std::string(status_code_name(e.code)) + " " + detail;
  record(self, event_name(e.kind), e.agent, detail, 0);
  if (st.ctx.watcher) st.ctx.watcher->on_event(st.ctx.self, e, clock_us(self));
}

template <class T>
void send_to(aggregator_actor* self, const node_id& to, uint64_t correlation, const T& message) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, correlation, message);
  if (encoded) self->send(st.transport, send_atom::value, to, services::aggregator, std::move(*encoded));
}

void serve(aggregator_actor* self, const node_id& from, uint64_t correlation,
           const request_message& request);
void answer_agent(aggregator_actor* self, const node_id& from, const reply_message& reply);

// The agent's outputs: requests to the aggregator (served locally when it is this node),
// lookup results and events.
void carry_out(aggregator_actor* self, client_effects& out) {
  auto& st = self->state;
  auto sends = std::move(out.sends);
  auto lookups = std::move(out.lookups);
  auto events = std::move(out.events);
  out.clear();
  for (auto& s : sends) {
    if (s.to == st.ctx.self) {
      serve(self, st.ctx.self, 0, s.message);
      continue;
    }
    std::visit([&](const auto& m) { send_to(self, s.to, 0, m); }, s.message);
  }
  for (const auto& e : events) report(self, e);
  for (const auto& r : lookups) {
    ++st.lookups_done;
    record(self, "lookup_done", st.aggregator,
           "agents=" + std::to_string(r.agents.size()) + " discarded=" + std::to_string(r.discarded) +
               (r.timed_out ? " timed_out" : ""),
           static_cast<int64_t>(r.agents.size()));
    if (st.ctx.watcher) st.ctx.watcher->on_lookup(st.ctx.self, r, clock_us(self));
  }
}

void serve(aggregator_actor* self, const node_id& from, uint64_t correlation,
           const request_message& request) {
  auto& st = self->state;
  ++st.requests;
  if (!st.directory) {
    // Exactly one reply, as from a directory: this node runs none.
    std::string reason = "this node runs no aggregator directory";
    auto code = static_cast<uint8_t>(status_code::not_served);
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, lookup_agents>)
            send_to(self, from, correlation, lookup_reply{m.request_id, code, reason, {}});
          else
            send_to(self, from, correlation, registration_reply{m.request_id, code, reason, 0});
        },
        request);
    return;
  }
  effects out;
  st.directory->on_message(mesh_us(self), from, request, out);
  for (const auto& e : out.events) report(self, e);
  for (auto& s : out.sends) {
    if (s.to == st.ctx.self) {
      answer_agent(self, s.to, s.message);
      continue;
    }
    std::visit([&](const auto& m) { send_to(self, s.to, correlation, m); }, s.message);
  }
}

void answer_agent(aggregator_actor* self, const node_id& from, const reply_message& reply) {
  auto& st = self->state;
  if (!st.agent) return;
  client_effects out;
  st.agent->on_message(mesh_us(self), from, reply, out);
  carry_out(self, out);
}

void start_agent(aggregator_actor* self, const node_id& aggregator) {
  auto& st = self->state;
  if (st.agent || !st.ctx.agent) return;
  st.aggregator = aggregator;
  st.agent = std::make_unique<client>(*st.ctx.agent, st.ctx.listen_address, st.ctx.tags, aggregator,
                                      st.ctx.client);
  record(self, "agent_started", aggregator, st.ctx.aggregator_address, 0);
  client_effects out;
  st.agent->start(mesh_us(self), out);
  carry_out(self, out);
}

void on_envelope(aggregator_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (!env) {
    ++st.malformed;
    record(self, "malformed", from, env.err().describe(), 0);
    return;
  }
  auto request = [&](auto m) { serve(self, from, env->correlation, std::move(m)); };
  auto reply = [&](auto m) { answer_agent(self, from, std::move(m)); };
  std::string problem;
  switch (env->type) {
    case register_agent::type_id: problem = decode_then<register_agent>(*env, request); break;
    case i_am_alive::type_id: problem = decode_then<i_am_alive>(*env, request); break;
    case lookup_agents::type_id: problem = decode_then<lookup_agents>(*env, request); break;
    case registration_reply::type_id: problem = decode_then<registration_reply>(*env, reply); break;
    case lookup_reply::type_id: problem = decode_then<lookup_reply>(*env, reply); break;
    default: problem = "unknown aggregator message type " + std::to_string(env->type);
  }
  if (problem.empty()) return;
  ++st.malformed;
  record(self, "malformed", from, problem, 0);
}

caf::behavior run(aggregator_actor* self, caf::actor transport, actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  if (st.ctx.serve) st.directory = std::make_unique<machine>(st.ctx.directory, st.ctx.rng_seed);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::aggregator, caf::actor{self});
  if (st.ctx.agent) {
    if (st.ctx.aggregator_id == st.ctx.self || st.ctx.aggregator_address == st.ctx.listen_address) {
      start_agent(self, st.ctx.self);
    } else if (!st.ctx.aggregator_id.is_zero()) {
      self->send(st.transport, introduce_atom::value, st.ctx.aggregator_id, st.ctx.aggregator_address);
      start_agent(self, st.ctx.aggregator_id);
    } else {
      self->send(st.transport, dial_atom::value, st.ctx.aggregator_address, node_id{});
    }
  }
  for (size_t i = 0; i < st.ctx.lookups.size(); ++i)
    if (st.ctx.lookups[i].at_us >= clock_us(self))  // a restarted node does not rerun old ones
      self->delayed_send(self,
                       std::chrono::microseconds(std::max<int64_t>(0, st.ctx.lookups[i].at_us - clock_us(self))),
                       lookup_atom::value, static_cast<uint64_t>(i));
  auto period = std::chrono::milliseconds(st.ctx.directory.tick_ms);
  if (st.ctx.serve || st.ctx.agent) self->delayed_send(self, period, tick_atom::value);
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::aggregator) on_envelope(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      auto& s = self->state;
      if (!s.agent && s.ctx.agent && s.ctx.aggregator_id.is_zero() && address == s.ctx.aggregator_address)
        start_agent(self, peer);
    },
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string& address, const std::string& reason) {
      auto& s = self->state;
      if (s.agent || address != s.ctx.aggregator_address) return;
      // The aggregator is not up yet: try again on the next tick.
      record(self, "dial_failed", node_id{}, address + ": " + reason, 0);
    },
    [=](tick_atom) {
      auto& s = self->state;
      if (s.directory) {
        effects out;
        s.directory->tick(mesh_us(self), out);
        for (const auto& e : out.events) report(self, e);
      }
      if (s.agent) {
        client_effects out;
        s.agent->tick(mesh_us(self), out);
        carry_out(self, out);
      } else if (s.ctx.agent && s.ctx.aggregator_id.is_zero()) {
        self->send(s.transport, dial_atom::value, s.ctx.aggregator_address, node_id{});
      }
      self->delayed_send(self, std::chrono::milliseconds(s.ctx.directory.tick_ms), tick_atom::value);
    },
    [=](lookup_atom, uint64_t index) {
      auto& s = self->state;
      if (!s.agent || index >= s.ctx.lookups.size()) return;
      client_effects out;
      auto id = s.agent->lookup(mesh_us(self), s.ctx.lookups[index].tags, s.ctx.lookups[index].limit, out);
      if (!id) record(self, "lookup_refused", node_id{}, id.err().describe(), 0);
      carry_out(self, out);
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      std::string line = "aggregator";
      if (s.directory) line += " agents=" + std::to_string(s.directory->entries().size());
      line += " requests=" + std::to_string(s.requests);
      if (s.ctx.agent)
        line += std::string(" registered=") + (s.agent && s.agent->registered() ? "yes" : "no");
      line += " malformed=" + std::to_string(s.malformed);
      return line;
    },
  };
}

}  // namespace

caf::actor spawn_aggregator_actor(caf::actor_system& system, const caf::actor& transport,
                                  actor_context context) {
  return system.spawn(run, transport, std::move(context));
}

}  // namespace cmesh::aggregator
