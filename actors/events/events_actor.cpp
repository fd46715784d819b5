#include "actors/events/events_actor.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include <caf/all.hpp>

#include "actors/iam/iam_actor.hpp"
#include "actors/iam/session_table.hpp"
#include "actors/ignore_unexpected.hpp"
#include "actors/swim/swim_actor.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::events {

namespace {

using session_expired_atom = caf::atom_constant<caf::atom("ev_sessexp")>;


constexpr std::string_view service_name = "events";

// Who a subscription belongs to: an in-process actor or a remote client (a transport peer).
struct subscription_owner {
  caf::actor local;       // valid for in-process subscribers
  node_id client;         // otherwise: the client's node id
  std::string pattern;    // for logs
  uint32_t max_messages = 0;  // remote: unsubscribe after this many deliveries (0 = never)
  uint32_t delivered = 0;
};

struct waiting_request {
  bool remote = false;
  node_id client;
  uint64_t correlation = 0;
  caf::response_promise promise;  // in-process requester
};

struct client_state {
  std::set<uint64_t> sids;
  std::set<uint64_t> requests;
};

struct events_state {
  static inline const char* name = "cmesh.events";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> bus;
  uint64_t next_sid = 1;
  std::map<uint64_t, subscription_owner> subscriptions;   // by sid
  std::map<caf::actor_addr, std::set<uint64_t>> watched;  // in-process subscriber -> sids
  std::map<node_id, client_state> clients;                // remote clients with state here
  iam::session_table sessions;                            // with ctx.require_session
  std::map<uint64_t, waiting_request> requests;           // by request id
  std::set<node_id> transport_up;  // the transport's peers
  std::set<node_id> muted;         // transport peers kept off the bus: clients, failed members
  int64_t armed_us = std::numeric_limits<int64_t>::max();
  uint64_t malformed = 0;
  uint64_t client_messages = 0;
};

using events_actor = caf::stateful_actor<events_state>;

int64_t now_us(events_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

void record(events_actor* self, std::string_view kind, const node_id& peer,
            const std::string& detail, int64_t value) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

uint16_t status_of(const error& e) {
  switch (e.code) {
    case errc::ok: return client_ok;
    case errc::too_large: return client_too_large;
    case errc::unavailable: return client_unavailable;
    case errc::not_found: return client_no_responders;
    default: return client_bad_request;
  }
}

template <class T>
void send_to_client(events_actor* self, const node_id& client, uint64_t correlation, const T& m) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, correlation, m);
  if (!encoded) {
    record(self, "encode_failed", client, encoded.err().describe(), T::type_id);
    return;
  }
  self->send(st.transport, send_atom::value, client, events_service, std::move(*encoded));
}

void reply_client(events_actor* self, const node_id& client, uint64_t correlation,
                  client_reply reply) {
  if (reply.status != client_ok)
    record(self, "client_refused", client, std::to_string(reply.status) + " " + reply.reason, 0);
  send_to_client(self, client, correlation, reply);
}

void arm_timer(events_actor* self) {
  auto& st = self->state;
  auto next = st.bus->next_deadline();
  if (!next || *next >= st.armed_us) return;
  st.armed_us = *next;
  int64_t delay = std::max<int64_t>(0, *next - now_us(self));
  self->delayed_send(self, std::chrono::microseconds(delay), tick_atom::value);
}

void forget_subscription(events_actor* self, uint64_t sid) {
  auto& st = self->state;
  auto it = st.subscriptions.find(sid);
  if (it == st.subscriptions.end()) return;
  if (it->second.local) {
    auto w = st.watched.find(it->second.local.address());
    if (w != st.watched.end()) {
      w->second.erase(sid);
      if (w->second.empty()) {
        self->demonitor(it->second.local);
        st.watched.erase(w);
      }
    }
  } else if (auto c = st.clients.find(it->second.client); c != st.clients.end()) {
    c->second.sids.erase(sid);
  }
  st.subscriptions.erase(it);
}

