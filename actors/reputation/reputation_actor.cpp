#include "actors/reputation/reputation_actor.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>
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

namespace cmesh::reputation {

namespace {

constexpr std::string_view service_name = "reputation";

struct reputation_state {
  static inline const char* name = "cmesh.reputation";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> protocol;
  std::optional<member_view> members;
  bool refresh_pending = false;
  std::map<node_id, std::string> introduced;  // addresses handed to the transport
  std::optional<endorsement> last_endorsement;  // scheduled replay_endorsement only
  rng adversary{0};                             // nonces of scheduled forged reports
  uint64_t malformed = 0;
  uint64_t client_claims = 0;
  uint64_t queries = 0;
};

using reputation_actor = caf::stateful_actor<reputation_state>;
using refresh_atom = caf::atom_constant<caf::atom("rp_refresh")>;
using claim_atom = caf::atom_constant<caf::atom("rp_claim")>;

int64_t clock_us(reputation_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

int64_t mesh_us(reputation_actor* self) { return clock_us(self) + self->state.ctx.epoch_offset_us; }

void record(reputation_actor* self, std::string_view kind, const node_id& peer,
            const std::string& detail, int64_t value) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

template <class T>
void send_to(reputation_actor* self, const node_id& to, uint64_t correlation, const T& message) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, correlation, message);
  if (encoded) self->send(st.transport, send_atom::value, to, services::reputation, std::move(*encoded));
}

void carry_out(reputation_actor* self, effects& out) {
  auto& st = self->state;
  for (auto& s : out.sends) {
    if (!s.address.empty()) {
      auto known = st.introduced.find(s.to);
      if (known == st.introduced.end() || known->second != s.address) {
        st.introduced[s.to] = s.address;
        self->send(st.transport, introduce_atom::value, s.to, s.address);
      }
    }
    if (st.ctx.watcher) st.ctx.watcher->on_sent(st.ctx.self, s.to, s.message);
    std::visit([&](const auto& m) { send_to(self, s.to, 0, m); }, s.message);
  }
  for (const auto& e : out.events) {
    std::string detail = "subject=" + e.subject.short_name();
    if (e.kind == event_kind::rejected) detail += std::string(" verdict=") + verdict_name(e.outcome);
    record(self, event_name(e.kind), e.peer, detail, 0);
    if (st.ctx.watcher) st.ctx.watcher->on_event(st.ctx.self, e, clock_us(self));
  }
  out.clear();
}

void refresh_contacts(reputation_actor* self) {
  auto& st = self->state;
  st.protocol->set_contacts(st.members->ordered<contact>(st.ctx.rng_seed));
}

void contacts_changed(reputation_actor* self) {
  auto& st = self->state;
  if (st.refresh_pending) return;
  st.refresh_pending = true;
  self->send(self, refresh_atom::value);
}

node_id subject_of(const wire_message& message) {
  const bytes& key = std::visit(
      [](const auto& m) -> const bytes& {
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, endorsement>) return m.subject;
        else return m.body.subject;
      },
      message);
  return key.size() == 32 ? node_id::from_bytes(key.data()) : node_id{};
}

// A claim from a peer (correlation 0) or a client (answered with a claim_result).
void on_claim(reputation_actor* self, const node_id& from, uint64_t correlation,
              const wire_message& message) {
  auto& st = self->state;
  effects out;
  auto status = st.protocol->receive(from, message, mesh_us(self), out);
  verdict outcome = verdict::accepted;
  for (const auto& e : out.events)
    if (e.kind == event_kind::rejected) outcome = e.outcome;
  carry_out(self, out);
  if (correlation == 0) return;
  ++st.client_claims;
  claim_result result;
  result.verdict = static_cast<uint8_t>(outcome);
  if (!status.ok()) result.reason = status.message;
  result.score = st.protocol->score(subject_of(message)).score;
  send_to(self, from, correlation, result);
}

void on_query(reputation_actor* self, const node_id& from, uint64_t correlation,
              const score_query& query) {
  auto& st = self->state;
  ++st.queries;
  score_reply reply;
  if (query.subject.size() != 32) {
    reply.status = score_bad_request;
    reply.reason = "subject must be a 32-byte public key, got " + std::to_string(query.subject.size()) +
                   " bytes";
    send_to(self, from, correlation, reply);
    return;
  }
  const node_id subject = node_id::from_bytes(query.subject.data());
  const score_card card = st.protocol->score(subject);
  reply.score = card.score;
  reply.endorsers = card.endorsers;
  reply.reporters = card.reporters;
  reply.report_weight = card.report_weight;
  reply.endorsements = card.endorsements;
  auto reports = st.protocol->reports_about(subject);
  const size_t wanted = std::min<size_t>(query.reports_max, score_reply_reports_max);
  if (reports.size() > wanted) reports.resize(wanted);
  reply.reports = std::move(reports);
  send_to(self, from, correlation, reply);
}

