// The real transport: TCP between node processes through CAF io brokers, with the authenticated
// handshake and AEAD frames of docs/wire-protocol.md. Services talk to it through the seam in
// messages/seam.hpp, exactly as they talk to the simulated network.
//
// Actors (all in runtime/net):
//   transport manager  routes, address book, dials with backoff, bounded per-peer queues,
//                      service registry; the `transport` handle services receive
//   acceptor broker    owns the listening socket; forks one connection broker per accept
//   connection broker  one TCP connection: handshake, then seal/open frames; closes itself on
//                      any malformed, unauthenticated, replayed or oversized input
//   dialer             a short-lived detached actor per connection attempt (connect blocks)
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/crypto/identity.hpp"

namespace caf {
class actor;
class actor_system;
class actor_system_config;
}  // namespace caf

namespace cmesh {

class event_sink;

struct transport_config {
  node_id self;
  std::array<uint8_t, 64> secret_key{};  // ed25519 secret key of the node identity
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;               // 0 = let the OS choose (see transport_started)
  std::string advertised_address;         // what peers are told; empty = listen host:port
  // false: peers are told no address at all (a client: nobody dials it back, and nodes tell it
  // apart from a node by that; a node that redialed a client's ephemeral listener would race
  // the client's own next connection).
  bool advertise = true;
  event_sink* events = nullptr;           // outlives the transport
  uint64_t jitter_seed = 0;               // backoff jitter
};

// Binds the listening socket (synchronously, so a port in use is reported here) and spawns the
// manager and acceptor. Returns the manager handle and the bound port.
result<std::pair<caf::actor, uint16_t>> start_transport(caf::actor_system& system,
                                                       transport_config config);

// The actor-system settings of every process that runs a real transport: CAF's io middleman
// loaded, CAF's own logging quiet, BASP heartbeats off (cmesh peers ping each other), and the
// scheduler as tune_scheduler sets it. Returns `config`, so it can be passed straight to
// caf::actor_system's constructor.
caf::actor_system_config& configure_for_transport(caf::actor_system_config& config,
                                                 size_t dedicated_threads = 0);

// The work-stealing scheduler of a real-mode process: an idle worker polls every 10 us in its
// moderate phase (CAF's default: 50 us) and steals at every poll (default: every fifth, so 250 us
// apart); after 5 ms idle it sleeps as CAF's default does. A message from one actor to another
// puts the receiver on the sender's worker; with few cores, the other worker should pick it up
// at once rather than leave the two actors to run in turn (docs/benchmarks.md, router).
// `dedicated_threads`: threads of the process's own that stay busy (a router with its own thread):
// the scheduler gets that many workers fewer than the machine has cores, at least one.
caf::actor_system_config& tune_scheduler(caf::actor_system_config& config, size_t dedicated_threads = 0);

// A client's or benchmark's transport: `id`'s keys, listening on 127.0.0.1 at any free port
// (the transport always listens), backoff jitter from libsodium. Real mode only.
transport_config loopback_transport(const identity& id, event_sink* events = nullptr);

// A command-line client's transport: loopback_transport that advertises no address.
transport_config client_transport(const identity& id, event_sink* events = nullptr);

}  // namespace cmesh
