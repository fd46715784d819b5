#include "actors/kv/kv_actor.hpp"

#include <algorithm>
#include <chrono>

#include <caf/all.hpp>

#include "actors/iam/iam_actor.hpp"
#include "actors/iam/session_table.hpp"
#include "actors/ignore_unexpected.hpp"
#include "actors/kv/kv_machine.hpp"
#include "actors/raft/raft_observer.hpp"
#include "actors/raft/raft_store.hpp"
#include "messages/codec.hpp"
#include "messages/kv_messages.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::kv {

namespace {

using flush_atom = caf::atom_constant<caf::atom("flush")>;
using forward_timeout_atom = caf::atom_constant<caf::atom("fwd_tmo")>;
using outbox_atom = caf::atom_constant<caf::atom("kv_outbox")>;

constexpr std::string_view service_name = "kv";

// Where an answer goes: a remote client (envelope with its correlation), a local requester
// (response promise, or a batch caller: `batch` and the request's tag), or a follower that
// forwarded the request (also remote).
struct replier {
  bool local = false;
  node_id to;
  uint64_t correlation = 0;
  caf::response_promise promise;
  caf::actor batch;  // local batch caller (kv_batch_atom): answered through the outbox
  uint64_t tag = 0;
};

// Answers for one batch caller, sent in one kv_answers message when the outbox is flushed.
struct outbox_entry {
  caf::actor to;
  std::vector<uint64_t> tags;
  std::vector<response> answers;
};

struct pending_write {
  raft::term_t term = 0;
  replier who;
};

struct pending_read {
  request req;
  replier who;
  raft::index_t index = 0;  // 0 until the leader confirmed the read
  bool confirmed = false;
};

struct replica_state {
  static inline const char* name = "cmesh.kv";
  replica_context ctx;
  caf::actor transport;
  iam::session_table sessions;  // with ctx.require_session
  std::unique_ptr<raft::machine> raft;
  std::optional<raft::log_store> log;
  machine sm;
  raft::ready pending;
  bool flush_scheduled = false;
  raft::hard_state durable;  // the hard state last made durable (term and vote matter here)
  bool commit_unsaved = false;  // the commit index moved since `durable` was written
  raft::index_t applied = 0;
  raft::index_t snapshot_index = 0;
  std::map<raft::index_t, pending_write> writes;
  std::map<uint64_t, pending_read> reads;
  uint64_t next_read_id = 1;
  std::map<uint64_t, replier> forwards;
  std::vector<outbox_entry> outbox;  // batch callers' answers not yet sent
  bool outbox_scheduled = false;
  uint64_t next_forward_id = 1;
  int64_t armed_at = 0;
  bool stopped = false;
  bool failed = false;  // storage failed: fail-stop, answer 503 to everything
  uint64_t malformed = 0;
  raft::role last_role = raft::role::follower;
  node_id last_leader;
};

using replica_actor = caf::stateful_actor<replica_state>;

int64_t now_us(replica_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

void report(replica_actor* self, std::string_view kind, const node_id& peer, std::string_view detail,
            int64_t value = 0) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

response make_response(uint16_t status, std::string reason) {
  response r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

response unavailable(replica_actor* self, std::string reason) {
  auto& st = self->state;
  auto r = make_response(503, std::move(reason));
  const node_id& leader = st.raft->leader();
  if (!leader.is_zero() && leader != st.ctx.self) {
    r.leader.assign(leader.key.begin(), leader.key.end());
    auto it = st.ctx.addresses.find(leader);
    if (it != st.ctx.addresses.end()) r.leader_address = it->second;
  }
  return r;
}

void reply(replica_actor* self, replier& who, response r) {
  auto& st = self->state;
  if (who.batch) {
    auto entry = std::find_if(st.outbox.begin(), st.outbox.end(),
                              [&](const outbox_entry& e) { return e.to == who.batch; });
    if (entry == st.outbox.end()) entry = st.outbox.insert(st.outbox.end(), outbox_entry{who.batch, {}, {}});
    entry->tags.push_back(who.tag);
    entry->answers.push_back(std::move(r));
    if (!st.outbox_scheduled) {
      st.outbox_scheduled = true;
      self->send(self, outbox_atom::value);
    }
    return;
  }
  if (who.local) {
    auto packed = pack_value(r);
    if (packed) who.promise.deliver(std::move(*packed));
    else who.promise.deliver(bytes{});
    return;
  }
  auto encoded = encode_message(st.ctx.self, who.correlation, r);
  if (!encoded) {
    report(self, "encode_error", who.to, encoded.err().describe());
    return;
  }
  self->send(st.transport, send_atom::value, who.to, services::kv, std::move(*encoded));
}

bool is_read(const request& req) {
  auto o = static_cast<op>(req.operation);
  return o == op::get || o == op::name_resolve;
}

void schedule_flush(replica_actor* self) {
  auto& st = self->state;
  if (st.flush_scheduled) return;
  st.flush_scheduled = true;
  self->send(self, flush_atom::value);
}

void arm_timer(replica_actor* self) {
  auto& st = self->state;
  int64_t deadline = st.raft->next_deadline_us();
  if (st.armed_at != 0 && st.armed_at <= deadline) return;
  int64_t delay = std::max<int64_t>(0, deadline - now_us(self));
  st.armed_at = deadline;
  self->delayed_send(self, std::chrono::microseconds(delay), tick_atom::value, deadline);
}

void send_raft(replica_actor* self, const raft::outgoing& out) {
  auto& st = self->state;
  auto payload = std::visit([](const auto& m) { return pack_value(m); }, out.message);
  if (!payload) {
    report(self, "encode_error", out.to, payload.err().describe());
    return;
  }
  envelope env;
  env.type = std::visit([](const auto& m) { return std::decay_t<decltype(m)>::type_id; },
                        out.message);
  env.source = st.ctx.self;
  env.service = services::raft_group(st.ctx.group);
  env.payload = std::move(*payload);
  auto encoded = encode_envelope(env);
  if (!encoded) {
    report(self, "encode_error", out.to, encoded.err().describe());
    return;
  }
  self->send(st.transport, send_atom::value, out.to, env.service, std::move(*encoded));
}

void serve_ready_reads(replica_actor* self) {
  auto& st = self->state;
  for (auto it = st.reads.begin(); it != st.reads.end();) {
    auto& r = it->second;
    if (r.confirmed && r.index <= st.applied) {
      auto answer = st.sm.read(r.req);
      answer.index = st.applied;
      reply(self, r.who, std::move(answer));
      it = st.reads.erase(it);
    } else {
      ++it;
    }
  }
}

void fail_writes(replica_actor* self, uint16_t status, const std::string& reason) {
  auto& st = self->state;
  for (auto& [index, w] : st.writes) reply(self, w.who, make_response(status, reason));
  st.writes.clear();
}

void maybe_compact(replica_actor* self) {
  auto& st = self->state;
  if (st.ctx.snapshot_every == 0 || st.applied < st.snapshot_index + st.ctx.snapshot_every) return;
  auto data = std::make_shared<const bytes>(st.sm.snapshot());
  auto s = st.raft->compact(st.applied, data);
  if (!s.ok()) return;
  st.snapshot_index = st.applied;
  if (st.log) {
    auto saved = st.log->save_snapshot(st.raft->snapshot());
    if (!saved.ok()) report(self, "storage_error", node_id{}, saved.describe());
  }
  report(self, "compacted", node_id{}, "", static_cast<int64_t>(st.applied));
}

// Replaces the state machine with a snapshot (at boot, or installed from the leader).
void restore_snapshot(replica_actor* self, const raft::snapshot_record& snapshot) {
  auto& st = self->state;
  auto s = st.sm.restore(snapshot.data ? *snapshot.data : bytes{});
  if (!s.ok()) report(self, "snapshot_error", node_id{}, s.describe());
  st.applied = st.snapshot_index = snapshot.index;
}

// The reads the leader confirmed (or gave up) in ready `r`; consumes them from `r`.
void confirm_reads(replica_actor* self, raft::ready& r) {
  auto& st = self->state;
  for (const auto& rs : r.reads) {
    auto it = st.reads.find(rs.id);
    if (it == st.reads.end()) continue;
    it->second.confirmed = true;
    it->second.index = rs.index;
  }
  for (auto id : r.reads_failed) {
    auto it = st.reads.find(id);
    if (it == st.reads.end()) continue;
    reply(self, it->second.who, unavailable(self, "leadership lost before the read was confirmed"));
    st.reads.erase(it);
  }
  r.reads.clear();
  r.reads_failed.clear();
}

// Sends the batch callers' answers gathered so far, one kv_answers message per caller.
void send_outbox(replica_actor* self) {
  auto& st = self->state;
  for (auto& e : st.outbox) self->send(e.to, kv_answers_atom::value, std::move(e.tags), std::move(e.answers));
  st.outbox.clear();
}

// Carry out the accumulated ready: answer ready reads, persist, send, apply, answer.
void flush(replica_actor* self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  auto& r = st.pending;
  // A leader's appends may leave before its own disk write (Raft thesis §10.2.1): the leader
  // counts itself toward a quorum only when it steps the followers' answers, which happens in a
  // later handler, after this flush has synced. So the followers' disk writes overlap the
  // leader's. Only when term and vote are already durable: the messages carry the term, and a
  // vote must never leave before it is stored.
  bool term_durable = !r.hard_state_changed ||
                      (r.state.term == st.durable.term && r.state.vote == st.durable.vote);
  std::vector<bool> sent_early(r.messages.size(), false);
  if (term_durable && st.raft->current_role() == raft::role::leader) {
    for (size_t i = 0; i < r.messages.size(); ++i) {
      if (!std::holds_alternative<raft::append_request>(r.messages[i].message)) continue;
      send_raft(self, r.messages[i]);
      sent_early[i] = true;
    }
  }
  // The commit index is volatile state in Raft (§5, Figure 2): a ready that changes nothing but
  // the commit index needs no disk write of its own. It rides along with the next one; a restart
  // before that only re-learns the commit index from the leader.
  bool commit_only = r.hard_state_changed && term_durable && !r.snapshot && !r.truncate_from &&
                     r.append.empty();
  if (commit_only) {
    st.commit_unsaved = true;
    r.hard_state_changed = false;
  } else if (st.commit_unsaved && r.must_persist()) {
    r.hard_state_changed = true;
    r.state = st.raft->current_hard_state();
  }
  // Reads need no disk write: a confirmed read at or below the applied index (entries applied by
  // earlier flushes, committed and durable) is answered before this flush's sync, and its answer
  // leaves at once, so reads never queue behind the writes' fsync.
  confirm_reads(self, r);
  serve_ready_reads(self);
  send_outbox(self);
  if (st.log && r.must_persist()) {
    auto s = st.log->persist(r, st.raft->current_hard_state());
    if (!s.ok()) {
      // Fail-stop: sending after a failed persist could lose an acknowledged vote or entry.
      report(self, "storage_error", node_id{}, s.describe());
      st.failed = true;
      r.clear();
      fail_writes(self, 503, "replica storage failed");
      return;
    }
  }
  if (r.hard_state_changed) {
    st.durable = r.state;
    st.commit_unsaved = false;
  }
  if (st.ctx.observer) st.ctx.observer->on_persisted(st.ctx.self, st.ctx.group, r, *st.raft);
  for (size_t i = 0; i < r.messages.size(); ++i)
    if (!sent_early[i]) send_raft(self, r.messages[i]);
  if (r.snapshot) {
    restore_snapshot(self, *r.snapshot);
    for (auto it = st.writes.begin(); it != st.writes.end() && it->first <= st.applied;) {
      reply(self, it->second.who, make_response(408, "replaced by a snapshot: outcome unknown, retry"));
      it = st.writes.erase(it);
    }
    if (st.ctx.observer)
      st.ctx.observer->on_restored(st.ctx.self, st.ctx.group, st.applied, st.sm.state_hash());
  }
  for (const auto& e : r.committed) {
    if (e.index <= st.applied) continue;
    response answer;
    bool have_answer = false;
    if (e.kind == static_cast<uint8_t>(raft::entry_kind::normal)) {
      auto cmd = unpack_value<command>(e.data.data(), e.data.size());
      if (cmd) {
        answer = st.sm.apply(e.index, *cmd);
        have_answer = true;
      } else {
        answer = make_response(500, "undecodable command: " + cmd.err().describe());
      }
    }
    st.applied = e.index;
    if (st.ctx.observer) st.ctx.observer->on_applied(st.ctx.self, st.ctx.group, e, st.sm.state_hash());
    auto w = st.writes.find(e.index);
    if (w != st.writes.end()) {
      if (w->second.term == e.term && have_answer) {
        if (answer.index == 0) answer.index = e.index;
        reply(self, w->second.who, std::move(answer));
      } else {
        reply(self, w->second.who,
              make_response(408, "leadership changed before commit: outcome unknown, retry"));
      }
      st.writes.erase(w);
    }
  }
  serve_ready_reads(self);  // those that waited for this flush's entries
  for (const auto& ev : r.events) report(self, ev.kind, ev.peer, "", static_cast<int64_t>(ev.term));
  r.clear();
  if (st.raft->current_role() != raft::role::leader && !st.writes.empty())
    fail_writes(self, 408, "leadership lost before commit: outcome unknown, retry");
  maybe_compact(self);
  arm_timer(self);
}

void handle_request(replica_actor* self, request req, const node_id& caller, replier who) {
  auto& st = self->state;
  if (st.stopped || st.failed) return reply(self, who, make_response(503, "replica unavailable"));
  auto invalid = machine::validate(req, limits_config{});
  if (invalid.status != 0) return reply(self, who, invalid);
  auto now = now_us(self);
  if (st.raft->current_role() == raft::role::leader) {
    if (is_read(req)) {
      // The sole voter knows it leads, so a read needs no ReadIndex round. It is answered now from
      // the applied state: entries past it (committed or not) are writes not yet acknowledged to
      // anyone (a write is answered when applied), so the read may be ordered before them.
      if (st.raft->local_read_index()) {
        auto answer = st.sm.read(req);
        answer.index = st.applied;
        return reply(self, who, std::move(answer));
      }
      uint64_t id = st.next_read_id++;
      auto s = st.raft->read_index(now, id, st.pending);
      if (!s.ok()) return reply(self, who, unavailable(self, s.message));
      st.reads.emplace(id, pending_read{std::move(req), std::move(who)});
      schedule_flush(self);
      return;
    }
    command cmd;
    cmd.req = std::move(req);
    cmd.caller.assign(caller.key.begin(), caller.key.end());
    auto packed = pack_value(cmd);
    if (!packed) return reply(self, who, make_response(413, packed.err().describe()));
    auto index = st.raft->propose(now, std::move(*packed), st.pending);
    if (!index) return reply(self, who, unavailable(self, index.err().message));
    st.writes[*index] = pending_write{st.raft->term(), std::move(who)};
    schedule_flush(self);
    return;
  }
  const node_id& leader = st.raft->leader();
  if (req.forwarded || leader.is_zero() || leader == st.ctx.self)
    return reply(self, who, unavailable(self, leader.is_zero() ? "no leader known" : "not the leader"));
  // Forward once to the leader, relay its answer.
  uint64_t id = st.next_forward_id++;
  forward fwd;
  fwd.cmd.req = std::move(req);
  fwd.cmd.req.forwarded = true;
  fwd.cmd.caller.assign(caller.key.begin(), caller.key.end());
  auto encoded = encode_message(st.ctx.self, id, fwd);
  if (!encoded) return reply(self, who, make_response(413, encoded.err().describe()));
  st.forwards.emplace(id, std::move(who));
  self->send(st.transport, send_atom::value, leader, services::kv, std::move(*encoded));
  self->delayed_send(self, std::chrono::microseconds(st.ctx.forward_timeout_us),
                     forward_timeout_atom::value, id);
}

void on_kv_envelope(replica_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto fail = [&](const error& e) {
    ++st.malformed;
    report(self, "malformed", from, e.describe());
  };
  auto env = decode_envelope_from(from, data);
  if (!env) return fail(env.err());
  switch (env->type) {
    case request::type_id: {
      auto req = decode_payload<request>(*env);
      if (!req) return fail(req.err());
      replier who;
      who.to = from;
      who.correlation = env->correlation;
      req->forwarded = false;  // only members forward, with the forward message
      if (st.ctx.require_session) {
        const std::string scope = is_read(*req) ? "state.read" : "state.write";
        switch (st.sessions.check(from, scope, now_us(self))) {
          case iam::session_table::verdict::ok: break;
          case iam::session_table::verdict::no_session:
            report(self, "client_refused", from, "401 no session");
            return reply(self, who, make_response(401, "no_session: no live IAM session of this node for this key; run the handshake (cmesh id session)"));
          case iam::session_table::verdict::insufficient_scope:
            report(self, "client_refused", from, "403 " + scope);
            return reply(self, who, make_response(403, "insufficient_scope: needs scope " + scope));
        }
      }
      return handle_request(self, std::move(*req), from, std::move(who));
    }
    case forward::type_id: {
      auto fwd = decode_payload<forward>(*env);
      if (!fwd) return fail(fwd.err());
      if (!st.raft->is_member(from))
        return fail({errc::permission_denied, "forward from a node outside the group"});
      if (fwd->cmd.caller.size() != 32) return fail({errc::malformed, "forward without a caller"});
      replier who;
      who.to = from;
      who.correlation = env->correlation;
      auto caller = node_id::from_bytes(fwd->cmd.caller.data());
      return handle_request(self, std::move(fwd->cmd.req), caller, std::move(who));
    }
    case response::type_id: {
      auto resp = decode_payload<response>(*env);
      if (!resp) return fail(resp.err());
      auto it = st.forwards.find(env->correlation);
      if (it == st.forwards.end()) return;  // late answer after a timeout
      reply(self, it->second, *resp);
      st.forwards.erase(it);
      return;
    }
    default:
      return fail({errc::unknown_type, "kv message type " + std::to_string(env->type)});
  }
}

void on_raft_envelope(replica_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto fail = [&](const error& e) {
    ++st.malformed;
    report(self, "malformed", from, e.describe());
  };
  auto env = decode_envelope_from(from, data);
  if (!env) return fail(env.err());
  raft::wire_message message;
  auto decode = [&](auto tag) -> bool {
    using T = decltype(tag);
    auto m = unpack_value<T>(env->payload.data(), env->payload.size());
    if (!m) {
      fail(m.err());
      return false;
    }
    message = std::move(*m);
    return true;
  };
  bool ok = false;
  switch (env->type) {
    case raft::vote_request::type_id: ok = decode(raft::vote_request{}); break;
    case raft::vote_response::type_id: ok = decode(raft::vote_response{}); break;
    case raft::append_request::type_id: ok = decode(raft::append_request{}); break;
    case raft::append_response::type_id: ok = decode(raft::append_response{}); break;
    case raft::snapshot_request::type_id: ok = decode(raft::snapshot_request{}); break;
    case raft::snapshot_response::type_id: ok = decode(raft::snapshot_response{}); break;
    case raft::timeout_now::type_id: ok = decode(raft::timeout_now{}); break;
    default: fail({errc::unknown_type, "raft message type " + std::to_string(env->type)});
  }
  if (!ok) return;
  st.raft->step(now_us(self), from, std::move(message), st.pending);
  schedule_flush(self);
}

caf::behavior replica(replica_actor* self, caf::actor transport, replica_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  st.ctx.raft_config.self = st.ctx.self;
  raft::membership initial;
  initial.voters = raft::to_keys(st.ctx.voters);
  st.raft = std::make_unique<raft::machine>(st.ctx.raft_config, initial, st.ctx.rng_seed);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::kv, caf::actor{self});
  self->send(st.transport, register_atom::value, services::raft_group(st.ctx.group),
             caf::actor{self});
  for (const auto& [id, address] : st.ctx.addresses)
    if (id != st.ctx.self) self->send(st.transport, introduce_atom::value, id, address);
  raft::restored_state restored;
  if (st.ctx.storage) {
    auto opened = raft::log_store::open(*st.ctx.storage, st.ctx.group);
    if (!opened) {
      report(self, "storage_error", node_id{}, opened.err().describe());
      st.failed = true;
    } else {
      st.log = std::move(*opened);
      auto loaded = st.log->load();
      if (!loaded) {
        report(self, "storage_error", node_id{}, loaded.err().describe());
        st.failed = true;
      } else {
        restored = std::move(*loaded);
        st.durable = restored.state;
      }
    }
  }
  if (restored.snapshot) restore_snapshot(self, *restored.snapshot);
  if (st.ctx.observer)
    st.ctx.observer->on_restored(st.ctx.self, st.ctx.group, st.applied, st.sm.state_hash());
  st.raft->restore(now_us(self), std::move(restored), st.pending);
  flush(self);
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      auto& s = self->state;
      if (s.stopped || s.failed) return;
      if (service == services::kv)
        on_kv_envelope(self, from, data);
      else
        on_raft_envelope(self, from, data);
    },
    [=](iam::iam_session_atom, const node_id& holder, const std::string& token_id,
        const std::string& scope, int64_t ttl_us) {
      self->state.sessions.grant(holder, token_id, scope, ttl_us, now_us(self));
    },
    [=](iam::iam_revoked_atom, const node_id&, const std::string& token_id, int64_t) {
      self->state.sessions.remove(token_id);
    },
    [=](kv_request_atom, const bytes& encoded, const node_id& caller) {
      auto promise = self->make_response_promise<bytes>();
      replier who;
      who.local = true;
      who.promise = promise;
      auto req = unpack_value<request>(encoded.data(), encoded.size());
      if (!req) {
        reply(self, who, make_response(400, req.err().describe()));
      } else {
        req->forwarded = false;
        handle_request(self, std::move(*req), caller, std::move(who));
      }
      return promise;
    },
    [=](kv_batch_atom, std::vector<request>& requests, const std::vector<node_id>& callers,
        const std::vector<uint64_t>& tags) {
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      if (!sender || requests.size() != callers.size() || requests.size() != tags.size()) {
        ++self->state.malformed;
        report(self, "malformed", node_id{}, "kv batch with mismatched lengths or no sender");
        return;
      }
      for (size_t i = 0; i < requests.size(); ++i) {
        replier who;
        who.local = true;
        who.batch = sender;
        who.tag = tags[i];
        requests[i].forwarded = false;
        handle_request(self, std::move(requests[i]), callers[i], std::move(who));
      }
    },
    [=](outbox_atom) {
      auto& s = self->state;
      s.outbox_scheduled = false;
      send_outbox(self);
    },
    [=](raft_admin_atom, uint8_t change, const node_id& who) -> std::string {
      auto& s = self->state;
      if (change > static_cast<uint8_t>(raft::membership_change::remove)) return "unknown change";
      auto index = s.raft->change_membership(
          now_us(self), static_cast<raft::membership_change>(change), who, s.pending);
      schedule_flush(self);
      return index ? std::string() : index.err().describe();
    },
    [=](transfer_atom, const node_id& to) -> std::string {
      auto& s = self->state;
      auto result = s.raft->transfer_leadership(now_us(self), to, s.pending);
      schedule_flush(self);
      return result.ok() ? std::string() : result.describe();
    },
    [=](flush_atom) { flush(self); },
    [=](tick_atom, int64_t at) {
      auto& s = self->state;
      if (s.armed_at == at) s.armed_at = 0;
      if (s.stopped || s.failed) return;
      auto now = now_us(self);
      if (now >= s.raft->next_deadline_us()) s.raft->tick(now, s.pending);
      flush(self);
    },
    [=](forward_timeout_atom, uint64_t id) {
      auto& s = self->state;
      auto it = s.forwards.find(id);
      if (it == s.forwards.end()) return;
      reply(self, it->second, make_response(408, "the leader did not answer in time: outcome unknown"));
      s.forwards.erase(it);
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
    [=](status_atom) {
      auto& s = self->state;
      return std::string("kv role=") + raft::role_name(s.raft->current_role()) +
             " term=" + std::to_string(s.raft->term()) +
             " commit=" + std::to_string(s.raft->commit_index()) +
             " applied=" + std::to_string(s.applied) +
             " leader=" + (s.raft->leader().is_zero() ? "none" : s.raft->leader().short_name()) +
             " keys=" + std::to_string(s.sm.size());
    },
    [=](shutdown_atom) {
      auto& s = self->state;
      if (s.flush_scheduled) flush(self);
      s.stopped = true;
      fail_writes(self, 503, "replica shutting down");
      for (auto& [id, r] : s.reads) reply(self, r.who, make_response(503, "replica shutting down"));
      s.reads.clear();
      for (auto& [id, w] : s.forwards) reply(self, w, make_response(503, "replica shutting down"));
      s.forwards.clear();
      return caf::atom("done");
    },
  };
}

}  // namespace

caf::actor spawn_kv_replica(caf::actor_system& system, const caf::actor& transport,
                            replica_context context) {
  return system.spawn(replica, transport, std::move(context));
}

}  // namespace cmesh::kv