void on_envelope(reputation_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (!env) {
    ++st.malformed;
    record(self, "malformed", from, env.err().describe(), 0);
    return;
  }
  const uint64_t correlation = env->correlation;
  auto claim = [&](auto m) { on_claim(self, from, correlation, wire_message{std::move(m)}); };
  std::string problem;
  switch (env->type) {
    case endorsement::type_id: problem = decode_then<endorsement>(*env, claim); break;
    case report_gossip::type_id: problem = decode_then<report_gossip>(*env, claim); break;
    case score_query::type_id:
      problem = decode_then<score_query>(*env, [&](score_query q) { on_query(self, from, correlation, q); });
      if (!problem.empty() && correlation != 0) {
        score_reply bad;
        bad.status = score_bad_request;
        bad.reason = problem;
        send_to(self, from, correlation, bad);
      }
      break;
    default: problem = "unknown reputation message type " + std::to_string(env->type);
  }
  if (problem.empty()) return;
  ++st.malformed;
  record(self, "malformed", from, problem, 0);
  if (correlation != 0 && (env->type == endorsement::type_id || env->type == report_gossip::type_id))
    send_to(self, from, correlation,
            claim_result{static_cast<uint8_t>(verdict::malformed), "malformed: " + problem, 0});
}

hash32 hash_of_text(const std::string& text) {
  return resource_hash(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

void run_claim(reputation_actor* self, const scheduled_claim& c) {
  auto& st = self->state;
  effects out;
  const int64_t now = mesh_us(self);
  switch (c.what) {
    case scheduled_claim::kind::endorse: {
      auto e = st.protocol->endorse(c.subject, c.subject_address,
                                    hash_of_text("resource of " + c.subject.short_name()), now, out);
      if (e) st.last_endorsement = *e;
      else record(self, "claim_refused", c.subject, e.err().describe(), 0);
      break;
    }
    case scheduled_claim::kind::report: {
      auto r = st.protocol->report_subject(c.subject, static_cast<report_reason>(c.reason),
                                           hash_of_text("evidence about " + c.subject.short_name()),
                                           now, out);
      if (!r) record(self, "claim_refused", c.subject, r.err().describe(), 0);
      break;
    }
    case scheduled_claim::kind::replay_endorsement:
      if (st.last_endorsement) {
        const node_id to = node_id::from_bytes(st.last_endorsement->subject.data());
        out.sends.push_back({to, {}, *st.last_endorsement});
      }
      break;
    case scheduled_claim::kind::forged_report: {
      // Names `impersonated` as reporter but signs with our key: must fail everywhere.
      report r = sign_report(c.impersonated, signer_for(*st.ctx.signer), c.subject, c.reason,
                             hash_of_text("forged"), now, st.adversary.next());
      const uint8_t hops = static_cast<uint8_t>(st.protocol->configuration().report_hops_max - 1);
      for (const auto& member : st.members->ordered<contact>(st.ctx.rng_seed))
        if (member.id != c.subject && member.id != c.impersonated)
          out.sends.push_back({member.id, {}, report_gossip{r, hops}});
      break;
    }
  }
  carry_out(self, out);
}

caf::behavior run(reputation_actor* self, caf::actor transport, caf::actor membership,
                  actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  assert(st.ctx.signer && st.ctx.signer->public_key == st.ctx.self);
  st.protocol = std::make_unique<machine>(st.ctx.reputation, st.ctx.self, signer_for(*st.ctx.signer),
                                          rng(st.ctx.rng_seed));
  st.adversary = rng(mix_seed(st.ctx.rng_seed, 1));
  st.members.emplace(st.ctx.self, static_cast<bool>(membership));
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::reputation, caf::actor{self});
  if (membership) self->send(membership, swim::swim_watch_atom::value, caf::actor{self});
  for (size_t i = 0; i < st.ctx.claims.size(); ++i)
    if (st.ctx.claims[i].at_us >= clock_us(self))  // a restarted node does not rerun old ones
      self->delayed_send(self, std::chrono::microseconds(st.ctx.claims[i].at_us - clock_us(self)),
                         claim_atom::value, static_cast<uint64_t>(i));
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::reputation) on_envelope(self, from, data);
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
    [=](claim_atom, uint64_t index) {
      if (index < self->state.ctx.claims.size()) run_claim(self, self->state.ctx.claims[index]);
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.protocol->statistics();
      uint64_t rejected = 0;
      for (auto n : stats.rejected) rejected += n;
      return "reputation subjects=" + std::to_string(s.protocol->subjects_known()) +
             " endorsements=" + std::to_string(stats.endorsements_accepted) +
             " reports=" + std::to_string(stats.reports_accepted) +
             " cached_reports=" + std::to_string(s.protocol->report_cache_size()) +
             " rejected=" + std::to_string(rejected) +
             " client_claims=" + std::to_string(s.client_claims) +
             " queries=" + std::to_string(s.queries) +
             " malformed=" + std::to_string(s.malformed);
    },
  };
}

}  // namespace

caf::actor spawn_reputation_actor(caf::actor_system& system, const caf::actor& transport,
                                  const caf::actor& membership, actor_context context) {
  return system.spawn(run, transport, membership, std::move(context));
}

}  // namespace cmesh::reputation