void carry_out(events_actor* self, effects& out);

// Ends `sid` in the machine and here; the machine's final report and interest changes are carried
// out too.
void end_subscription(events_actor* self, uint64_t sid, const char* why) {
  auto& st = self->state;
  auto it = st.subscriptions.find(sid);
  if (it == st.subscriptions.end()) return;
  record(self, "unsubscribed", it->second.client,
         "sid=" + std::to_string(sid) + " " + it->second.pattern + " (" + why + ")", 0);
  effects out;
  st.bus->unsubscribe(sid, out);
  // The final slow-consumer report goes out while the owner is still known.
  carry_out(self, out);
  forget_subscription(self, sid);
}

void deliver(events_actor* self, const delivery& d, std::vector<uint64_t>& finished) {
  auto& st = self->state;
  auto it = st.subscriptions.find(d.sid);
  const uint64_t size = d.payload ? d.payload->size() : 0;
  if (it == st.subscriptions.end()) {
    // Cannot happen (the machine only delivers to subscribed sids); acknowledge so nothing leaks.
    record(self, "delivery_unowned", node_id{}, "sid=" + std::to_string(d.sid), 0);
    st.bus->delivered(d.sid, 1, size);
    return;
  }
  auto& owner = it->second;
  if (owner.local) {
    self->send(owner.local, events_msg_atom::value, d.sid, d.subject, d.reply_to,
               d.payload ? *d.payload : bytes{});
    st.bus->delivered(d.sid, 1, size);  // in the subscriber's mailbox: handed over
    return;
  }
  client_message m;
  m.sid = d.sid;
  m.subject = d.subject;
  m.reply_to = d.reply_to;
  if (d.payload) m.payload = *d.payload;
  auto encoded = encode_message(st.ctx.self, 0, m);
  if (!encoded) {
    record(self, "encode_failed", owner.client, encoded.err().describe(), client_message::type_id);
    st.bus->delivered(d.sid, 1, size);
    return;
  }
  ++st.client_messages;
  self->send(st.transport, send_atom::value, owner.client, events_service, std::move(*encoded));
  // Pending until the client acknowledges it (client_ack).
  ++owner.delivered;
  if (owner.max_messages > 0 && owner.delivered >= owner.max_messages) finished.push_back(d.sid);
}

void report_slow(events_actor* self, const slow_consumer& s) {
  auto& st = self->state;
  auto it = st.subscriptions.find(s.sid);
  node_id who = it == st.subscriptions.end() ? node_id{} : it->second.client;
  record(self, "slow_consumer", who,
         "sid=" + std::to_string(s.sid) + " dropped=" + std::to_string(s.dropped) +
             " dropped_total=" + std::to_string(s.dropped_total) +
             " pending_messages=" + std::to_string(s.pending_messages) +
             " pending_bytes=" + std::to_string(s.pending_bytes) + (s.final ? " final" : ""),
         static_cast<int64_t>(s.dropped));
  if (it == st.subscriptions.end()) return;
  if (it->second.local) {
    self->send(it->second.local, events_slow_atom::value, s.sid, s.dropped, s.dropped_total);
    return;
  }
  client_notice notice;
  notice.sid = s.sid;
  notice.kind = "slow_consumer";
  notice.dropped = s.dropped;
  notice.dropped_total = s.dropped_total;
  notice.pending_messages = s.pending_messages;
  notice.pending_bytes = s.pending_bytes;
  send_to_client(self, it->second.client, 0, notice);
}

