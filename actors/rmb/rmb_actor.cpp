#include "actors/rmb/rmb_actor.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <tuple>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "actors/rmb/rmb_store.hpp"
#include "actors/rmb/twin_machine.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::rmb {

namespace {

constexpr std::string_view service_name = "rmb";

// agent -> twin: (twin_deliver_atom, bytes request envelope (msgpack), bool redelivery)
// twin -> agent: (twin_answer_atom, bytes request envelope, uint8_t code, std::string reason,
//                 bytes data, bytes new_state /* empty = unchanged */)
using twin_deliver_atom = caf::atom_constant<caf::atom("tw_deliv")>;
using twin_answer_atom = caf::atom_constant<caf::atom("tw_answer")>;

// ---- twin actor ---------------------------------------------------------------------------------

struct twin_actor_state {
  static inline const char* name = "cmesh.rmb.twin";
  std::unique_ptr<twin_machine> logic;
};

caf::behavior twin_actor(caf::stateful_actor<twin_actor_state>* self, node_id twin,
                         twin_state initial, caf::actor agent) {
  self->state.logic = std::make_unique<twin_machine>(twin, std::move(initial));
  return {
    [=](twin_deliver_atom, const bytes& packed, bool) {
      auto request = unpack_value<twin_envelope>(packed.data(), packed.size());
      if (!request) return;  // the agent packed it: cannot happen
      auto result = self->state.logic->handle(*request);
      bytes new_state = result.state_changed ? self->state.logic->encode_state() : bytes{};
      self->send(agent, twin_answer_atom::value, packed, static_cast<uint8_t>(result.code),
                 result.reason, result.data, new_state);
    },
  };
}

// ---- agent --------------------------------------------------------------------------------------

// Other agents' extra twins remembered (twins_hosted): bounds what peers can make us hold.
constexpr size_t hosted_twins_known_max = 65536;

struct agent_state {
  static inline const char* name = "cmesh.rmb.agent";
  agent_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> bus;
  std::optional<message_store> storage;
  bool failed = false;  // storage failed: fail-stop, nothing more leaves
  std::map<node_id, caf::actor> twins;
  std::map<node_id, std::string> addresses;  // agents' listen addresses (peer_up)
  twins_hosted announcement;                 // our extra twins, each signed for this node
  std::map<node_id, node_id> hosted_by;      // other agents' extra twins -> their node (verified)
  std::map<message_key, caf::response_promise> waiting;  // in-process senders
  uint64_t malformed = 0;
};

using agent_actor = caf::stateful_actor<agent_state>;

int64_t now_us(agent_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count() +
         self->state.ctx.epoch_offset_us;
}

void report(agent_actor* self, std::string_view kind, const node_id& peer, std::string_view detail) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, 0});
}

template <class T>
void send_wire(agent_actor* self, const node_id& to, const T& message, uint64_t correlation = 0) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, correlation, message);
  if (!encoded) return report(self, "encode_error", to, encoded.err().describe());
  self->send(st.transport, send_atom::value, to, services::rmb, std::move(*encoded));
}

// Carries out one input's effects: persist (with the twin states that changed), send, deliver,
// report outcomes. On a storage failure nothing of it leaves and the agent stops serving.
void carry_out(agent_actor* self, effects& out,
               const std::vector<message_store::twin_write>& twin_states = {}) {
  auto& st = self->state;
  if (st.failed) return out.clear();
  if (st.storage && (!out.persist.empty() || !twin_states.empty())) {
    auto s = st.storage->persist(out.persist, twin_states);
    if (!s.ok()) {
      report(self, "storage_error", node_id{}, s.describe());
      st.failed = true;
      return out.clear();
    }
  }
  for (auto& o : out.sends) {
    std::visit([&](const auto& m) { send_wire(self, o.to, m); }, o.message);
  }
  for (auto& d : out.deliveries) {
    auto twin = st.twins.find(d.twin);
    auto packed = pack_value(d.request);
    if (twin == st.twins.end() || !packed) continue;
    self->send(twin->second, twin_deliver_atom::value, std::move(*packed), d.redelivery);
  }
  for (auto& o : out.outcomes) {
    auto waiting = st.waiting.find({o.twin, o.uid});
    if (waiting == st.waiting.end()) continue;
    bytes data = o.reply ? o.reply->data : bytes{};
    std::string reason = o.reason;
    if (o.reply && o.reply->status != 0 && reason.empty()) reason = o.reply->reason;
    uint8_t code = static_cast<uint8_t>(o.reply ? static_cast<status_code>(o.reply->status) : o.code);
    waiting->second.deliver(code, reason, data);
    st.waiting.erase(waiting);
  }
  auto lookups = std::move(out.lookups);
  out.lookups.clear();
  for (const auto& twin : lookups) {
    // An extra twin another agent announced lives there; otherwise every node hosts its own
    // identity as a twin: try the node of the same key.
    auto host = st.hosted_by.find(twin);
    const node_id agent_node = host != st.hosted_by.end() ? host->second : twin;
    auto address = st.addresses.find(agent_node);
    if (address != st.addresses.end())
      self->send(st.transport, introduce_atom::value, agent_node, address->second);
    effects more;
    st.bus->register_twin_location(now_us(self), twin, agent_node, more);
    carry_out(self, more);
  }
  for (const auto& e : out.events)
    report(self, event_name(e.kind), e.peer,
           e.detail.empty() ? std::string(status_code_name(e.code)) : e.detail);
  out.clear();
}

