#include "runtime/node/node_services.hpp"

#include <caf/all.hpp>

#include "actors/aggregator/aggregator_actor.hpp"
#include "actors/bench/bench_actor.hpp"
#include "actors/events/events_actor.hpp"
#include "actors/gossip/gossip_actor.hpp"
#include "actors/iam/iam_actor.hpp"
#include "actors/kv/kv_actor.hpp"
#include "actors/peer/peer_actor.hpp"
#include "actors/reputation/reputation_actor.hpp"
#include "actors/router/router_actor.hpp"
#include "actors/rmb/rmb_actor.hpp"
#include "actors/swim/swim_actor.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh {

std::vector<caf::actor> spawn_node_services(caf::actor_system& system, const caf::actor& transport,
                                            const node_setup& setup) {
  std::vector<caf::actor> services;
  caf::actor membership;  // the swim actor, when there is one
  caf::actor replica;     // the kv replica, when there is one
  // The kv and events client protocols serve only keys holding a session (docs/iam.md §13).
  const bool gate_clients = setup.iam.has_value() && setup.client_sessions_required;
  caf::actor bus;         // the events bus, when there is one
  peer::actor_context peer_context;
  peer_context.self = setup.self;
  peer_context.listen_address = setup.listen_address;
  peer_context.seeds = setup.seeds;
  peer_context.peer_config = setup.peer_config;
  peer_context.rng_seed = mix_seed(setup.rng_seed, /*stream: peer service*/ 1);
  peer_context.storage = setup.storage;
  peer_context.events = setup.events;
  services.push_back(peer::spawn_peer_actor(system, transport, std::move(peer_context)));
  if (setup.bench_echo) services.push_back(bench::spawn_echo_actor(system, transport, setup.self));
  if (setup.bench_flood_nodes) {
    bench::flood_config flood;
    flood.self = setup.self;
    flood.nodes = setup.bench_flood_nodes;
    flood.in_flight = setup.bench_flood_in_flight;
    flood.payload_bytes = setup.bench_flood_payload_bytes;
    flood.rng_seed = mix_seed(setup.rng_seed, /*stream: bench flood*/ 2);
    services.push_back(bench::spawn_flood_actor(system, transport, std::move(flood)));
  }
  if (setup.raft) {
    kv::replica_context kv_context;
    kv_context.self = setup.self;
    kv_context.group = setup.raft->group;
    kv_context.voters = setup.raft->voters;
    kv_context.addresses = setup.raft->addresses;
    kv_context.raft_config = setup.raft->config;
    kv_context.rng_seed = mix_seed(setup.rng_seed, /*stream: raft group*/ 100 + setup.raft->group);
    kv_context.snapshot_every = setup.raft->snapshot_every;
    kv_context.storage = setup.raft_storage ? setup.raft_storage : setup.storage;
    kv_context.events = setup.events;
    kv_context.observer = setup.raft->observer;
    kv_context.require_session = gate_clients;
    services.push_back(kv::spawn_kv_replica(system, transport, std::move(kv_context)));
    replica = services.back();
  }
  if (setup.swim) {
    swim::actor_context swim_context;
    swim_context.self = setup.self;
    swim_context.listen_address = setup.listen_address;
    // Pre-built contact lists replace the join (10,000 agents syncing with one seed at once
    // would measure the seed, not the protocol).
    if (setup.swim->known.empty())
      for (const auto& s : setup.seeds) swim_context.seeds.push_back({s.address, s.pinned});
    swim_context.membership = setup.swim->membership;
    swim_context.rng_seed = mix_seed(setup.rng_seed, /*stream: swim membership*/ 4);
    swim_context.known = setup.swim->known;
    swim_context.events = setup.events;
    swim_context.watcher = setup.swim->watcher;
    swim_context.broadcast_at_us = setup.swim->broadcast_at_us;
    services.push_back(swim::spawn_swim_actor(system, transport, std::move(swim_context)));
    membership = services.back();
  }
  if (setup.gossip) {
    gossip::actor_context gossip_context;
    gossip_context.self = setup.self;
    gossip_context.listen_address = setup.listen_address;
    gossip_context.search = setup.gossip->search;
    gossip_context.profile = setup.gossip->profile;
    gossip_context.rng_seed = mix_seed(setup.rng_seed, /*stream: gossip search*/ 5);
    gossip_context.events = setup.events;
    gossip_context.observer = setup.gossip->observer;
    gossip_context.prefill = setup.gossip->prefill;
    caf::actor membership = setup.swim ? services.back() : caf::actor{};
    services.push_back(
        gossip::spawn_gossip_actor(system, transport, membership, std::move(gossip_context)));
  }
  if (setup.rmb) {
    rmb::agent_context rmb_context;
    rmb_context.self = setup.self;
    rmb_context.twins = setup.rmb->twins;
    rmb_context.bus = setup.rmb->bus;
    rmb_context.rng_seed = mix_seed(setup.rng_seed, /*stream: rmb agent*/ 3);
    rmb_context.epoch_offset_us = setup.rmb->epoch_offset_us;
    rmb_context.storage = setup.rmb_storage ? setup.rmb_storage : setup.storage;
    rmb_context.events = setup.events;
    rmb_context.observer = setup.rmb->observer;
    services.push_back(rmb::spawn_rmb_agent(system, transport, std::move(rmb_context)));
  }
  if (setup.aggregator) {
    const auto& a = *setup.aggregator;
    aggregator::actor_context context;
    context.self = setup.self;
    context.listen_address = setup.listen_address;
    context.serve = a.serve;
    context.directory = a.directory;
    if (a.register_self) context.agent = a.agent;
    context.aggregator_address = a.aggregator_address;
    context.aggregator_id = a.aggregator_id;
    context.tags = a.tags;
    context.client = a.client;
    context.lookups = a.lookups;
    context.epoch_offset_us = a.epoch_offset_us;
    context.rng_seed = mix_seed(setup.rng_seed, /*stream: aggregator*/ 6);
    context.events = setup.events;
    context.watcher = a.watcher;
    services.push_back(aggregator::spawn_aggregator_actor(system, transport, std::move(context)));
  }
  if (setup.events_bus) {
    events::actor_context events_context;
    events_context.self = setup.self;
    events_context.bus = setup.events_bus->bus;
    events_context.require_session = gate_clients;
    events_context.rng_seed = mix_seed(setup.rng_seed, /*stream: events bus*/ 7);
    events_context.events = setup.events;
    events_context.watcher = setup.events_bus->observer;
    services.push_back(
        events::spawn_events_actor(system, transport, membership, std::move(events_context)));
    bus = services.back();
  }
  if (setup.reputation) {
    const auto& r = *setup.reputation;
    reputation::actor_context context;
    context.self = setup.self;
    context.signer = r.signer;
    context.reputation = r.reputation;
    context.claims = r.claims;
    context.epoch_offset_us = r.epoch_offset_us;
    context.rng_seed = mix_seed(setup.rng_seed, /*stream: reputation*/ 8);
    context.events = setup.events;
    context.watcher = r.observer;
    services.push_back(
        reputation::spawn_reputation_actor(system, transport, membership, std::move(context)));
  }
  caf::actor iam_actor;  // the IAM actor, when there is one
  if (setup.iam) {
    const auto& i = *setup.iam;
    iam::actor_context context;
    context.self = setup.self;
    context.signer = i.signer;
    context.iam = i.iam;
    context.scopes = i.scopes;
    context.random = i.random ? i.random
                              : jose::seeded_random_source(mix_seed(setup.rng_seed, /*stream: iam*/ 9));
    context.epoch_offset_us = i.epoch_offset_us;
    context.events = setup.events;
    context.storage = setup.iam_storage ? setup.iam_storage : setup.storage;
    services.push_back(iam::spawn_iam_actor(system, transport, std::move(context)));
    iam_actor = services.back();
    // The services that authorize their own wire clients learn of every session (docs/iam.md §13).
    if (gate_clients)
      for (const auto& gated : {replica, bus})
        if (gated) caf::anon_send(iam_actor, iam::iam_watch_sessions_atom::value, gated);
  }
  if (setup.router) {
    router::actor_context context;
    context.self = setup.self;
    context.audience = setup.router->audience.empty() ? std::string(router::default_audience) : setup.router->audience;
    context.routing = setup.router->routing;
    context.signer = setup.router->signer;
    context.trusted_issuers = setup.router->trusted_issuers;
    if (context.trusted_issuers.empty() && setup.raft)
      for (const auto& member : setup.raft->voters)
        if (member != setup.self) context.trusted_issuers.push_back(member);
    context.epoch_offset_us = setup.router->epoch_offset_us;
    context.events = setup.events;
    services.push_back(router::spawn_router_actor(system, transport, replica, bus, iam_actor, std::move(context),
                                                  setup.router->own_thread));
  }
  return services;
}

}  // namespace cmesh