void finish_request(events_actor* self, const request_done& done) {
  auto& st = self->state;
  auto it = st.requests.find(done.request_id);
  if (it == st.requests.end()) return;
  waiting_request waiting = std::move(it->second);
  st.requests.erase(it);
  uint16_t status = client_ok;
  std::string reason;
  switch (done.outcome) {
    case request_outcome::reply: break;
    case request_outcome::no_responders:
      status = client_no_responders;
      reason = "no responders";
      break;
    case request_outcome::timeout:
      status = client_timeout;
      reason = "timeout";
      break;
  }
  bytes payload = done.payload ? *done.payload : bytes{};
  if (!waiting.remote) {
    waiting.promise.deliver(status, std::move(reason), std::move(payload));
    return;
  }
  if (auto c = st.clients.find(waiting.client); c != st.clients.end())
    c->second.requests.erase(done.request_id);
  client_reply reply;
  reply.status = status;
  reply.reason = std::move(reason);
  reply.payload = std::move(payload);
  reply.reply_to = done.reply_to;
  send_to_client(self, waiting.client, waiting.correlation, reply);
}

void carry_out(events_actor* self, effects& out) {
  auto& st = self->state;
  for (auto& s : out.sends) {
    auto encoded =
        std::visit([&](const auto& m) { return encode_message(st.ctx.self, 0, m); }, s.message);
    if (!encoded) {
      record(self, "encode_failed", s.to, encoded.err().describe(), 0);
      continue;
    }
    if (st.ctx.watcher) {
      uint16_t type = std::visit([](const auto& m) { return std::decay_t<decltype(m)>::type_id; },
                                 s.message);
      st.ctx.watcher->on_sent(st.ctx.self, s.to, type);
    }
    self->send(st.transport, send_atom::value, s.to, events_service, std::move(*encoded));
  }
  std::vector<uint64_t> finished;  // remote subscriptions that reached max_messages
  for (const auto& d : out.deliveries) deliver(self, d, finished);
  for (const auto& s : out.slow_consumers) report_slow(self, s);
  for (const auto& done : out.requests_done) finish_request(self, done);
  for (const auto& e : out.events) record(self, event_name(e.kind), e.peer, "", e.value);
  out.clear();
  for (auto sid : finished) {
    auto it = st.subscriptions.find(sid);
    if (it == st.subscriptions.end()) continue;
    client_notice notice;
    notice.sid = sid;
    notice.kind = "ended";
    node_id client = it->second.client;
    end_subscription(self, sid, "max_messages reached");
    send_to_client(self, client, 0, notice);
  }
  arm_timer(self);
}

// ---- the bus's peers ------------------------------------------------------------------------------

void bus_peer_up(events_actor* self, const node_id& peer) {
  effects out;
  self->state.bus->peer_up(peer, now_us(self), out);
  carry_out(self, out);
}

void bus_peer_down(events_actor* self, const node_id& peer) {
  effects out;
  self->state.bus->peer_down(peer, out);
  carry_out(self, out);
}

// A transport peer that spoke the client protocol before sending us any interest: a client, not
// a node. Keep it off the bus (no digests, deltas or syncs for it).
void note_client(events_actor* self, const node_id& peer) {
  auto& st = self->state;
  st.clients.try_emplace(peer);
  if (st.muted.count(peer) || st.bus->knows_peer(peer)) return;
  st.muted.insert(peer);
  bus_peer_down(self, peer);
}

void client_gone(events_actor* self, const node_id& peer) {
  auto& st = self->state;
  auto it = st.clients.find(peer);
  if (it == st.clients.end()) return;
  auto sids = it->second.sids;
  auto requests = it->second.requests;
  for (auto id : requests) {
    st.bus->cancel_request(id);
    st.requests.erase(id);
  }
  for (auto sid : sids) end_subscription(self, sid, "client down");
  st.clients.erase(peer);
}

// ---- remote clients -------------------------------------------------------------------------------

