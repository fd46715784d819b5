// The transport manager: the actor services hold as `transport` in real mode.
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <deque>
#include <map>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "actors/ignore_unexpected.hpp"
#include "messages/seam.hpp"
#include "runtime/core/address.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/connection.hpp"
#include "runtime/net/net_atoms.hpp"
#include "runtime/net/transport.hpp"

namespace cmesh {

namespace {

struct route {
  caf::actor connection;
  bool dialed_by_me = false;
};

struct dial_state {
  bool in_progress = false;  // connecting, or waiting out a backoff
  uint32_t attempts = 0;
  node_id pinned;
};

struct pending_queue {
  std::deque<bytes> frames;
  size_t queued_bytes = 0;
  uint64_t dropped = 0;
};

struct manager_state {
  static inline const char* name = "cmesh.transport";
  transport_config config;
  std::string advertised;
  std::vector<std::pair<uint16_t, caf::actor>> services;
  std::map<node_id, route> routes;
  std::map<node_id, std::string> address_book;
  std::map<std::string, dial_state> dials;
  std::map<node_id, pending_queue> pending;
  std::map<caf::actor_addr, node_id> connection_peer;
  rng jitter;
  std::shared_ptr<std::atomic<size_t>> open_connections;
  bool stopping = false;  // after shutdown: no new dials or connections, sends dropped
};

using manager_actor = caf::stateful_actor<manager_state>;

void report(manager_actor* self, std::string_view kind, const node_id& peer, std::string_view detail) {
  auto& st = self->state;
  if (st.config.events) st.config.events->record({st.config.self, "transport", kind, peer, detail, 0});
}

template <class... Ts>
void notify_services(manager_actor* self, const Ts&... xs) {
  for (const auto& [id, service] : self->state.services) self->send(service, xs...);
}

net::connection_params connection_params_for(manager_actor* self, bool initiator) {
  auto& st = self->state;
  net::connection_params p;
  p.initiator = initiator;
  p.self = st.config.self;
  p.secret_key = st.config.secret_key;
  p.advertised_address = st.advertised;
  p.events = st.config.events;
  p.open_connections = st.open_connections;
  return p;
}

// Backoff before attempt `attempts` (>= 1): min * 2^(attempts-1), capped, +-25% seeded jitter.
std::chrono::milliseconds backoff(manager_actor* self, uint32_t attempts) {
  uint64_t base = limits::dial_backoff_ms_min;
  for (uint32_t i = 1; i < attempts && base < limits::dial_backoff_ms_max; ++i) base *= 2;
  base = std::min<uint64_t>(base, limits::dial_backoff_ms_max);
  uint64_t spread = base / 2;
  uint64_t jittered = base - base / 4 + (spread ? self->state.jitter.below(spread + 1) : 0);
  return std::chrono::milliseconds(jittered);
}

void connect(manager_actor* self, const std::string& address) {
  auto& st = self->state;
  auto parsed = parse_net_address(address);
  if (!parsed) {
    st.dials.erase(address);
    notify_services(self, dial_failed_atom::value, address, parsed.err().message);
    return;
  }
  auto params = connection_params_for(self, true);
  auto& dial = st.dials[address];
  if (!dial.pinned.is_zero()) params.expected_peer = dial.pinned;
  params.dialed_address = address;
  caf::actor manager = caf::actor_cast<caf::actor>(self);
  // connect() blocks, so it runs in a short-lived detached actor, never on a scheduler thread.
  self->spawn<caf::detached>([=](caf::event_based_actor* dialer) {
    auto connection = dialer->system().middleman().spawn_client(
        net::connection_broker, parsed->host, parsed->port, manager, params);
    std::string failure = connection ? std::string() : dialer->system().render(connection.error());
    dialer->send(manager, net::dial_done_atom::value, address, failure);
    dialer->quit();
  });
}

void start_dial(manager_actor* self, const std::string& address, const node_id& pinned) {
  if (self->state.stopping) return;
  auto& dial = self->state.dials[address];
  if (!pinned.is_zero()) dial.pinned = pinned;
  if (dial.in_progress) return;
  dial.in_progress = true;
  connect(self, address);
}

void drop_pending_for_address(manager_actor* self, const std::string& address) {
  auto& st = self->state;
  for (auto it = st.pending.begin(); it != st.pending.end();) {
    auto known = st.address_book.find(it->first);
    if (known != st.address_book.end() && known->second == address) {
      report(self, "queue_dropped", it->first,
             std::to_string(it->second.frames.size()) + " frames: peer unreachable at " + address);
      it = st.pending.erase(it);
    } else {
      ++it;
    }
  }
}

void dial_failed(manager_actor* self, const std::string& address, const std::string& reason,
                 bool retryable) {
  auto& st = self->state;
  auto& dial = st.dials[address];
  ++dial.attempts;
  if (retryable && dial.attempts < limits::dial_attempts_max) {
    self->delayed_send(self, backoff(self, dial.attempts), net::redial_atom::value, address);
    return;
  }
  report(self, "dial_failed", dial.pinned, address + ": " + reason + " (after " +
                                               std::to_string(dial.attempts) + " attempts)");
  st.dials.erase(address);
  drop_pending_for_address(self, address);
  notify_services(self, dial_failed_atom::value, address, reason);
}

void enqueue(manager_actor* self, const node_id& to, bytes envelope) {
  auto& queue = self->state.pending[to];
  if (queue.frames.size() >= limits::peer_queue_frames_max ||
      queue.queued_bytes + envelope.size() > limits::peer_queue_bytes_max) {
    if (queue.dropped++ % 1024 == 0)
      report(self, "queue_full", to, "peer queue full, dropping (tail drop); dropped so far: " +
                                         std::to_string(queue.dropped));
    return;
  }
  queue.queued_bytes += envelope.size();
  queue.frames.push_back(std::move(envelope));
}

void on_send(manager_actor* self, const node_id& to, bytes& envelope) {
  auto& st = self->state;
  if (to == st.config.self || st.stopping) return;
  if (auto it = st.routes.find(to); it != st.routes.end()) {
    self->send(it->second.connection, net::frame_atom::value, std::move(envelope));
    return;
  }
  auto known = st.address_book.find(to);
  if (known == st.address_book.end()) {
    report(self, "no_route", to, "no connection and no known address; message dropped");
    return;
  }
  enqueue(self, to, std::move(envelope));
  start_dial(self, known->second, to);
}

// Exactly one connection per peer pair. Two connections dialed from the same side: the dialer
// replaced its connection (a client that reconnects at once, a node that redialed after a loss we
// have not noticed yet), so the new one wins; keeping the old one would close the live one and
// keep the dying one. Dialed from both sides at once: keep the one dialed by the smaller key; both
// ends apply the same rule, so they close the same connection.
bool prefer_new(manager_actor* self, const node_id& peer, const route& existing, bool new_dialed_by_me) {
  if (existing.dialed_by_me == new_dialed_by_me) return true;
  const auto& me = self->state.config.self;
  bool i_am_smaller = me < peer;
  bool new_is_smaller_dialer = new_dialed_by_me == i_am_smaller;
  bool old_is_smaller_dialer = existing.dialed_by_me == i_am_smaller;
  return new_is_smaller_dialer && !old_is_smaller_dialer;
}

void on_connection_up(manager_actor* self, const node_id& peer, const std::string& peer_address,
                      const caf::actor& connection, bool dialed_by_me, const std::string& dialed) {
  auto& st = self->state;
  if (!dialed.empty()) st.dials.erase(dialed);
  if (st.stopping) {
    self->send(connection, net::close_atom::value);
    return;
  }
  if (auto it = st.routes.find(peer); it != st.routes.end()) {
    if (!prefer_new(self, peer, it->second, dialed_by_me)) {
      self->send(connection, net::close_atom::value);
      return;
    }
    self->send(it->second.connection, net::close_atom::value);
  }
  self->monitor(connection);
  st.routes[peer] = {connection, dialed_by_me};
  st.connection_peer[connection.address()] = peer;
  if (!peer_address.empty()) st.address_book[peer] = peer_address;
  if (auto queued = st.pending.find(peer); queued != st.pending.end()) {
    for (auto& frame : queued->second.frames)
      self->send(connection, net::frame_atom::value, std::move(frame));
    st.pending.erase(queued);
  }
  report(self, "connected", peer, (dialed_by_me ? "dialed " : "accepted ") + peer_address);
  notify_services(self, peer_up_atom::value, peer, peer_address);
}

void on_connection_down(manager_actor* self, const caf::actor_addr& source) {
  auto& st = self->state;
  auto it = st.connection_peer.find(source);
  if (it == st.connection_peer.end()) return;
  auto peer = it->second;
  st.connection_peer.erase(it);
  auto route_it = st.routes.find(peer);
  if (route_it == st.routes.end() || route_it->second.connection.address() != source) return;
  st.routes.erase(route_it);
  report(self, "disconnected", peer, "");
  notify_services(self, peer_down_atom::value, peer);
  if (st.pending.count(peer) != 0)
    if (auto known = st.address_book.find(peer); known != st.address_book.end())
      start_dial(self, known->second, peer);
}

caf::behavior transport_manager(manager_actor* self, transport_config config, std::string advertised,
                                std::shared_ptr<std::atomic<size_t>> open_connections) {
  auto& st = self->state;
  st.open_connections = std::move(open_connections);
  st.config = std::move(config);
  st.advertised = std::move(advertised);
  st.jitter.reseed(st.config.jitter_seed);
  self->set_down_handler([=](caf::down_msg& msg) { on_connection_down(self, msg.source); });
  // The manager outlives everything but shutdown: an error message (a service answering a
  // notification with an error) is reported, never fatal (CAF's default would quit, taking the
  // listener and every connection with it). Unknown messages are dropped without an answer.
  self->set_error_handler([=](caf::error& e) {
    report(self, "error_message", node_id{}, self->system().render(e));
  });
  self->set_default_handler(ignore_unexpected);
  return {
    [=](register_atom, uint16_t service, const caf::actor& actor) {
      auto& st = self->state;
      bool replaced = false;
      for (auto& entry : st.services)
        if (entry.first == service) {
          entry.second = actor;
          replaced = true;
        }
      if (!replaced) st.services.emplace_back(service, actor);
      // A service that registers after some connections came up would never hear their
      // peer_up: tell it now about every peer connected at this moment.
      for (const auto& [peer, route] : st.routes) {
        auto known = st.address_book.find(peer);
        self->send(actor, peer_up_atom::value, peer, known == st.address_book.end() ? std::string() : known->second);
      }
    },
    [=](send_atom, const node_id& to, uint16_t, bytes& envelope) { on_send(self, to, envelope); },
    [=](dial_atom, const std::string& address, const node_id& pinned) {
      auto& st = self->state;
      if (address == st.advertised) return;  // never dial ourselves
      // Already connected to the node listening there: tell the asker at once. A service spawned
      // after the connection came up missed its peer_up and would otherwise wait forever.
      for (const auto& [peer, known] : st.address_book)
        if (known == address && st.routes.count(peer) != 0 && (pinned.is_zero() || pinned == peer)) {
          if (auto asker = caf::actor_cast<caf::actor>(self->current_sender()))
            self->send(asker, peer_up_atom::value, peer, address);
          return;
        }
      start_dial(self, address, pinned);
    },
    [=](introduce_atom, const node_id& peer, const std::string& address) {
      if (peer != self->state.config.self && !address.empty() &&
          address.size() <= limits::address_chars_max)
        self->state.address_book[peer] = address;
    },
    [=](deliver_atom, const node_id& from, uint16_t service, bytes& envelope) {
      for (const auto& [id, actor] : self->state.services)
        if (id == service) {
          self->send(actor, deliver_atom::value, from, service, std::move(envelope));
          return;
        }
      report(self, "unknown_service", from, "service " + std::to_string(service));
    },
    [=](net::conn_up_atom, const node_id& peer, const std::string& peer_address,
        const caf::actor& connection, bool dialed_by_me, const std::string& dialed) {
      on_connection_up(self, peer, peer_address, connection, dialed_by_me, dialed);
    },
    [=](net::conn_fail_atom, const std::string& address, const std::string& reason, bool retryable) {
      dial_failed(self, address, reason, retryable);
    },
    [=](net::dial_done_atom, const std::string& address, const std::string& failure) {
      if (!failure.empty()) dial_failed(self, address, failure, true);
    },
    [=](net::redial_atom, const std::string& address) {
      if (self->state.dials.count(address) && !self->state.stopping) connect(self, address);
    },
    [=](shutdown_atom) {
      self->state.stopping = true;
      self->state.pending.clear();
      for (const auto& [peer, r] : self->state.routes) self->send(r.connection, net::close_atom::value);
      return caf::atom("done");
    },
    [=](status_atom) {
      return "connections=" + std::to_string(self->state.routes.size()) +
             " pending_peers=" + std::to_string(self->state.pending.size());
    },
  };
}

caf::behavior acceptor(caf::io::broker* self, caf::io::doorman_ptr doorman, caf::actor manager,
                       net::connection_params params) {
  self->add_doorman(std::move(doorman));
  self->monitor(manager);  // stop listening when the manager goes away
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  return {
    [=](const caf::io::new_connection_msg& msg) {
      // Forked connections own their sockets, so count them through the shared counter.
      if (params.open_connections && *params.open_connections >= limits::connections_max) {
        self->close(msg.handle);
        if (params.events)
          params.events->record({params.self, "transport", "refused", node_id{},
                                 "too many connections (limits::connections_max)", 0});
        return;
      }
      self->fork(net::connection_broker, msg.handle, manager, params);
    },
    [=](shutdown_atom) { self->quit(); },
  };
}

std::string bind_failure(const std::string& host, uint16_t port) {
  // CAF's bind error is generic; bind once more ourselves so the operator gets the OS's reason.
  std::string where = "cannot listen on " + net_address{host, port}.to_string();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    return where + ": " + gai_strerror(rc);
  std::string reason = "unknown error";
  int fd = ::socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  int on = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (fd < 0) reason = std::strerror(errno);
  else if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0) reason = std::strerror(errno);
  if (fd >= 0) ::close(fd);
  freeaddrinfo(found);
  return where + ": " + reason;
}

}  // namespace

