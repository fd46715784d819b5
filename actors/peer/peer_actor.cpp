#include "actors/peer/peer_actor.hpp"

#include <chrono>
#include <map>

#include <caf/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/store/store.hpp"

namespace cmesh::peer {

namespace {

constexpr std::string_view service_name = "peer";

struct peer_actor_state {
  static inline const char* name = "cmesh.peer";
  std::unique_ptr<machine> protocol;
  actor_context context;
  caf::actor transport;
  effects pending;
  store::database peers_db = 0;
  bool storage_ok = false;
  int64_t last_persist_ms = 0;
  uint64_t malformed = 0;
  bool stopped = false;  // after shutdown the service only answers status
  std::map<std::string, std::string> persisted;  // rows as last written: key bytes -> address
};

using peer_actor_type = caf::stateful_actor<peer_actor_state>;

int64_t now_ms(peer_actor_type* self) {
  using namespace std::chrono;
  return duration_cast<milliseconds>(self->clock().now().time_since_epoch()).count();
}

void report(peer_actor_type* self, std::string_view kind, const node_id& peer,
            std::string_view detail, int64_t value = 0) {
  auto& st = self->state;
  if (st.context.events)
    st.context.events->record({st.context.self, service_name, kind, peer, detail, value});
}

void persist(peer_actor_type* self, int64_t now) {
  auto& st = self->state;
  if (!st.storage_ok || !st.protocol->dirty()) return;
  if (now - st.last_persist_ms < st.protocol->configuration().persist_interval_ms) return;
  st.last_persist_ms = now;
  // Write only what changed since the last persist (rows are key -> address), in one
  // transaction, then make it durable.
  std::map<std::string, std::string> current;
  for (const auto& record : st.protocol->snapshot())
    current.emplace(std::string(record.key.begin(), record.key.end()), record.address);
  auto txn = st.context.storage->begin_write();
  if (!txn) {
    report(self, "storage_error", node_id{}, txn.err().describe());
    return;
  }
  status s;
  for (const auto& [key, address] : st.persisted) {
    if (!s.ok()) break;
    if (current.count(key) == 0) s = txn->erase(st.peers_db, key);
  }
  for (const auto& [key, address] : current) {
    if (!s.ok()) break;
    auto old = st.persisted.find(key);
    if (old == st.persisted.end() || old->second != address) s = txn->put(st.peers_db, key, address);
  }
  if (s.ok()) s = txn->commit();
  if (s.ok()) s = st.context.storage->sync();
  if (!s.ok()) {
    report(self, "storage_error", node_id{}, s.describe());
    return;
  }
  st.persisted = std::move(current);
  st.protocol->clear_dirty();
}

template <class T>
void send_message(peer_actor_type* self, const node_id& to, const T& message) {
  auto& st = self->state;
  auto encoded = encode_message(st.context.self, 0, message);
  if (!encoded) {
    report(self, "encode_error", to, encoded.err().describe());
    return;
  }
  self->send(st.transport, send_atom::value, to, services::peer, std::move(*encoded));
}

// Carry out what the machine asked for, in order: introductions before the sends they enable.
void execute(peer_actor_type* self) {
  auto& st = self->state;
  auto& out = st.pending;
  for (const auto& intro : out.introductions)
    self->send(st.transport, introduce_atom::value, intro.peer, intro.address);
  for (const auto& dial : out.dials)
    self->send(st.transport, dial_atom::value, dial.address, dial.pinned);
  for (const auto& send : out.sends)
    std::visit([&](const auto& message) { send_message(self, send.to, message); }, send.message);
  for (const auto& e : out.events) report(self, event_name(e.kind), e.peer, e.detail, e.value);
  out.clear();
}

std::vector<peer_record> load_remembered(peer_actor_type* self) {
  auto& st = self->state;
  std::vector<peer_record> remembered;
  if (!st.context.storage) return remembered;
  auto db = st.context.storage->open_database("peers");
  if (!db) {
    report(self, "storage_error", node_id{}, db.err().describe());
    return remembered;
  }
  st.peers_db = *db;
  st.storage_ok = true;
  auto reader = st.context.storage->begin_read();
  if (!reader) return remembered;
  (void)reader->for_each(st.peers_db, [&](std::string_view key, std::string_view value) {
    st.persisted.emplace(std::string(key), std::string(value));
    if (key.size() == 32)
      remembered.push_back({bytes(key.begin(), key.end()), std::string(value)});
    return true;
  });
  return remembered;
}

void on_deliver(peer_actor_type* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto fail = [&](const error& e) {
    ++st.malformed;
    report(self, "malformed", from, e.describe());
  };
  auto env = decode_envelope_from(from, data);
  if (!env) return fail(env.err());
  wire_message message;
  auto decode = [&](auto tag) -> bool {
    using T = decltype(tag);
    auto decoded = decode_payload<T>(*env);
    if (!decoded) {
      fail(decoded.err());
      return false;
    }
    message = std::move(*decoded);
    return true;
  };
  bool ok = false;
  switch (env->type) {
    case ping::type_id: ok = decode(ping{}); break;
    case pong::type_id: ok = decode(pong{}); break;
    case peer_list::type_id: ok = decode(peer_list{}); break;
    case goodbye::type_id: ok = decode(goodbye{}); break;
    default: fail({errc::unknown_type, "peer message type " + std::to_string(env->type)});
  }
  if (!ok) return;
  st.protocol->on_message(now_ms(self), from, message, st.pending);
  execute(self);
}

caf::behavior peer_actor(peer_actor_type* self, caf::actor transport, actor_context context) {
  auto& st = self->state;
  st.context = std::move(context);
  st.transport = std::move(transport);
  st.protocol = std::make_unique<machine>(st.context.self, st.context.listen_address,
                                          st.context.seeds, st.context.peer_config,
                                          st.context.rng_seed);
  self->set_default_handler(ignore_unexpected);
  self->send(st.transport, register_atom::value, services::peer, caf::actor{self});
  auto remembered = load_remembered(self);
  auto tick = std::chrono::milliseconds(st.context.peer_config.tick_ms);
  st.protocol->start(now_ms(self), remembered, st.pending);
  execute(self);
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](deliver_atom, const node_id& from, uint16_t, const bytes& data) {
      if (self->state.stopped) return;
      on_deliver(self, from, data);
    },
    [=](peer_up_atom, const node_id& peer, const std::string& address) {
      if (self->state.stopped) return;
      self->state.protocol->on_peer_up(now_ms(self), peer, address, self->state.pending);
      execute(self);
    },
    [=](peer_down_atom, const node_id& peer) {
      self->state.protocol->on_peer_down(now_ms(self), peer, self->state.pending);
      execute(self);
    },
    [=](dial_failed_atom, const std::string& address, const std::string& reason) {
      if (self->state.stopped) return;
      self->state.protocol->on_dial_failed(now_ms(self), address, reason, self->state.pending);
      execute(self);
    },
    [=](tick_atom) {
      if (self->state.stopped) return;
      auto now = now_ms(self);
      self->state.protocol->tick(now, self->state.pending);
      execute(self);
      persist(self, now);
      self->delayed_send(self, tick, tick_atom::value);
    },
    [=](status_atom) {
      const auto& peers = self->state.protocol->peers();
      size_t confirmed = 0;
      uint64_t pongs = 0;
      for (const auto& [id, state] : peers) {
        confirmed += state.confirmed ? 1 : 0;
        pongs += state.pongs;
      }
      return "peers=" + std::to_string(peers.size()) + " confirmed=" +
             std::to_string(confirmed) + " pongs=" + std::to_string(pongs);
    },
    [=](shutdown_atom) {
      auto& s = self->state;
      s.stopped = true;
      s.protocol->shutdown(s.pending);
      execute(self);
      s.last_persist_ms = INT64_MIN / 2;  // persist now regardless of the interval
      persist(self, now_ms(self));
      return caf::atom("done");
    },
  };
}

}  // namespace

caf::actor spawn_peer_actor(caf::actor_system& system, const caf::actor& transport,
                            actor_context context) {
  return system.spawn(peer_actor, transport, std::move(context));
}

}  // namespace cmesh::peer
