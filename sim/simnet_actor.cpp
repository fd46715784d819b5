// The simulated network actor. Services send it exactly what they would send the real transport;
// it identifies the sending node by the sending actor, asks the network model what happens to the
// message, and leaves deliveries in the model's queue for the driver to hand over on time.
#include <charconv>

#include "actors/ignore_unexpected.hpp"
#include "messages/seam.hpp"
#include "sim/world.hpp"

namespace cmesh::sim {

int64_t parse_sim_address(const std::string& address, uint32_t node_count) {
  if (address.rfind("sim:", 0) != 0) return -1;
  uint32_t index = 0;
  auto begin = address.data() + 4;
  auto end = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(begin, end, index);
  if (ec != std::errc{} || ptr != end || begin == end || index >= node_count) return -1;
  return index;
}

std::string sim_address(uint32_t node) { return "sim:" + std::to_string(node); }

namespace {

struct simnet_state {
  static inline const char* name = "cmesh.simnet";
  world* shared = nullptr;
};

// Which node sent the current message; -1 if the sender is not a known node's service or the
// node is down (a crashed node sends nothing).
int64_t sending_node(caf::stateful_actor<simnet_state>* self) {
  auto sender = self->current_sender();
  if (!sender) return -1;
  auto& w = *self->state.shared;
  auto node = w.node_of(sender->id());
  if (node < 0 || !w.nodes[node].view.up) return -1;
  return node;
}

caf::behavior simnet(caf::stateful_actor<simnet_state>* self, world* shared) {
  self->state.shared = shared;
  // A service answering the network with an error is a bug the real transport must survive
  // (see actors/ignore_unexpected.hpp): in the simulator it is a violation.
  self->set_error_handler([=](caf::error& e) {
    self->state.shared->violation("the network got an error message: " + self->system().render(e));
  });
  self->set_default_handler(ignore_unexpected);
  return {
    [=](send_atom, const node_id& to, uint16_t service, bytes& data) {
      auto& w = *self->state.shared;
      auto from = sending_node(self);
      if (from < 0) return;
      auto target = w.index_of_node.find(to);
      if (target == w.index_of_node.end()) {
        ++w.network.stats().to_dead_node;  // nobody has that key: like an unroutable address
        return;
      }
      w.network.send(w.now_us, static_cast<uint32_t>(from), target->second,
                     w.nodes[target->second].view.incarnation, service, std::move(data));
    },
    [=](dial_atom, const std::string& address, const node_id& pinned) {
      auto& w = *self->state.shared;
      auto from = sending_node(self);
      if (from < 0) return;
      auto& dialer = w.nodes[from].view;
      auto to = parse_sim_address(address, static_cast<uint32_t>(w.nodes.size()));
      if (to < 0 || to == from) {
        w.network.dial_unknown(w.now_us, static_cast<uint32_t>(from), dialer.incarnation, address);
        return;
      }
      auto& target = w.nodes[to].view;
      if (!pinned.is_zero() && pinned != target.id) {
        // The handshake would authenticate someone else: refuse, as the real transport does.
        w.network.dial_refused(w.now_us, static_cast<uint32_t>(from), dialer.incarnation, address,
                               "identity_mismatch: expected " + pinned.hex() + ", got " +
                                   target.id.hex());
        return;
      }
      w.network.dial(w.now_us, static_cast<uint32_t>(from), dialer.incarnation, dialer.address,
                     static_cast<uint32_t>(to), target.incarnation, target.up, target.address);
    },
    [=](introduce_atom, const node_id&, const std::string&) {
      // Simulated routing is by node key; addresses only matter for dials.
    },
    [=](register_atom, uint16_t service, const caf::actor& actor) {
      auto& w = *self->state.shared;
      auto node = w.node_of(actor.id());
      if (node < 0) return;
      auto& services = w.nodes[node].services;
      for (auto& entry : services)
        if (entry.first == service) {
          entry.second = actor;
          return;
        }
      services.emplace_back(service, actor);
    },
  };
}

}  // namespace

caf::actor spawn_simnet(caf::actor_system& system, world* shared) {
  return system.spawn(simnet, shared);
}

}  // namespace cmesh::sim
