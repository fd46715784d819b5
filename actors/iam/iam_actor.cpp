#include "actors/iam/iam_actor.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <map>
#include <set>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/codec.hpp"
#include "messages/iam_messages.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::iam {

std::vector<scope_rule> default_scope_rules() {
  auto scopes = parse_scope(default_scopes);
  assert(scopes.ok());
  return {scope_rule{"*", "*", std::move(*scopes)}};
}

namespace {

constexpr std::string_view service_name = "iam";

struct iam_state {
  static inline const char* name = "cmesh.iam";
  actor_context ctx;
  caf::actor transport;
  std::unique_ptr<machine> protocol;
  std::vector<caf::actor> watchers;
  // Sessions granted and not expired, for the session watchers (services that authorize their
  // own wire clients): jti -> holder, scope, exp. Bounded by the machine's revocations_max.
  struct live_session {
    node_id holder;
    std::string scope;
    int64_t expires_at_s = 0;
  };
  std::map<std::string, live_session> sessions;
  std::vector<caf::actor> session_watchers;
  std::map<node_id, uint32_t> window;  // challenge requests per peer in the current tick
  // Connected nodes (peers that advertise an address; clients do not): they hear our revocations.
  std::set<node_id> nodes;
  // Revocations other nodes' IAMs told us about, each for a token that node issued:
  // (issuer, jti) -> the token's exp. Bounded by the machine's revocations_max.
  std::map<std::pair<node_id, std::string>, int64_t> foreign;
  store* storage = nullptr;     // revocations survive a restart here (null: memory only)
  store::database revocations_db = 0;
  uint64_t notices_sent = 0;
  uint64_t foreign_learned = 0;
  uint64_t persist_failures = 0;
  uint64_t ticks = 0;
  uint64_t malformed = 0;
  uint64_t rate_limited = 0;
  uint64_t requests = 0;
};

using iam_actor = caf::stateful_actor<iam_state>;

int64_t clock_us(iam_actor* self) {
  using namespace std::chrono;
  return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
}

// Mesh time in whole Unix seconds (floor, also for times before the epoch).
int64_t now_s(iam_actor* self) {
  const int64_t us = clock_us(self) + self->state.ctx.epoch_offset_us;
  return us >= 0 ? us / 1'000'000 : -((-us + 999'999) / 1'000'000);
}

void record(iam_actor* self, std::string_view kind, const node_id& peer, const std::string& detail,
            int64_t value = 0) {
  auto& st = self->state;
  if (st.ctx.events) st.ctx.events->record({st.ctx.self, service_name, kind, peer, detail, value});
}

template <class T>
void reply(iam_actor* self, const node_id& to, uint64_t correlation, const T& message) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, correlation, message);
  if (encoded) self->send(st.transport, send_atom::value, to, services::iam, std::move(*encoded));
}

// The wire status of a handshake refusal (messages/iam_messages.hpp).
uint16_t wire_status(error_kind kind) {
  switch (kind) {
    case error_kind::malformed:
    case error_kind::missing_token: return status_bad_request;
    case error_kind::replayed: return status_replayed;
    default: return static_cast<uint16_t>(cmtp_status(kind));
  }
}

void refused(iam_actor* self, const node_id& from, const iam_error& err) {
  record(self, "refused", from, err.describe());
}

// The answer to a challenge request from `from` (a transport peer, or this node in process).
challenge_reply make_challenge(iam_actor* self, const node_id& from, const challenge_request& request) {
  auto& st = self->state;
  challenge_reply answer;
  uint32_t& used = st.window[from];
  if (used >= challenges_per_peer_per_s) {
    ++st.rate_limited;
    if (st.rate_limited == 1 || st.rate_limited % 100 == 0)
      record(self, "rate_limited", from, "challenge requests over " +
                                             std::to_string(challenges_per_peer_per_s) + "/s",
             static_cast<int64_t>(st.rate_limited));
    answer.status = status_rate_limited;
    answer.reason = "rate_limited: more than " + std::to_string(challenges_per_peer_per_s) +
                    " challenge requests in a second; retry later";
    return answer;
  }
  ++used;
  if (request.audience.size() > st.protocol->configuration().audience_chars_max) {
    answer.status = status_too_large;
    answer.reason = "too_large: audience of " + std::to_string(request.audience.size()) +
                    " characters, at most " +
                    std::to_string(st.protocol->configuration().audience_chars_max);
    record(self, "refused", from, answer.reason);
    return answer;
  }
  auto issued = st.protocol->issue_challenge(request.audience, now_s(self));
  if (!issued) {
    answer.status =
        issued.err().code == errc::unavailable ? status_unavailable : status_bad_request;
    answer.reason = issued.err().describe();
    record(self, "refused", from, answer.reason);
    return answer;
  }
  answer.nonce = issued->nonce;
  answer.audience = issued->audience;
  answer.node_did = issued->node_did;
  answer.expires_at_s = issued->expires_at_s;
  record(self, "challenge_issued", from, "audience=" + issued->audience);
  return answer;
}

void tell_session(iam_actor* self, const caf::actor& watcher, const node_id& holder,
                  const std::string& token_id, const std::string& scope, int64_t expires_at_s) {
  const int64_t ttl_s = std::max<int64_t>(0, expires_at_s - now_s(self));
  self->send(watcher, iam_session_atom::value, holder, token_id, scope, ttl_s * 1'000'000);
}

// A session was granted: the session watchers hear of it (and hear it again when they watch).
void note_session(iam_actor* self, const std::string& holder_did, const std::string& token_id,
                  const std::string& scope, int64_t expires_at_s) {
  auto& st = self->state;
  auto holder = node_id_from_did(holder_did);
  if (!holder) return;  // the machine only grants did:key holders
  if (st.sessions.size() >= st.protocol->configuration().revocations_max) {
    const int64_t now = now_s(self);
    for (auto it = st.sessions.begin(); it != st.sessions.end();)
      it = now < it->second.expires_at_s ? std::next(it) : st.sessions.erase(it);
  }
  if (st.sessions.size() < st.protocol->configuration().revocations_max)
    st.sessions[token_id] = iam_state::live_session{*holder, scope, expires_at_s};
  for (const auto& w : st.session_watchers) tell_session(self, w, *holder, token_id, scope, expires_at_s);
}

// The answer to a signed challenge answer from `from`.
session_reply make_session(iam_actor* self, const node_id& from, const answer_message& message) {
  auto& st = self->state;
  session_reply answer;
  if (message.scope.size() > st.protocol->configuration().scope_chars_max) {
    answer.status = status_too_large;
    answer.reason = "too_large: requested scope of " + std::to_string(message.scope.size()) +
                    " characters, at most " +
                    std::to_string(st.protocol->configuration().scope_chars_max);
    record(self, "refused", from, answer.reason);
    return answer;
  }
  challenge_answer given{message.nonce, message.holder_did, message.scope, message.signature};
  auto grant = st.protocol->redeem(given, now_s(self));
  if (!grant) {
    answer.status = wire_status(grant.kind());
    answer.reason = grant.err().describe();
    refused(self, from, grant.err());
    return answer;
  }
  answer.token = grant->token;
  answer.scope = join_scope(grant->claims.scopes);
  answer.expires_at_s = grant->claims.expires_at_s;
  answer.token_id = grant->claims.token_id;
  note_session(self, grant->claims.subject, answer.token_id, answer.scope, answer.expires_at_s);
  record(self, "session_issued", from,
         "holder=" + grant->claims.subject + " audience=" + grant->claims.audience + " scope=\"" +
             answer.scope + "\" jti=" + answer.token_id,
         grant->claims.expires_at_s);
  return answer;
}

void on_challenge(iam_actor* self, const node_id& from, uint64_t correlation,
                  const challenge_request& request) {
  reply(self, from, correlation, make_challenge(self, from, request));
}

void on_answer(iam_actor* self, const node_id& from, uint64_t correlation, const answer_message& message) {
  reply(self, from, correlation, make_session(self, from, message));
}

void tell_watchers(iam_actor* self, const node_id& issuer, const std::string& token_id,
                   int64_t expires_at_s) {
  for (const auto& w : self->state.watchers)
    self->send(w, iam_revoked_atom::value, issuer, token_id, expires_at_s);
}

// ---- durable revocations (docs/iam.md §4) -------------------------------------------------------
// One entry per revoked token: key = issuer key (32 bytes) + jti, value = exp in decimal. Own
// revocations are written before the revoke is acknowledged; foreign ones before watchers hear them.

std::string revocation_key(const node_id& issuer, std::string_view token_id) {
  std::string key(reinterpret_cast<const char*>(issuer.key.data()), issuer.key.size());
  key.append(token_id);
  return key;
}

status persist_revocation(iam_actor* self, const node_id& issuer, std::string_view token_id,
                          int64_t expires_at_s) {
  auto& st = self->state;
  if (!st.storage) return ok_status();
  auto txn = st.storage->begin_write();
  if (!txn) return txn.err();
  auto put = txn->put(st.revocations_db, revocation_key(issuer, token_id), std::to_string(expires_at_s));
  if (!put.ok()) return put;
  return txn->commit();
}

bool live(iam_actor* self, int64_t expires_at_s, int64_t now) {
  return now < expires_at_s + self->state.protocol->configuration().clock_skew_s;
}

// Forgets expired foreign revocations and expired entries of the store.
void prune_revocations(iam_actor* self, int64_t now) {
  auto& st = self->state;
  for (auto it = st.foreign.begin(); it != st.foreign.end();)
    it = live(self, it->second, now) ? std::next(it) : st.foreign.erase(it);
  if (!st.storage) return;
  std::vector<std::string> doomed;
  if (auto reader = st.storage->begin_read()) {
    (void)reader->for_each(st.revocations_db, [&](std::string_view key, std::string_view value) {
      int64_t exp = 0;
      try {
        exp = std::stoll(std::string(value));
      } catch (...) {
      }
      if (!live(self, exp, now)) doomed.emplace_back(key);
      return true;
    });
  }
  if (doomed.empty()) return;
  auto txn = st.storage->begin_write();
  if (!txn) return;
  for (const auto& key : doomed) (void)txn->erase(st.revocations_db, key);
  (void)txn->commit();
}

// At start: the revocations the node had made or learned before it stopped.
void load_revocations(iam_actor* self, int64_t now) {
  auto& st = self->state;
  auto db = st.storage->open_database("iam_revocations");
  if (!db) {
    record(self, "storage_error", node_id{}, "revocations not persisted: " + db.err().describe());
    st.storage = nullptr;
    return;
  }
  st.revocations_db = *db;
  auto reader = st.storage->begin_read();
  if (!reader) return;
  size_t loaded = 0;
  (void)reader->for_each(st.revocations_db, [&](std::string_view key, std::string_view value) {
    if (key.size() <= 32) return true;
    int64_t exp = 0;
    try {
      exp = std::stoll(std::string(value));
    } catch (...) {
      return true;
    }
    if (!live(self, exp, now)) return true;
    const node_id issuer = node_id::from_bytes(reinterpret_cast<const uint8_t*>(key.data()));
    const std::string token_id(key.substr(32));
    if (issuer == st.ctx.self) (void)st.protocol->revoke(token_id, exp, now);
    else st.foreign[{issuer, token_id}] = exp;
    ++loaded;
    return true;
  });
  if (loaded) record(self, "revocations_loaded", node_id{}, std::to_string(loaded) + " live", static_cast<int64_t>(loaded));
}

// ---- spreading our revocations to the other nodes -------------------------------------------------

void send_notice(iam_actor* self, const node_id& to, revocation_notice notice) {
  auto& st = self->state;
  auto encoded = encode_message(st.ctx.self, 0, notice);
  if (!encoded) return;
  self->send(st.transport, send_atom::value, to, services::iam, std::move(*encoded));
  ++st.notices_sent;
}

// Every live revocation of our own tokens, in notices of at most revocation_notice_entries_max.
void send_all_revocations(iam_actor* self, const node_id& to) {
  auto& st = self->state;
  const int64_t now = now_s(self);
  revocation_notice notice;
  for (const auto& [token_id, expires_at_s] : st.protocol->revocations()) {
    if (!live(self, expires_at_s, now)) continue;
    notice.entries.push_back({token_id, expires_at_s});
    if (notice.entries.size() == revocation_notice_entries_max) {
      send_notice(self, to, std::move(notice));
      notice = revocation_notice{};
    }
  }
  if (!notice.entries.empty()) send_notice(self, to, std::move(notice));
}

// A node told us which of ITS tokens are revoked. Entries apply to tokens issued by `from` only
// (the transport authenticated it), so nobody can revoke another node's tokens.
void on_notice(iam_actor* self, const node_id& from, const revocation_notice& notice) {
  auto& st = self->state;
  if (notice.entries.size() > revocation_notice_entries_max) {
    ++st.malformed;
    record(self, "malformed", from, "revocation notice of " + std::to_string(notice.entries.size()) +
                                        " entries, at most " + std::to_string(revocation_notice_entries_max));
    return;
  }
  if (from == st.ctx.self) return;
  const int64_t now = now_s(self);
  for (const auto& e : notice.entries) {
    if (e.token_id.empty() || e.token_id.size() > revocation_token_id_chars_max) {
      ++st.malformed;
      record(self, "malformed", from, "revocation notice: token id empty or over " +
                                          std::to_string(revocation_token_id_chars_max) + " characters");
      continue;
    }
    if (!live(self, e.expires_at_s, now)) continue;
    auto key = std::make_pair(from, e.token_id);
    if (auto known = st.foreign.find(key); known != st.foreign.end()) {
      known->second = std::max(known->second, e.expires_at_s);
      continue;
    }
    if (st.foreign.size() >= st.protocol->configuration().revocations_max) prune_revocations(self, now);
    if (st.foreign.size() >= st.protocol->configuration().revocations_max) {
      record(self, "refused", from, "revocation notice: foreign revocation list full (" +
                                        std::to_string(st.foreign.size()) + ")");
      return;
    }
    if (auto problem = persist_revocation(self, from, e.token_id, e.expires_at_s); !problem.ok()) {
      ++st.persist_failures;
      record(self, "storage_error", from, "foreign revocation kept in memory only: " + problem.describe());
    }
    st.foreign.emplace(key, e.expires_at_s);
    ++st.foreign_learned;
    record(self, "revocation_learned", from, "jti=" + e.token_id, e.expires_at_s);
    tell_watchers(self, from, e.token_id, e.expires_at_s);
  }
}

void on_revoke(iam_actor* self, const node_id& from, uint64_t correlation,
               const revoke_request& request) {
  auto& st = self->state;
  revoke_reply answer;
  auto refuse = [&](uint16_t status, std::string reason) {
    answer.status = status;
    answer.reason = std::move(reason);
    record(self, "refused", from, "revoke: " + answer.reason);
    reply(self, from, correlation, answer);
  };
  if (request.token.size() > session_token_chars_max)
    return refuse(status_too_large, "too_large: token of " + std::to_string(request.token.size()) +
                                        " characters, at most " +
                                        std::to_string(session_token_chars_max));
  // Only a token this node issued, authentic (anyone holding one may revoke it, e.g. at logout).
  auto authentic = authenticate_session_token(request.token, st.protocol->key());
  if (!authentic) return refuse(wire_status(authentic.kind()), authentic.err().describe());
  const int64_t now = now_s(self);
  const bool live = now < authentic->expires_at_s + st.protocol->configuration().clock_skew_s;
  if (!live) {
    answer.reason = "token already expired at " + std::to_string(authentic->expires_at_s) +
                    ": nothing to revoke";
    reply(self, from, correlation, answer);
    return;
  }
  const bool already = st.protocol->is_revoked(authentic->token_id);
  // Durable before acknowledged: a restart must not bring a revoked token back to life.
  if (auto problem = persist_revocation(self, st.ctx.self, authentic->token_id, authentic->expires_at_s);
      !problem.ok()) {
    ++st.persist_failures;
    return refuse(status_unavailable, "storage_error: revocation not saved, retry: " + problem.describe());
  }
  if (auto problem = st.protocol->revoke(authentic->token_id, authentic->expires_at_s, now))
    return refuse(problem.code == errc::too_large ? status_unavailable : status_bad_request,
                  problem.describe());
  if (already) {
    answer.reason = "already revoked";
  } else {
    record(self, "revoked", from, "jti=" + authentic->token_id + " holder=" + authentic->subject,
           authentic->expires_at_s);
    tell_watchers(self, st.ctx.self, authentic->token_id, authentic->expires_at_s);
    st.sessions.erase(authentic->token_id);
    for (const auto& w : st.session_watchers)
      self->send(w, iam_revoked_atom::value, st.ctx.self, authentic->token_id, authentic->expires_at_s);
    // Routers of other nodes accept our tokens too (a Raft group trusts its members' IAMs).
    for (const auto& node : st.nodes)
      send_notice(self, node, revocation_notice{{{authentic->token_id, authentic->expires_at_s}}});
  }
  reply(self, from, correlation, answer);
}

// A request whose payload does not decode still gets its one reply: 400 in the reply type.
template <class Reply>
void bad_request(iam_actor* self, const node_id& from, uint64_t correlation,
                 const std::string& problem) {
  Reply answer;
  answer.status = status_bad_request;
  answer.reason = "malformed: " + problem;
  reply(self, from, correlation, answer);
}

void on_envelope(iam_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope_from(from, data);
  if (!env) {
    ++st.malformed;
    record(self, "malformed", from, env.err().describe());
    return;
  }
  const uint64_t correlation = env->correlation;
  std::string problem;
  switch (env->type) {
    case challenge_request::type_id:
      ++st.requests;
      problem = decode_then<challenge_request>(
          *env, [&](challenge_request m) { on_challenge(self, from, correlation, m); });
      if (!problem.empty()) bad_request<challenge_reply>(self, from, correlation, problem);
      break;
    case answer_message::type_id:
      ++st.requests;
      problem = decode_then<answer_message>(
          *env, [&](answer_message m) { on_answer(self, from, correlation, m); });
      if (!problem.empty()) bad_request<session_reply>(self, from, correlation, problem);
      break;
    case revoke_request::type_id:
      ++st.requests;
      problem = decode_then<revoke_request>(
          *env, [&](revoke_request m) { on_revoke(self, from, correlation, m); });
      if (!problem.empty()) bad_request<revoke_reply>(self, from, correlation, problem);
      break;
    case revocation_notice::type_id:
      problem = decode_then<revocation_notice>(*env, [&](revocation_notice m) { on_notice(self, from, m); });
      break;
    default: problem = "unexpected iam message type " + std::to_string(env->type);
  }
  if (problem.empty()) return;
  ++st.malformed;
  record(self, "malformed", from, problem);
}

// Adds `watcher` to `list` and monitors it (the down handler forgets it). False if it is invalid
// or already there: nothing to replay to it then.
bool add_watcher(iam_actor* self, std::vector<caf::actor>& list, const caf::actor& watcher) {
  if (!watcher || std::find(list.begin(), list.end(), watcher) != list.end()) return false;
  list.push_back(watcher);
  self->monitor(watcher);
  return true;
}

caf::behavior run(iam_actor* self, caf::actor transport, actor_context context) {
  auto& st = self->state;
  st.ctx = std::move(context);
  st.transport = std::move(transport);
  assert(st.ctx.signer && st.ctx.signer->public_key == st.ctx.self);
  assert(st.ctx.random);
  assert(validate(st.ctx.iam).ok());
  auto rules = st.ctx.scopes.empty() ? default_scope_rules() : st.ctx.scopes;
  st.protocol = std::make_unique<machine>(st.ctx.iam, jose::signer_for(*st.ctx.signer),
                                          scope_table(std::move(rules)), st.ctx.random);
  st.storage = st.ctx.storage;
  if (st.storage) load_revocations(self, now_s(self));
  self->set_default_handler(ignore_unexpected);
  self->set_down_handler([=](caf::down_msg& msg) {
    for (auto* w : {&self->state.watchers, &self->state.session_watchers})
      w->erase(std::remove_if(w->begin(), w->end(),
                              [&](const caf::actor& a) { return a.address() == msg.source; }),
               w->end());
  });
  self->send(st.transport, register_atom::value, services::iam, caf::actor{self});
  self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
  return {
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::iam) on_envelope(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      if (address.empty()) return;  // a client: it has no router to tell
      if (self->state.nodes.insert(peer).second) send_all_revocations(self, peer);
    },
    [=](peer_down_atom, const node_id& peer) { self->state.nodes.erase(peer); },
    [=](dial_failed_atom, const std::string&, const std::string&) {},
    [=](tick_atom) {
      auto& s = self->state;
      s.protocol->tick(now_s(self));
      s.window.clear();
      if (++s.ticks % 60 == 0) {
        const int64_t now = now_s(self);
        prune_revocations(self, now);
        for (auto it = s.sessions.begin(); it != s.sessions.end();)
          it = now < it->second.expires_at_s ? std::next(it) : s.sessions.erase(it);
      }
      self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
    },
    [=](iam_watch_atom, const caf::actor& watcher) {
      auto& s = self->state;
      if (!add_watcher(self, s.watchers, watcher)) return;
      for (const auto& [token_id, expires_at_s] : s.protocol->revocations())
        self->send(watcher, iam_revoked_atom::value, s.ctx.self, token_id, expires_at_s);
      for (const auto& [key, expires_at_s] : s.foreign)
        self->send(watcher, iam_revoked_atom::value, key.first, key.second, expires_at_s);
    },
    [=](iam_watch_sessions_atom, const caf::actor& watcher) {
      auto& s = self->state;
      if (!add_watcher(self, s.session_watchers, watcher)) return;
      const int64_t now = now_s(self);
      for (const auto& [token_id, session] : s.sessions)
        if (now < session.expires_at_s)
          tell_session(self, watcher, session.holder, token_id, session.scope, session.expires_at_s);
    },
    [=](iam_verify_atom, const std::string& token, const std::string& audience,
        const std::string& scope) -> caf::result<uint16_t, std::string, std::string, std::string> {
      auto& s = self->state;
      auto checked = s.protocol->verify(token, audience, scope, now_s(self));
      if (!checked)
        return {static_cast<uint16_t>(cmtp_status(checked.kind())), checked.err().describe(),
                std::string(), std::string()};
      return {status_ok, std::string(), checked->subject, join_scope(checked->scopes)};
    },
    [=](iam_challenge_atom, const std::string& audience) -> bytes {
      auto answer = make_challenge(self, self->state.ctx.self, challenge_request{audience});
      auto packed = pack_value(answer);
      return packed ? std::move(*packed) : bytes{};
    },
    [=](iam_redeem_atom, const bytes& packed_answer) -> bytes {
      session_reply answer;
      auto message = unpack_value<answer_message>(packed_answer.data(), packed_answer.size());
      if (!message) {
        answer.status = status_bad_request;
        answer.reason = "malformed: " + message.err().describe();
      } else {
        answer = make_session(self, self->state.ctx.self, *message);
      }
      auto packed = pack_value(answer);
      return packed ? std::move(*packed) : bytes{};
    },
    [=](shutdown_atom) { return caf::atom("ok"); },
    [=](status_atom) {
      auto& s = self->state;
      const auto& stats = s.protocol->statistics();
      uint64_t refusals = 0;
      for (auto n : stats.refusals) refusals += n;
      return "iam challenges=" + std::to_string(stats.challenges_issued) +
             " sessions=" + std::to_string(stats.sessions_issued) +
             " verified=" + std::to_string(stats.tokens_verified) +
             " refused=" + std::to_string(refusals) +
             " revoked=" + std::to_string(s.protocol->revocation_count()) +
             " foreign_revoked=" + std::to_string(s.foreign.size()) +
             " notices_sent=" + std::to_string(s.notices_sent) +
             " outstanding=" + std::to_string(s.protocol->outstanding_challenges()) +
             " watchers=" + std::to_string(s.watchers.size()) +
             " rate_limited=" + std::to_string(s.rate_limited) +
             " malformed=" + std::to_string(s.malformed);
    },
  };
}

}  // namespace

caf::actor spawn_iam_actor(caf::actor_system& system, const caf::actor& transport,
                           actor_context context) {
  return system.spawn(run, transport, std::move(context));
}

}  // namespace cmesh::iam
