#include "actors/router/router_actor.hpp"

#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/events/events_actor.hpp"
#include "actors/iam/iam_actor.hpp"
#include "messages/iam_messages.hpp"
#include "actors/ignore_unexpected.hpp"
#include "actors/kv/kv_actor.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"

namespace cmesh::router {

namespace {

constexpr std::string_view service_name = "router";

// Who waits for a response: a peer over the transport, or an in-process caller of one request.
// (Batch members are found by their id's batch instead.)
struct requester {
  node_id peer;
  uint64_t correlation = 0;
  caf::typed_response_promise<bytes> promise;  // valid for in-process callers
  bool in_process = false;
};

// An in-process batch call (router_batch_atom): its requests have the consecutive ids from the
// batch's key on; answered once every request in it is.
struct batch_call {
  caf::typed_response_promise<std::vector<cmtp::response>> promise;
  std::vector<cmtp::response> answers;
  size_t remaining = 0;
};

struct router_state {
  static inline const char* name = "cmesh.router";
  actor_context ctx;
  caf::actor transport;
  caf::actor kv;
  caf::actor bus;
  std::unique_ptr<machine> routing;
  std::unordered_map<request_id, requester> waiting;  // looked up by id only, never iterated
  std::map<request_id, batch_call> batches;  // by the id of the batch's first request
  std::map<uint64_t, request_id> proxied;  // correlation of a request sent to another router -> ours
  uint64_t next_correlation = 1;
  request_id next_id = 1;
  int64_t armed_us = std::numeric_limits<int64_t>::max();
  caf::actor iam;
  bool authenticating = false;     // a self-handshake is under way
  std::string session_id;          // the router's own session (jti), once authenticated
  uint64_t malformed = 0;
  uint64_t publishes_dropped = 0;  // no events bus on this node
  // Single requests (over the wire, router_call_atom) gather their effects here until a flush
  // message, sent to ourselves when the first one arrives, comes round: the requests already in
  // the mailbox by then share one kv message and one bus message.
  effects gathered;
  bool flush_scheduled = false;
};

using router_actor = caf::stateful_actor<router_state>;
using sweep_atom = caf::atom_constant<caf::atom("rt_sweep")>;
using flush_atom = caf::atom_constant<caf::atom("rt_flush")>;

int64_t clock_us(router_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

int64_t mesh_us(router_actor* self) { return clock_us(self) + self->state.ctx.epoch_offset_us; }

void record(router_actor* self, std::string_view kind, const node_id& peer, const std::string& detail,
            int64_t value) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

void arm_timer(router_actor* self) {
  auto& st = self->state;
  const int64_t next = st.routing->next_deadline_us();
  if (next == std::numeric_limits<int64_t>::max() || next >= st.armed_us) return;
  st.armed_us = next;
  self->delayed_send(self, std::chrono::microseconds(std::max<int64_t>(0, next - mesh_us(self))),
                     tick_atom::value);
}

// The IAM's packed answer as a Reply, or a 500 saying why it could not be read.
template <class Reply>
Reply iam_reply_of(const bytes& packed) {
  auto reply = unpack_value<Reply>(packed.data(), packed.size());
  if (reply) return std::move(*reply);
  Reply unreadable;
  unreadable.status = 500;
  unreadable.reason = "unreadable IAM answer: " + reply.err().describe();
  return unreadable;
}

void carry_out(router_actor* self, effects& out) {
  auto& st = self->state;
  if (!out.calls.empty() && !st.kv) {
    std::vector<request_id> ids;
    for (const auto& call : out.calls) ids.push_back(call.id);
    out.calls.clear();
    kv::response unavailable;
    unavailable.status = 503;
    unavailable.reason = "no state service (kv replica) on this node";
    effects more;
    for (auto id : ids) st.routing->on_kv_answer(id, unavailable, mesh_us(self), more);
    carry_out(self, more);
  } else if (!out.calls.empty()) {
    // One message for all of this step's kv calls; the replica answers them in kv_answers
    // messages as they are ready. If it is gone (node shutting down), the deadlines answer 408.
    std::vector<kv::request> requests;
    std::vector<node_id> callers;
    std::vector<uint64_t> tags;
    requests.reserve(out.calls.size());
    callers.reserve(out.calls.size());
    tags.reserve(out.calls.size());
    for (auto& call : out.calls) {
      requests.push_back(std::move(call.req));
      callers.push_back(call.caller);
      tags.push_back(call.id);
    }
    self->send(st.kv, kv::kv_batch_atom::value, std::move(requests), std::move(callers), std::move(tags));
  }
  for (auto& q : out.bus_requests) {
    const request_id id = q.id;
    if (!st.bus) {
      effects more;
      st.routing->on_bus_answer(id, 503, "no events bus on this node", bytes{}, mesh_us(self), more);
      carry_out(self, more);
      continue;
    }
    self->request(st.bus, caf::infinite, events::events_request_atom::value, std::move(q.subject),
                  std::move(q.payload), q.timeout_ms)
        .then(
            [=](uint16_t status, const std::string& reason, const bytes& reply) {
              effects more;
              self->state.routing->on_bus_answer(id, status, reason, reply, mesh_us(self), more);
              carry_out(self, more);
            },
            [=](caf::error&) {
              // The bus is gone (node shutting down): the call's deadline answers 408.
            });
  }
  for (const auto& q : out.consensus_queries) {
    const request_id id = q.id;
    if (!st.kv) {
      effects more;
      st.routing->on_consensus_answer(id, 503, "no Raft replica on this node", mesh_us(self), more);
      carry_out(self, more);
      continue;
    }
    self->request(st.kv, caf::infinite, status_atom::value)
        .then(
            [=](const std::string& text) {
              effects more;
              self->state.routing->on_consensus_answer(id, 200, text, mesh_us(self), more);
              carry_out(self, more);
            },
            [=](caf::error&) {});
  }
  for (auto& call : out.iam_calls) {
    const request_id id = call.id;
    if (!st.iam) {
      effects more;
      iam::challenge_reply none;
      none.status = iam::status_unavailable;
      none.reason = "no IAM service on this node";
      st.routing->on_challenge_reply(id, none, mesh_us(self), more);
      carry_out(self, more);
      continue;
    }
    if (!call.session) {
      self->request(st.iam, caf::infinite, iam::iam_challenge_atom::value, std::move(call.audience))
          .then(
              [=](const bytes& packed) {
                effects more;
                self->state.routing->on_challenge_reply(id, iam_reply_of<iam::challenge_reply>(packed), mesh_us(self), more);
                carry_out(self, more);
              },
              [=](caf::error&) {});  // the IAM is gone (shutting down): the deadline answers 408
      continue;
    }
    auto message = pack_value(call.answer);
    if (!message) continue;  // built by the machine from bounded strings: cannot fail
    self->request(st.iam, caf::infinite, iam::iam_redeem_atom::value, std::move(*message))
        .then(
            [=](const bytes& packed) {
              effects more;
              self->state.routing->on_session_reply(id, iam_reply_of<iam::session_reply>(packed), mesh_us(self), more);
              carry_out(self, more);
            },
            [=](caf::error&) {});
  }
  for (auto& p : out.proxies) {
    const uint64_t correlation = st.next_correlation++;
    st.proxied[correlation] = p.id;
    auto encoded = encode_message(st.ctx.self, correlation, p.request);
    if (encoded) self->send(st.transport, send_atom::value, p.router, services::cmtp, std::move(*encoded));
    record(self, "proxied", p.router, p.request.fqmn, 0);
  }
  if (!out.publishes.empty()) {
    if (!st.bus) {
      st.publishes_dropped += out.publishes.size();
    } else {
      // One message and four buffers for all of this step's publishes (the audit trail is several
      // per request), as the machine packed them: what crosses to the bus's thread is freed there
      // in four pieces.
      auto& list = out.publishes;
      self->send(st.bus, events::events_pub_packed_atom::value, std::move(list.subjects), std::move(list.subject_ends),
                 std::move(list.payloads), std::move(list.payload_ends));
    }
  }
  auto answered = [&](const node_id& peer, const cmtp::response& r) {
    if (st.ctx.events)  // the detail text only when someone records it
      record(self, "answered", peer, std::to_string(r.status) + " " + r.reason, r.status);
  };
  for (auto& r : out.responses) {
    if (auto b = st.batches.upper_bound(r.id); b != st.batches.begin()) {
      --b;
      const size_t slot = r.id - b->first;
      if (slot < b->second.answers.size()) {  // a member of batch b
        answered(node_id{}, r.response);
        b->second.answers[slot] = std::move(r.response);
        if (--b->second.remaining == 0) {
          b->second.promise.deliver(std::move(b->second.answers));
          st.batches.erase(b);
        }
        continue;
      }
    }
    auto it = st.waiting.find(r.id);
    if (it == st.waiting.end()) continue;
    requester who = std::move(it->second);
    st.waiting.erase(it);
    answered(who.peer, r.response);
    if (who.in_process) {
      auto packed = pack_value(r.response);
      if (packed) who.promise.deliver(std::move(*packed));
      continue;
    }
    auto encoded = encode_message(st.ctx.self, who.correlation, r.response);
    if (encoded) self->send(st.transport, send_atom::value, who.peer, services::cmtp, std::move(*encoded));
  }
  out.clear();
  arm_timer(self);
}

// The replica's answers to kv calls (one kv_answers message: several calls).
void on_kv_answers(router_actor* self, const std::vector<uint64_t>& ids, const std::vector<kv::response>& answers) {
  auto& st = self->state;
  if (ids.size() != answers.size()) {
    ++st.malformed;
    record(self, "malformed", node_id{}, "kv answers with mismatched lengths", 0);
    return;
  }
  effects out;
  out.publishes.reserve(3 * ids.size(), 96);
  out.responses.reserve(ids.size());
  const int64_t now = mesh_us(self);
  for (size_t i = 0; i < ids.size(); ++i) st.routing->on_kv_answer(ids[i], answers[i], now, out);
  carry_out(self, out);
}

// The seed's rule: a router authenticates its own identity before its protected services start.
void authenticate(router_actor* self) {
  auto& st = self->state;
  if (st.routing->serving() || st.authenticating || !st.iam || !st.ctx.signer) return;
  st.authenticating = true;
  const std::string audience = st.ctx.audience;
  self->request(st.iam, std::chrono::seconds(5), iam::iam_challenge_atom::value, audience)
      .then(
          [=](const bytes& packed) {
            auto& s = self->state;
            auto issued = unpack_value<iam::challenge_reply>(packed.data(), packed.size());
            if (!issued || issued->status != iam::status_ok || issued->node_did != s.ctx.signer->did()) {
              s.authenticating = false;
              record(self, "authentication_failed", node_id{},
                     issued ? "challenge: " + issued->reason : "unreadable challenge", 0);
              return;
            }
            iam::challenge c{issued->nonce, issued->audience, issued->node_did, issued->expires_at_s};
            auto answer = iam::answer_challenge(c, "", jose::signer_for(*s.ctx.signer));
            auto message = pack_value(iam::answer_message{answer.nonce, answer.holder_did, answer.scope, answer.signature});
            self->request(s.iam, std::chrono::seconds(5), iam::iam_redeem_atom::value, std::move(*message))
                .then(
                    [=](const bytes& granted_packed) {
                      auto& s2 = self->state;
                      s2.authenticating = false;
                      auto granted = unpack_value<iam::session_reply>(granted_packed.data(), granted_packed.size());
                      if (!granted || granted->status != iam::status_ok) {
                        record(self, "authentication_failed", node_id{},
                               granted ? "session: " + granted->reason : "unreadable session", 0);
                        return;
                      }
                      auto claims = iam::authenticate_session_token(granted->token, s2.ctx.self);
                      if (!claims || claims->subject != s2.ctx.signer->did()) {
                        record(self, "authentication_failed", node_id{}, "the session token is not ours", 0);
                        return;
                      }
                      s2.session_id = claims->token_id;
                      s2.routing->set_serving(true);
                      record(self, "authenticated", s2.ctx.self, "session " + claims->token_id, claims->expires_at_s);
                    },
                    [=](caf::error&) { self->state.authenticating = false; });
          },
          [=](caf::error&) { self->state.authenticating = false; });
}

void start(router_actor* self, requester who, cmtp::request req) {
  auto& st = self->state;
  const request_id id = st.next_id++;
  const node_id client = who.peer;  // zero for in-process callers
  st.waiting.emplace(id, std::move(who));
  st.routing->on_request(id, std::move(req), mesh_us(self), st.gathered, client);
  if (!st.flush_scheduled) {
    st.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

// An in-process batch: every request goes through the machine, then the effects of all of them
// are carried out together (one kv message, one bus message).
caf::result<std::vector<cmtp::response>> start_batch(router_actor* self, std::vector<cmtp::request>& reqs) {
  auto& st = self->state;
  if (reqs.empty()) return std::vector<cmtp::response>{};
  const request_id first = st.next_id;
  st.next_id += reqs.size();
  auto& call = st.batches[first];
  call.promise = self->make_response_promise<std::vector<cmtp::response>>();
  call.answers.resize(reqs.size());
  call.remaining = reqs.size();
  auto promise = call.promise;
  effects out;
  out.calls.reserve(reqs.size());
  out.publishes.reserve(3 * reqs.size(), 96);
  out.responses.reserve(reqs.size());
  const int64_t now = mesh_us(self);
  for (size_t i = 0; i < reqs.size(); ++i) st.routing->on_request(first + i, std::move(reqs[i]), now, out);
  carry_out(self, out);
  return promise;
}

void on_envelope(router_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  std::string problem;
  if (!env) {
    problem = env.err().describe();
  } else if (env->type == cmtp::response::type_id) {
    // Another router's answer to a request we proxied (0xP).
    auto found = st.proxied.find(env->correlation);
    auto response = decode_payload<cmtp::response>(*env);
    if (found == st.proxied.end() || !response) {
      problem = found == st.proxied.end() ? "CMTP response to no proxied request" : response.err().describe();
    } else {
      const request_id id = found->second;
      st.proxied.erase(found);
      effects out;
      st.routing->on_proxy_answer(id, *response, mesh_us(self), out);
      return carry_out(self, out);
    }
  } else if (env->type != cmtp::request::type_id) {
    problem = "unknown CMTP message type " + std::to_string(env->type);
  } else if (auto req = decode_payload<cmtp::request>(*env); !req) {
    problem = req.err().describe();
    cmtp::response bad;
    bad.status = 400;
    bad.reason = "malformed CMTP request: " + problem;
    auto encoded = encode_message(st.ctx.self, env->correlation, bad);
    if (encoded) self->send(st.transport, send_atom::value, from, services::cmtp, std::move(*encoded));
  } else {
    requester who;
    who.peer = from;
    who.correlation = env->correlation;
    return start(self, std::move(who), std::move(*req));
  }
  ++st.malformed;
  record(self, "malformed", from, problem, 0);
}

caf::behavior run(router_actor* self, caf::actor transport, caf::actor kv, caf::actor bus, caf::actor iam,
                  actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  st.kv = std::move(kv);
  st.bus = std::move(bus);
  st.routing = std::make_unique<machine>(st.ctx.routing, st.ctx.self, st.ctx.audience);
  for (const auto& issuer : st.ctx.trusted_issuers) st.routing->trust_issuer(issuer);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::cmtp, caf::actor{self});
  // Revocations: the IAM actor tells us every live one now and every later one.
  st.iam = iam;
  if (iam) self->send(iam, iam::iam_watch_atom::value, caf::actor{self});
  if (!iam || !st.ctx.signer)
    record(self, "not_serving", st.ctx.self, "no IAM actor or no node identity: the router cannot authenticate", 0);
  authenticate(self);
  self->delayed_send(self, std::chrono::seconds(1), sweep_atom::value);
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::cmtp) on_envelope(self, from, data);
    },
    [=](router_call_atom, const bytes& packed) -> caf::result<bytes> {
      auto req = unpack_value<cmtp::request>(packed.data(), packed.size());
      if (!req) {
        cmtp::response bad;
        bad.status = 400;
        bad.reason = "malformed CMTP request: " + req.err().describe();
        return *pack_value(bad);
      }
      requester who;
      who.in_process = true;
      who.promise = self->make_response_promise<bytes>();
      auto promise = who.promise;
      start(self, std::move(who), std::move(*req));
      return promise;
    },
    [=](router_batch_atom, std::vector<cmtp::request>& reqs) -> caf::result<std::vector<cmtp::response>> {
      return start_batch(self, reqs);
    },
    [=](kv::kv_answers_atom, const std::vector<uint64_t>& ids, const std::vector<kv::response>& answers) {
      on_kv_answers(self, ids, answers);
    },
    [=](iam::iam_revoked_atom, const node_id& issuer, const std::string& token_id, int64_t expires_at_s) {
      self->state.routing->revoke(issuer, token_id, expires_at_s);
      record(self, "revocation", node_id{}, token_id, expires_at_s);
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
    [=](flush_atom) {
      auto& s = self->state;
      s.flush_scheduled = false;
      effects out;
      std::swap(out, s.gathered);
      carry_out(self, out);
    },
    [=](tick_atom) {
      auto& s = self->state;
      s.armed_us = std::numeric_limits<int64_t>::max();
      effects out;
      s.routing->tick(mesh_us(self), out);
      carry_out(self, out);
    },
    [=](sweep_atom) {
      authenticate(self);  // a no-op once serving
      effects out;
      self->state.routing->tick(mesh_us(self), out);
      carry_out(self, out);
      self->delayed_send(self, std::chrono::seconds(1), sweep_atom::value);
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.routing->statistics();
      std::string line = std::string("router ") + (s.routing->serving() ? "serving" : "not_serving") +
                         " requests=" + std::to_string(stats.requests) +
                         " answered=" + std::to_string(stats.answered) +
                         " pending=" + std::to_string(s.routing->pending()) +
                         " timeouts=" + std::to_string(stats.timeouts) +
                         " rate_limited=" + std::to_string(stats.rate_limited) +
                         " malformed=" + std::to_string(s.malformed);
      return line;
    },
  };
}

}  // namespace

caf::actor spawn_router_actor(caf::actor_system& system, const caf::actor& transport, const caf::actor& kv,
                              const caf::actor& bus, const caf::actor& iam, actor_context context,
                              bool own_thread) {
  if (own_thread) return system.spawn<caf::detached>(run, transport, kv, bus, iam, std::move(context));
  return system.spawn(run, transport, kv, bus, iam, std::move(context));
}

}  // namespace cmesh::router