void on_twin_answer(agent_actor* self, const bytes& packed, uint8_t code, const std::string& reason,
                    const bytes& data, const bytes& new_state) {
  auto& st = self->state;
  auto request = unpack_value<twin_envelope>(packed.data(), packed.size());
  if (!request) return;
  auto key = key_of(*request);
  effects out;
  auto s = st.bus->twin_reply(now_us(self), key, static_cast<status_code>(code), reason, data, out);
  if (!s.ok()) {
    report(self, "reply_refused", node_id{}, s.describe());
    return carry_out(self, out);
  }
  std::vector<message_store::twin_write> writes;
  auto destination = twin_from(request->destination);
  if (!new_state.empty()) writes.emplace_back(destination, new_state);
  carry_out(self, out, writes);
  if (!new_state.empty() && st.ctx.observer && !st.failed)
    st.ctx.observer->on_effect(st.ctx.self, destination, request->command, request->uid, data);
}

void on_deliver(agent_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (!env) {
    ++st.malformed;
    return report(self, "malformed", from, env.err().describe());
  }
  effects out;
  switch (env->type) {
    case twin_envelope::type_id: {
      auto m = decode_payload<twin_envelope>(*env);
      if (!m) break;
      st.bus->on_message(now_us(self), from, std::move(*m), out);
      return carry_out(self, out);
    }
    case envelope_ack::type_id: {
      auto m = decode_payload<envelope_ack>(*env);
      if (!m) break;
      st.bus->on_message(now_us(self), from, std::move(*m), out);
      return carry_out(self, out);
    }
    case locate_twin::type_id: {
      auto m = decode_payload<locate_twin>(*env);
      if (!m) break;
      twin_location answer;
      answer.twin = m->twin;
      auto twin = twin_from(m->twin);
      if (st.bus->hosts(twin)) {
        answer.found = true;
        answer.agent = to_bytes(st.ctx.self);
      } else if (auto h = st.hosted_by.find(twin); h != st.hosted_by.end()) {
        answer.found = true;
        answer.agent = to_bytes(h->second);
        if (auto a = st.addresses.find(h->second); a != st.addresses.end()) answer.address = a->second;
      } else if (auto a = st.addresses.find(twin); a != st.addresses.end()) {
        answer.found = true;
        answer.agent = to_bytes(twin);
        answer.address = a->second;
      }
      return send_wire(self, from, answer, env->correlation);
    }
    case twins_hosted::type_id: {
      auto m = decode_payload<twins_hosted>(*env);
      if (!m) break;
      size_t refused = 0;
      for (const auto& entry : m->twins) {
        if (!verify_hosted(entry, from) || st.hosted_by.size() >= hosted_twins_known_max) {
          ++refused;
          continue;
        }
        const node_id twin = twin_from(entry.twin);
        st.hosted_by[twin] = from;
        st.bus->register_twin_location(now_us(self), twin, from, out);
      }
      if (refused > 0)
        report(self, "twins_refused", from, std::to_string(refused) + " hosted twin(s) without a valid signature or over the bound");
      return carry_out(self, out);
    }
    default:
      break;
  }
  ++st.malformed;
  report(self, "malformed", from, "undecodable rmb message of type " + std::to_string(env->type));
}