void on_subscribe(events_actor* self, const node_id& from, uint64_t correlation,
                  const client_subscribe& request) {
  auto& st = self->state;
  const uint64_t sid = st.next_sid++;
  effects out;
  auto s = st.bus->subscribe(sid, request.pattern, request.queue_group,
                             pending_limits{request.pending_messages, request.pending_bytes}, out);
  client_reply reply;
  if (!s.ok()) {
    reply.status = status_of(s);
    reply.reason = s.describe();
    reply_client(self, from, correlation, std::move(reply));
    return;
  }
  subscription_owner owner;
  owner.client = from;
  owner.pattern = request.pattern;
  owner.max_messages = request.max_messages;
  st.subscriptions.emplace(sid, std::move(owner));
  st.clients[from].sids.insert(sid);
  record(self, "subscribed", from,
         "sid=" + std::to_string(sid) + " " + request.pattern +
             (request.queue_group.empty() ? "" : " queue=" + request.queue_group),
         0);
  reply.sid = sid;
  reply_client(self, from, correlation, std::move(reply));
  carry_out(self, out);
}

void on_unsubscribe(events_actor* self, const node_id& from, uint64_t correlation,
                    const client_unsubscribe& request) {
  auto& st = self->state;
  auto it = st.subscriptions.find(request.sid);
  client_reply reply;
  if (it == st.subscriptions.end() || it->second.local || it->second.client != from) {
    reply.status = client_no_responders;
    reply.reason = "no subscription " + std::to_string(request.sid) + " on this connection";
    reply_client(self, from, correlation, std::move(reply));
    return;
  }
  end_subscription(self, request.sid, "client asked");
  reply.sid = request.sid;
  reply_client(self, from, correlation, std::move(reply));
}

void on_publish(events_actor* self, const node_id& from, uint64_t correlation,
                client_publish& request) {
  auto& st = self->state;
  client_reply reply;
  if (auto bad = validate_subject(request.subject)) {
    reply.status = status_of(bad);
    reply.reason = bad.describe();
    reply_client(self, from, correlation, std::move(reply));
    return;
  }
  // Correlation 0 asks for no acknowledgement (NATS's PUB): a publish that succeeds is not
  // answered, a refused one still is, so a refusal is never silent.
  const bool acknowledge = correlation != 0;
  const bool interest = acknowledge && st.bus->has_interest(request.subject);
  effects out;
  auto s = st.bus->publish(request.subject, request.reply_to, std::move(request.payload),
                           now_us(self), out);
  if (!s.ok()) {
    reply.status = status_of(s);
    reply.reason = s.describe();
    reply_client(self, from, correlation, std::move(reply));
  } else if (acknowledge) {
    reply.interest = interest;
    reply_client(self, from, correlation, std::move(reply));
  }
  carry_out(self, out);
}

void on_request(events_actor* self, const node_id& from, uint64_t correlation,
                client_request& request) {
  auto& st = self->state;
  effects out;
  auto id = st.bus->request(request.subject, std::move(request.payload),
                            int64_t{request.timeout_ms} * 1000, now_us(self), out);
  if (!id) {
    client_reply reply;
    reply.status = status_of(id.err());
    reply.reason = id.err().describe();
    reply_client(self, from, correlation, std::move(reply));
    return;
  }
  // It may already be done (no responders): register before carrying out.
  waiting_request waiting;
  waiting.remote = true;
  waiting.client = from;
  waiting.correlation = correlation;
  st.requests.emplace(*id, std::move(waiting));
  st.clients[from].requests.insert(*id);
  carry_out(self, out);
}

void on_ack(events_actor* self, const node_id& from, const client_ack& ack) {
  auto& st = self->state;
  auto it = st.subscriptions.find(ack.sid);
  if (it == st.subscriptions.end() || it->second.local || it->second.client != from)
    return;  // late (after unsubscribe) or not this client's: nothing pending to free
  auto s = st.bus->delivered(ack.sid, ack.messages, ack.payload_bytes);
  if (!s.ok()) {
    ++st.malformed;
    record(self, "malformed", from, "client_ack: " + s.describe(), 0);
  }
}