caf::actor_system_config& configure_for_transport(caf::actor_system_config& config, size_t dedicated_threads) {
  config.load<caf::io::middleman>();
  config.set("logger.file-verbosity", caf::atom("quiet"));
  config.set("logger.console-verbosity", caf::atom("quiet"));
  config.set("middleman.heartbeat-interval", caf::timespan{0});
  return tune_scheduler(config, dedicated_threads);
}

caf::actor_system_config& tune_scheduler(caf::actor_system_config& config, size_t dedicated_threads) {
  if (dedicated_threads > 0) {
    const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
    config.set("scheduler.max-threads", cores > dedicated_threads ? cores - dedicated_threads : size_t{1});
  }
  config.set("work-stealing.moderate-steal-interval", size_t{1});
  config.set("work-stealing.moderate-sleep-duration", caf::timespan{std::chrono::microseconds(10)});
  return config;
}

transport_config loopback_transport(const identity& id, event_sink* events) {
  transport_config t;
  t.self = id.public_key;
  t.secret_key = id.secret_key;
  t.listen_host = "127.0.0.1";
  t.listen_port = 0;
  t.events = events;
  t.jitter_seed = randombytes_random();
  return t;
}

transport_config client_transport(const identity& id, event_sink* events) {
  auto t = loopback_transport(id, events);
  t.advertise = false;
  return t;
}

result<std::pair<caf::actor, uint16_t>> start_transport(caf::actor_system& system,
                                                       transport_config config) {
  auto& middleman = system.middleman();
  // SO_REUSEADDR: a node restarted right after a crash must get its port back although old
  // connections linger in TIME_WAIT; a port held by a live listener is still refused.
  auto doorman = middleman.backend().new_tcp_doorman(config.listen_port, config.listen_host.c_str(), true);
  if (!doorman) return error{errc::io_error, bind_failure(config.listen_host, config.listen_port)};
  uint16_t port = (*doorman)->port();
  std::string advertised = !config.advertise                  ? std::string()
                           : config.advertised_address.empty() ? net_address{config.listen_host, port}.to_string()
                                                               : config.advertised_address;
  auto params = net::connection_params{};
  params.initiator = false;
  params.self = config.self;
  params.secret_key = config.secret_key;
  params.advertised_address = advertised;
  params.events = config.events;
  params.open_connections = std::make_shared<std::atomic<size_t>>(0);
  auto manager = system.spawn(transport_manager, config, advertised, params.open_connections);
  middleman.spawn_broker(acceptor, std::move(*doorman), manager, params);
  return std::make_pair(manager, port);
}

}  // namespace cmesh
