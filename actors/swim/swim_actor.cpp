#include "actors/swim/swim_actor.hpp"

#include <chrono>
#include <limits>
#include <map>
#include <memory>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::swim {

namespace {

constexpr std::string_view service_name = "swim";
constexpr size_t pending_per_address_max = 16;  // messages waiting for a dial to an address

struct swim_state {
  static inline const char* name = "cmesh.swim";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> protocol;
  int64_t armed_us = std::numeric_limits<int64_t>::max();  // the timer that is set, if any
  std::map<node_id, std::string> introduced;                // addresses told to the transport
  std::map<std::string, std::vector<bytes>> waiting_dial;   // by address: encoded messages
  std::vector<caf::actor> watchers;                         // told about membership changes
  uint64_t malformed = 0;
  bool stopped = false;
};

using swim_actor = caf::stateful_actor<swim_state>;
using broadcast_atom = caf::atom_constant<caf::atom("sw_bcast")>;

int64_t now_us(swim_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

void report(swim_actor* self, const event& e) {
  auto& st = self->state;
  if (st.ctx.watcher) st.ctx.watcher->on_event(st.ctx.self, e, now_us(self));
  if (e.kind == event_kind::member_joined || e.kind == event_kind::member_failed ||
      e.kind == event_kind::member_left) {
    bool alive = e.kind == event_kind::member_joined;
    for (const auto& w : st.watchers)
      self->send(w, swim_member_atom::value, e.member, alive ? e.address : std::string(), alive);
  }
  if (!st.ctx.events || e.kind == event_kind::rumor_received) return;
  std::string detail = e.address.empty() ? "incarnation " + std::to_string(e.incarnation)
                                         : e.address;
  st.ctx.events->record({st.ctx.self, service_name, event_name(e.kind), e.member, detail, e.value_us});
}

template <class T>
result<bytes> encode(swim_actor* self, const T& message) {
  return encode_message(self->state.ctx.self, 0, message);
}

void arm_timer(swim_actor* self) {
  auto& st = self->state;
  int64_t next = st.protocol->next_deadline_us();
  if (next >= st.armed_us) return;
  st.armed_us = next;
  int64_t delay = std::max<int64_t>(0, next - now_us(self));
  self->delayed_send(self, std::chrono::microseconds(delay), tick_atom::value);
}

void carry_out(swim_actor* self, effects& out) {
  auto& st = self->state;
  for (auto& s : out.sends) {
    auto encoded = std::visit([&](const auto& m) { return encode(self, m); }, s.message);
    if (!encoded) continue;
    if (st.ctx.watcher) {
      bool rumor = std::visit(
          [](const auto& m) {
            if constexpr (requires { m.updates; }) {
              for (const auto& u : m.updates)
                if (u.kind == static_cast<uint8_t>(update_kind::rumor)) return true;
            }
            return false;
          },
          s.message);
      st.ctx.watcher->on_sent(st.ctx.self, s.message.index(), rumor, now_us(self));
    }
    if (s.to.is_zero()) {
      // A seed known only by address: dial it; the message leaves when the link is up.
      auto& queue = st.waiting_dial[s.address];
      if (queue.empty()) self->send(st.transport, dial_atom::value, s.address, node_id{});
      if (queue.size() < pending_per_address_max) queue.push_back(std::move(*encoded));
      continue;
    }
    if (!s.address.empty()) {
      auto known = st.introduced.find(s.to);
      if (known == st.introduced.end() || known->second != s.address) {
        st.introduced[s.to] = s.address;
        self->send(st.transport, introduce_atom::value, s.to, s.address);
      }
    }
    self->send(st.transport, send_atom::value, s.to, services::swim, std::move(*encoded));
  }
  for (const auto& e : out.events) report(self, e);
  out.clear();
  arm_timer(self);
}

template <class T>
bool step_as(swim_actor* self, const node_id& from, const envelope& env) {
  auto message = decode_payload<T>(env);
  if (!message) return false;
  effects out;
  self->state.protocol->receive(from, wire_message{std::move(*message)}, now_us(self), out);
  carry_out(self, out);
  return true;
}

void on_envelope(swim_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  bool stepped = false;
  if (env) {
    switch (env->type) {
      case ping::type_id: stepped = step_as<ping>(self, from, *env); break;
      case ack::type_id: stepped = step_as<ack>(self, from, *env); break;
      case ping_req::type_id: stepped = step_as<ping_req>(self, from, *env); break;
      case nack::type_id: stepped = step_as<nack>(self, from, *env); break;
      case gossip::type_id: stepped = step_as<gossip>(self, from, *env); break;
      case sync_request::type_id: stepped = step_as<sync_request>(self, from, *env); break;
      case sync_response::type_id: stepped = step_as<sync_response>(self, from, *env); break;
      default: break;
    }
  }
  if (stepped) return;
  ++st.malformed;
  if (st.ctx.events)
    st.ctx.events->record({st.ctx.self, service_name, "malformed", from,
                           env ? "undecodable message of type " + std::to_string(env->type)
                               : env.err().describe(),
                           0});
}

caf::behavior run(swim_actor* self, caf::actor transport, actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  st.protocol = std::make_unique<machine>(st.ctx.membership, st.ctx.self, st.ctx.listen_address,
                                          rng(st.ctx.rng_seed));
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::swim, caf::actor{self});
  int64_t now = now_us(self);
  if (!st.ctx.known.empty()) st.protocol->restore(st.ctx.known, now);
  effects out;
  st.protocol->join(st.ctx.seeds, now, out);
  carry_out(self, out);
  if (st.ctx.broadcast_at_us >= 0)
    self->delayed_send(self, std::chrono::microseconds(std::max<int64_t>(0, st.ctx.broadcast_at_us - now)),
                       broadcast_atom::value);
  return {
    [=](broadcast_atom) {
      effects out;
      self->state.protocol->broadcast_rumor(1, bytes(64, 0x42), now_us(self), out);
      carry_out(self, out);
    },
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::swim && !self->state.stopped) on_envelope(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      auto& s = self->state;
      auto waiting = s.waiting_dial.find(address);
      if (waiting == s.waiting_dial.end()) return;
      for (auto& encoded : waiting->second)
        self->send(s.transport, send_atom::value, peer, services::swim, std::move(encoded));
      s.waiting_dial.erase(waiting);
    },
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string& address, const std::string&) {
      self->state.waiting_dial.erase(address);
    },
    [=](tick_atom) {
      auto& s = self->state;
      s.armed_us = std::numeric_limits<int64_t>::max();
      if (s.stopped) return;
      effects out;
      s.protocol->tick(now_us(self), out);
      carry_out(self, out);
    },
    [=](swim_rumor_atom, uint64_t id, const bytes& payload) -> std::string {
      effects out;
      auto s = self->state.protocol->broadcast_rumor(id, payload, now_us(self), out);
      carry_out(self, out);
      return s.ok() ? std::string() : s.describe();
    },
    [=](swim_watch_atom, const caf::actor& watcher) {
      auto& s = self->state;
      s.watchers.push_back(watcher);
      for (const auto& [id, m] : s.protocol->members())
        if (m.state == member_state::alive || m.state == member_state::suspect)
          self->send(watcher, swim_member_atom::value, id, m.address, true);
    },
    [=](swim_members_atom) {
      std::vector<std::string> lines;
      for (const auto& [id, m] : self->state.protocol->members())
        if (m.state == member_state::alive || m.state == member_state::suspect)
          lines.push_back(did_from_node_id(id) + " " + m.address);
      return lines;
    },
    [=](shutdown_atom) {
      auto& s = self->state;
      if (!s.stopped) {
        effects out;
        s.protocol->leave(now_us(self), out);
        carry_out(self, out);
        s.stopped = true;
      }
      return caf::atom("ok");
    },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.protocol->statistics();
      return "swim live=" + std::to_string(s.protocol->live_count()) +
             " suspect=" + std::to_string(s.protocol->suspect_count()) +
             " incarnation=" + std::to_string(s.protocol->incarnation()) +
             " probes=" + std::to_string(stats.probes) +
             " failed_probes=" + std::to_string(stats.probes_failed) +
             " malformed=" + std::to_string(s.malformed);
    },
  };
}

}  // namespace

caf::actor spawn_swim_actor(caf::actor_system& system, const caf::actor& transport,
                            actor_context context) {
  return system.spawn(run, transport, std::move(context));
}

}  // namespace cmesh::swim