// Returns false if `env` is not a client message.
// With require_session: may `from` do what needs `scope`? If not, answers 401 or 403.
bool authorized(events_actor* self, const node_id& from, uint64_t correlation, const std::string& scope) {
  auto& st = self->state;
  if (!st.ctx.require_session) return true;
  const auto verdict = st.sessions.check(from, scope, now_us(self));
  if (verdict == iam::session_table::verdict::ok) return true;
  client_reply reply;
  if (verdict == iam::session_table::verdict::no_session) {
    reply.status = client_unauthorized;
    reply.reason = "no_session: no live IAM session of this node for this key; run the handshake (cmesh id session)";
  } else {
    reply.status = client_forbidden;
    reply.reason = "insufficient_scope: needs scope " + scope;
  }
  reply_client(self, from, correlation, std::move(reply));
  return false;
}

// A session was revoked or ran out: a client left without any live one loses its subscriptions.
void on_session_ended(events_actor* self, const std::string& token_id, const char* why) {
  auto& st = self->state;
  node_id holder;
  if (!st.sessions.remove(token_id, &holder) || st.sessions.has_live(holder, now_us(self))) return;
  auto it = st.clients.find(holder);
  if (it == st.clients.end()) return;
  auto sids = it->second.sids;
  for (auto sid : sids) {
    client_notice notice;
    notice.sid = sid;
    notice.kind = "session_ended";
    end_subscription(self, sid, why);
    send_to_client(self, holder, 0, notice);
  }
}

bool on_client_envelope(events_actor* self, const node_id& from, const envelope& env) {
  if (env.type < client_subscribe::type_id || env.type > client_notice::type_id) return false;
  auto& st = self->state;
  note_client(self, from);
  auto refuse = [&](const std::string& why) {
    ++st.malformed;
    record(self, "malformed", from, why, env.type);
    client_reply reply;
    reply.status = client_bad_request;
    reply.reason = why;
    send_to_client(self, from, env.correlation, reply);
  };
  switch (env.type) {
    case client_subscribe::type_id: {
      auto m = decode_payload<client_subscribe>(env);
      if (!m) return refuse(m.err().describe()), true;
      if (!authorized(self, from, env.correlation, "events.read")) return true;
      on_subscribe(self, from, env.correlation, *m);
      return true;
    }
    case client_unsubscribe::type_id: {
      auto m = decode_payload<client_unsubscribe>(env);
      if (!m) return refuse(m.err().describe()), true;
      on_unsubscribe(self, from, env.correlation, *m);
      return true;
    }
    case client_publish::type_id: {
      auto m = decode_payload<client_publish>(env);
      if (!m) return refuse(m.err().describe()), true;
      if (!authorized(self, from, env.correlation, "events.publish")) return true;
      on_publish(self, from, env.correlation, *m);
      return true;
    }
    case client_request::type_id: {
      auto m = decode_payload<client_request>(env);
      if (!m) return refuse(m.err().describe()), true;
      if (!authorized(self, from, env.correlation, "events.publish")) return true;
      on_request(self, from, env.correlation, *m);
      return true;
    }
    case client_ack::type_id: {
      auto m = decode_payload<client_ack>(env);
      if (!m) return refuse(m.err().describe()), true;
      on_ack(self, from, *m);
      return true;
    }
    default:
      refuse("message type " + std::to_string(env.type) + " is sent by nodes, not clients");
      return true;
  }
}

