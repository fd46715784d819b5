// State shared by the simnet actor and the driver (both run on the one test_coordinator thread,
// never concurrently). Included only by sim/*.cpp: it pulls in CAF.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "runtime/store/store.hpp"
#include "sim/model/network_model.hpp"
#include "sim/model/trace_hash.hpp"
#include "sim/simulation.hpp"

namespace cmesh::sim {

struct node_slot {
  node_view view;
  std::unique_ptr<store> storage;
  std::vector<caf::actor> actors;
  // service id -> actor, filled as services register with the simulated transport.
  std::vector<std::pair<uint16_t, caf::actor>> services;
  std::string data_directory;

  const caf::actor* service(uint16_t id) const {
    for (const auto& [sid, actor] : services)
      if (sid == id) return &actor;
    return nullptr;
  }
};

struct world {
  world(uint64_t seed, const fault_profile& faults, uint32_t nodes)
      : network(seed, faults, nodes) {}

  network_model network;
  std::vector<node_slot> nodes;
  std::unordered_map<node_id, uint32_t> index_of_node;        // public key -> node index
  // Service actor id -> node index + 1 (0 = not a live node's actor). CAF hands out actor ids
  // sequentially, so a dense vector beats a hash map on the per-message path.
  std::vector<uint32_t> node_of_actor;

  int64_t node_of(caf::actor_id id) const {
    return id < node_of_actor.size() && node_of_actor[id] != 0 ? int64_t{node_of_actor[id]} - 1 : -1;
  }
  void set_node_of(caf::actor_id id, uint32_t node) {
    if (id >= node_of_actor.size()) node_of_actor.resize(id + 1024, 0);
    node_of_actor[id] = node + 1;
  }
  void forget_actor(caf::actor_id id) {
    if (id < node_of_actor.size()) node_of_actor[id] = 0;
  }
  trace_hash trace;
  std::vector<std::string> violations;
  int64_t now_us = 0;  // mirrors the virtual clock, updated by the driver

  void violation(std::string what) {
    if (violations.size() < 100) violations.push_back(std::move(what));
  }
};

// The simulated network actor: the `transport` every simulated service talks to.
caf::actor spawn_simnet(caf::actor_system& system, world* shared);

// "sim:N" -> N, or -1 if the address names no node.
int64_t parse_sim_address(const std::string& address, uint32_t node_count);
std::string sim_address(uint32_t node);

}  // namespace cmesh::sim