void boot(agent_actor* self) {
  auto& st = self->state;
  restored_state restored;
  std::map<node_id, bytes> twin_states;
  if (st.ctx.storage) {
    auto opened = message_store::open(*st.ctx.storage);
    if (!opened) {
      report(self, "storage_error", node_id{}, opened.err().describe());
      st.failed = true;
    } else {
      st.storage = std::move(*opened);
      auto loaded = st.storage->load();
      auto states = st.storage->load_twin_states();
      if (!loaded || !states) {
        report(self, "storage_error", node_id{},
               (!loaded ? loaded.err() : states.err()).describe());
        st.failed = true;
      } else {
        restored = std::move(*loaded);
        twin_states = std::move(*states);
      }
    }
  }
  for (const auto& twin : st.ctx.twins) {
    auto hosted = st.bus->host_twin(twin);
    if (!hosted.ok()) {
      report(self, "twin_refused", twin.public_key, hosted.describe());
      continue;
    }
    twin_state initial;
    if (auto saved = twin_states.find(twin.public_key); saved != twin_states.end()) {
      auto decoded = twin_machine::decode_state(saved->second);
      if (decoded) initial = std::move(*decoded);
      else report(self, "storage_error", twin.public_key, "twin state: " + decoded.err().describe());
    }
    st.twins[twin.public_key] =
        self->spawn<caf::linked>(twin_actor, twin.public_key, std::move(initial), caf::actor{self});
    if (twin.public_key != st.ctx.self) st.announcement.twins.push_back(sign_hosted(twin, st.ctx.self));
  }
  effects out;
  st.bus->restore(now_us(self), std::move(restored), out);
  carry_out(self, out);
}

caf::behavior agent(agent_actor* self, caf::actor transport, agent_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.ctx.bus.self = st.ctx.self;
  st.transport = std::move(transport);
  st.bus = std::make_unique<machine>(st.ctx.bus, st.ctx.rng_seed);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::rmb, caf::actor{self});
  boot(self);
  self->delayed_send(self, std::chrono::milliseconds(st.ctx.bus.tick_ms), tick_atom::value);
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::rmb) on_deliver(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      auto& s = self->state;
      if (!address.empty()) s.addresses[peer] = address;
      // Tell every new peer where our extra twins live (the node's own identity needs no word).
      if (!s.announcement.twins.empty()) send_wire(self, peer, s.announcement, 0);
    },
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
    [=](tick_atom) {
      auto& s = self->state;
      effects out;
      s.bus->tick(now_us(self), out);
      carry_out(self, out);
      self->delayed_send(self, std::chrono::milliseconds(s.ctx.bus.tick_ms), tick_atom::value);
    },
    [=](twin_answer_atom, const bytes& packed, uint8_t code, const std::string& reason,
        const bytes& data, const bytes& new_state) {
      on_twin_answer(self, packed, code, reason, data, new_state);
    },
    [=](rmb_where_atom, const bytes& twin, const bytes& agent_node, const std::string& address) {
      auto& s = self->state;
      auto key = twin_from(twin);
      auto agent_key = twin_from(agent_node);
      if (key.is_zero() || agent_key.is_zero()) return;
      if (!address.empty()) {
        s.addresses[agent_key] = address;
        self->send(s.transport, introduce_atom::value, agent_key, address);
      }
      effects out;
      s.bus->register_twin_location(now_us(self), key, agent_key, out);
      carry_out(self, out);
    },
    [=](rmb_send_atom, const bytes& source, const bytes& destination, const std::string& command,
        const bytes& data, uint32_t expiry_s) {
      auto& s = self->state;
      auto promise = self->make_response_promise<uint8_t, std::string, bytes>();
      if (s.failed) {
        promise.deliver(static_cast<uint8_t>(status_code::undeliverable),
                        std::string("the agent's storage failed"), bytes{});
        return promise;
      }
      request r;
      r.source = twin_from(source);
      r.destination = twin_from(destination);
      r.command = command;
      r.data = data;
      r.expiry_s = expiry_s;
      effects out;
      auto uid = s.bus->send(now_us(self), r, out);
      if (!uid) {
        carry_out(self, out);
        promise.deliver(static_cast<uint8_t>(status_code::malformed), uid.err().describe(), bytes{});
        return promise;
      }
      s.waiting.emplace(message_key{r.source, *uid}, promise);
      carry_out(self, out);
      return promise;
    },
    [=](shutdown_atom) {
      // Everything acknowledged is already durable (persist before send): nothing to flush.
      return caf::atom("ok");
    },
    [=](status_atom) {
      auto& s = self->state;
      return "rmb twins=" + std::to_string(s.twins.size()) +
             " outbox=" + std::to_string(s.bus->outbox().size()) +
             " dedup=" + std::to_string(s.bus->dedup().size()) +
             " malformed=" + std::to_string(s.malformed) + (s.failed ? " FAILED" : "");
    },
  };
}

}  // namespace

caf::actor spawn_rmb_agent(caf::actor_system& system, const caf::actor& transport,
                           agent_context context) {
  return system.spawn(agent, transport, std::move(context));
}

}  // namespace cmesh::rmb