void on_envelope(events_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (env && on_client_envelope(self, from, *env)) return;
  std::string problem;
  if (env) {
    auto message = decode_wire(*env);
    if (message) {
      if (!st.transport_up.count(from)) {
        // A message proves a connection: its peer_up went out before we registered with the
        // transport (real mode: the node's first connections race with the services' start).
        st.transport_up.insert(from);
        st.muted.erase(from);
        bus_peer_up(self, from);
      } else if (st.muted.count(from)) {
        // A peer we took for a client (or membership declared failed) sends interest: it is a
        // live node of the bus.
        st.muted.erase(from);
        bus_peer_up(self, from);
      }
      effects out;
      // A malformed message is counted by the machine (statistics().malformed).
      auto status = st.bus->receive(from, *message, now_us(self), out);
      carry_out(self, out);
      if (!status.ok()) record(self, "malformed", from, status.describe(), env->type);
      return;
    }
    problem = message.err().describe();
  } else {
    problem = env.err().describe();
  }
  ++st.malformed;
  record(self, "malformed", from, problem, 0);
}

// ---- in-process clients ---------------------------------------------------------------------------

caf::behavior run(events_actor* self, caf::actor transport, caf::actor membership,
                  actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  st.bus = std::make_unique<machine>(st.ctx.bus, st.ctx.self, rng(st.ctx.rng_seed));
  self->set_default_handler(ignore_unexpected);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& s = self->state;
    auto it = s.watched.find(msg.source);
    if (it == s.watched.end()) return;
    auto sids = it->second;
    for (auto sid : sids) end_subscription(self, sid, "subscriber terminated");
    s.watched.erase(msg.source);
  });
  self->send(st.transport, register_atom::value, events_service, caf::actor{self});
  if (membership) self->send(membership, swim::swim_watch_atom::value, caf::actor{self});
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == events_service) on_envelope(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string&) {
      auto& s = self->state;
      if (peer == s.ctx.self) return;
      s.transport_up.insert(peer);
      if (s.muted.count(peer)) return;
      bus_peer_up(self, peer);
    },
    [=](peer_down_atom, const node_id& peer) {
      auto& s = self->state;
      s.transport_up.erase(peer);
      s.muted.erase(peer);
      bus_peer_down(self, peer);
      client_gone(self, peer);
    },
    [=](swim::swim_member_atom, const node_id& member, const std::string&, bool alive) {
      auto& s = self->state;
      if (member == s.ctx.self || s.clients.count(member)) return;
      if (!alive) {
        // Failed or left: stop routing to it now rather than after the interest lease.
        if (s.muted.insert(member).second) bus_peer_down(self, member);
      } else if (s.muted.erase(member) > 0 && s.transport_up.count(member)) {
        bus_peer_up(self, member);
      }
    },
    [=](tick_atom) {
      auto& s = self->state;
      s.armed_us = std::numeric_limits<int64_t>::max();
      effects out;
      s.bus->tick(now_us(self), out);
      carry_out(self, out);
    },
    [=](events_sub_atom, const std::string& pattern, const std::string& queue_group,
        const caf::actor& subscriber) -> caf::result<uint16_t, std::string, uint64_t> {
      auto& s = self->state;
      if (!subscriber) return {client_bad_request, std::string("no subscriber"), uint64_t{0}};
      const uint64_t sid = s.next_sid++;
      effects out;
      auto status = s.bus->subscribe(sid, pattern, queue_group, pending_limits{}, out);
      if (!status.ok()) return {status_of(status), status.describe(), uint64_t{0}};
      subscription_owner owner;
      owner.local = subscriber;
      owner.pattern = pattern;
      s.subscriptions.emplace(sid, std::move(owner));
      auto& sids = s.watched[subscriber.address()];
      if (sids.empty()) self->monitor(subscriber);
      sids.insert(sid);
      carry_out(self, out);
      return {client_ok, std::string(), sid};
    },
    [=](events_unsub_atom, uint64_t sid) -> caf::result<uint16_t, std::string> {
      auto& s = self->state;
      auto it = s.subscriptions.find(sid);
      if (it == s.subscriptions.end() || !it->second.local)
        return {client_no_responders, "no in-process subscription " + std::to_string(sid)};
      end_subscription(self, sid, "unsubscribed");
      return {client_ok, std::string()};
    },
    [=](events_pub_atom, const std::string& subject, const std::string& reply_to,
        bytes& payload) -> caf::result<uint16_t, std::string, bool> {
      auto& s = self->state;
      if (auto bad = validate_subject(subject)) return {status_of(bad), bad.describe(), false};
      const bool interest = s.bus->has_interest(subject);
      effects out;
      auto status = s.bus->publish(subject, reply_to, std::move(payload), now_us(self), out);
      carry_out(self, out);
      if (!status.ok()) return {status_of(status), status.describe(), false};
      return {client_ok, std::string(), interest};
    },
    [=](iam::iam_session_atom, const node_id& holder, const std::string& token_id,
        const std::string& scope, int64_t ttl_us) {
      if (!self->state.sessions.grant(holder, token_id, scope, ttl_us, now_us(self))) return;
      self->delayed_send(self, std::chrono::microseconds(std::max<int64_t>(0, ttl_us)), session_expired_atom::value,
                         token_id);
    },
    [=](session_expired_atom, const std::string& token_id) { on_session_ended(self, token_id, "session expired"); },
    [=](iam::iam_revoked_atom, const node_id&, const std::string& token_id, int64_t) {
      on_session_ended(self, token_id, "session revoked");
    },
    [=](events_pub_packed_atom, const std::string& subjects, const std::vector<uint32_t>& subject_ends,
        const bytes& payloads, const std::vector<uint32_t>& payload_ends) {
      auto& s = self->state;
      effects out;
      const size_t count = std::min(subject_ends.size(), payload_ends.size());
      uint32_t subject_at = 0, payload_at = 0;
      for (size_t i = 0; i < count; ++i) {
        const uint32_t subject_end = subject_ends[i], payload_end = payload_ends[i];
        if (subject_end < subject_at || subject_end > subjects.size() || payload_end < payload_at ||
            payload_end > payloads.size()) {
          record(self, "publish_refused", s.ctx.self, "packed publishes with bad offsets", 0);
          break;
        }
        const std::string_view subject(subjects.data() + subject_at, subject_end - subject_at);
        auto status = s.bus->publish_view(subject, payloads.data() + payload_at, payload_end - payload_at,
                                          now_us(self), out);
        if (!status.ok())
          record(self, "publish_refused", s.ctx.self, std::string(subject) + ": " + status.describe(), 0);
        subject_at = subject_end;
        payload_at = payload_end;
      }
      carry_out(self, out);
    },
    [=](events_request_atom, const std::string& subject, bytes& payload, uint32_t timeout_ms) {
      auto& s = self->state;
      auto promise = self->make_response_promise<uint16_t, std::string, bytes>();
      effects out;
      auto id = s.bus->request(subject, std::move(payload), int64_t{timeout_ms} * 1000,
                               now_us(self), out);
      if (!id) {
        promise.deliver(status_of(id.err()), id.err().describe(), bytes{});
        return promise;
      }
      waiting_request waiting;
      waiting.promise = promise;
      s.requests.emplace(*id, std::move(waiting));
      carry_out(self, out);
      return promise;
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.bus->statistics();
      return "events subscriptions=" + std::to_string(s.bus->subscription_count()) +
             " clients=" + std::to_string(s.clients.size()) +
             " peers=" + std::to_string(s.bus->peers_up()) +
             " published=" + std::to_string(stats.published) +
             " routed_sent=" + std::to_string(stats.routed_sent) +
             " routed_received=" + std::to_string(stats.routed_received) +
             " delivered=" + std::to_string(stats.delivered) +
             " dropped_slow=" + std::to_string(stats.dropped_slow_consumer) +
             " malformed=" + std::to_string(s.malformed + stats.malformed);
    },
  };
}

}  // namespace

caf::actor spawn_events_actor(caf::actor_system& system, const caf::actor& transport,
                              const caf::actor& membership, actor_context context) {
  return system.spawn(run, transport, membership, std::move(context));
}

}  // namespace cmesh::events
