#include "actors/gossip/gossip_actor.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "actors/member_view.hpp"
#include "actors/swim/swim_actor.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::gossip {

namespace {

constexpr std::string_view service_name = "gossip";

struct client_search {
  node_id client;
  uint64_t correlation = 0;
  bool self_matches = false;
};

struct gossip_state {
  static inline const char* name = "cmesh.gossip";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> protocol;
  std::optional<member_view> members;       // candidate contacts
  bool refresh_pending = false;             // a refresh_atom to ourselves is on its way
  std::map<node_id, std::string> introduced;
  std::map<uint64_t, client_search> clients;  // by search id
  int64_t armed_us = std::numeric_limits<int64_t>::max();
  uint64_t malformed = 0;
  uint64_t client_searches = 0;
};

using gossip_actor = caf::stateful_actor<gossip_state>;
using refresh_atom = caf::atom_constant<caf::atom("gs_refresh")>;

int64_t now_us(gossip_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

void record(gossip_actor* self, std::string_view kind, const node_id& peer,
            const std::string& detail, int64_t value) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}


void refresh_contacts(gossip_actor* self) {
  auto& st = self->state;
  st.protocol->set_contacts(st.members->ordered<contact>(st.ctx.rng_seed));
}

// Membership changes come one message per member (all of them when we subscribe): hand the
// machine the new contact list once per burst, after the messages already queued.
void contacts_changed(gossip_actor* self) {
  auto& st = self->state;
  if (st.refresh_pending) return;
  st.refresh_pending = true;
  self->send(self, refresh_atom::value);
}

void arm_timer(gossip_actor* self) {
  auto& st = self->state;
  int64_t next = st.protocol->next_deadline_us();
  if (next == std::numeric_limits<int64_t>::max() || next >= st.armed_us) return;
  st.armed_us = next;
  int64_t delay = std::max<int64_t>(0, next - now_us(self));
  self->delayed_send(self, std::chrono::microseconds(delay), tick_atom::value);
}

void answer_client(gossip_actor* self, const search_done& done) {
  auto& st = self->state;
  auto it = st.clients.find(done.search_id);
  if (it == st.clients.end()) return;
  client_search client = it->second;
  st.clients.erase(it);
  search_response response;
  response.status = search_ok;
  if (client.self_matches)
    response.matches.push_back(agent_record{bytes(st.ctx.self.key.begin(), st.ctx.self.key.end()),
                                            st.ctx.listen_address, st.protocol->profile()});
  for (const auto& m : done.matches) response.matches.push_back(record_of(m));
  response.done = done_reason_name(done.reason);
  response.elapsed_ms = static_cast<uint32_t>((done.finished_us - done.started_us) / 1000);
  response.messages = static_cast<uint32_t>(done.messages_sent);
  auto encoded = encode_message(st.ctx.self, client.correlation, response);
  if (encoded)
    self->send(st.transport, send_atom::value, client.client, services::gossip, std::move(*encoded));
}

void carry_out(gossip_actor* self, effects& out) {
  auto& st = self->state;
  for (auto& s : out.sends) {
    auto encoded =
        std::visit([&](const auto& m) { return encode_message(st.ctx.self, 0, m); }, s.message);
    if (!encoded) continue;
    if (!s.address.empty()) {
      auto known = st.introduced.find(s.to);
      if (known == st.introduced.end() || known->second != s.address) {
        st.introduced[s.to] = s.address;
        self->send(st.transport, introduce_atom::value, s.to, s.address);
      }
    }
    self->send(st.transport, send_atom::value, s.to, services::gossip, std::move(*encoded));
  }
  for (const auto& done : out.done) {
    record(self, "search_done", node_id{},
           format_tags(done.tags, ' ') + " matches=" + std::to_string(done.matches.size()) + " reason=" +
               done_reason_name(done.reason) + " messages=" + std::to_string(done.messages_sent),
           done.finished_us - done.started_us);
    if (st.ctx.observer) st.ctx.observer->on_done(st.ctx.self, done);
    answer_client(self, done);
  }
  out.clear();
  arm_timer(self);
}

void refuse_client(gossip_actor* self, const node_id& client, uint64_t correlation,
                   uint16_t status, const std::string& reason) {
  auto& st = self->state;
  search_response response;
  response.status = status;
  response.reason = reason;
  auto encoded = encode_message(st.ctx.self, correlation, response);
  if (encoded)
    self->send(st.transport, send_atom::value, client, services::gossip, std::move(*encoded));
}

void on_client_request(gossip_actor* self, const node_id& from, const envelope& env) {
  auto& st = self->state;
  auto request = decode_payload<search_request>(env);
  if (!request) {
    refuse_client(self, from, env.correlation, search_bad_request, request.err().describe());
    return;
  }
  const auto& cfg = st.protocol->configuration();
  if (auto bad = validate_tags(request->tags, cfg.tag_chars_max, true)) {
    refuse_client(self, from, env.correlation, search_bad_request, bad.describe());
    return;
  }
  effects out;
  int64_t timeout_us = int64_t{request->timeout_ms} * 1000;
  auto id = st.protocol->start_search(request->tags, now_us(self), out, timeout_us);
  if (!id) {
    refuse_client(self, from, env.correlation, search_busy, id.err().describe());
    return;
  }
  ++st.client_searches;
  record(self, "search_started", from, format_tags(normalize(request->tags), ' '), 0);
  // The search may already be done (own cache, no contacts): register before carrying out.
  st.clients[*id] = {from, env.correlation, tags_match(request->tags, st.protocol->profile())};
  carry_out(self, out);
}

void on_envelope(gossip_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (env && env->type == search_request::type_id) {
    on_client_request(self, from, *env);
    return;
  }
  std::string problem;
  if (env) {
    auto message = decode_wire(*env);
    if (message) {
      effects out;
      // A malformed message is counted by the machine (statistics().malformed).
      auto status = st.protocol->receive(from, *message, now_us(self), out);
      carry_out(self, out);
      if (!status.ok()) record(self, "malformed", from, status.describe(), 0);
      return;
    } else {
      problem = message.err().describe();
    }
  } else {
    problem = env.err().describe();
  }
  ++st.malformed;
  record(self, "malformed", from, problem, 0);
}

caf::behavior run(gossip_actor* self, caf::actor transport, caf::actor membership,
                  actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  st.protocol = std::make_unique<machine>(st.ctx.search, st.ctx.self, st.ctx.listen_address,
                                          st.ctx.profile, rng(st.ctx.rng_seed));
  if (st.ctx.prefill) {
    st.ctx.prefill(*st.protocol);
    st.ctx.prefill = nullptr;  // may hold a lot (a benchmark's rows): not needed any more
  }
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::gossip, caf::actor{self});
  st.members.emplace(st.ctx.self, static_cast<bool>(membership));
  if (membership) self->send(membership, swim::swim_watch_atom::value, caf::actor{self});
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::gossip) on_envelope(self, from, data);
    },
    [=](swim::swim_member_atom, const node_id& member, const std::string& address, bool alive) {
      if (self->state.members->on_member(member, address, alive)) contacts_changed(self);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      if (self->state.members->on_peer_up(peer, address)) contacts_changed(self);
    },
    [=](peer_down_atom, const node_id& peer) {
      if (self->state.members->on_peer_down(peer)) contacts_changed(self);
    },
    [=](refresh_atom) {
      self->state.refresh_pending = false;
      refresh_contacts(self);
    },
    [=](tick_atom) {
      auto& s = self->state;
      s.armed_us = std::numeric_limits<int64_t>::max();
      effects out;
      s.protocol->tick(now_us(self), out);
      carry_out(self, out);
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.protocol->statistics();
      return "gossip contacts=" + std::to_string(s.protocol->contact_count()) +
             " searches=" + std::to_string(stats.searches_started) +
             " client_searches=" + std::to_string(s.client_searches) +
             " queries=" + std::to_string(stats.queries_received) +
             " request_cache=" + std::to_string(s.protocol->request_cache_size()) +
             " gossip_cache=" + std::to_string(s.protocol->gossip_cache_size()) +
             " malformed=" + std::to_string(s.malformed + stats.malformed);
    },
  };
}

}  // namespace

caf::actor spawn_gossip_actor(caf::actor_system& system, const caf::actor& transport,
                              const caf::actor& membership, actor_context context) {
  return system.spawn(run, transport, membership, std::move(context));
}

}  // namespace cmesh::gossip
