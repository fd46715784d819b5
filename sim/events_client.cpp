#include "sim/events_client.hpp"

#include <chrono>
#include <map>
#include <memory>

#include "actors/events/events_actor.hpp"
#include "actors/ignore_unexpected.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "sim/world.hpp"

namespace cmesh::sim {

namespace {

struct client_state {
  static inline const char* name = "cmesh.sim.events_client";
  // (events actor id, sid) -> index of the subscribe command.
  std::map<std::pair<caf::actor_id, uint64_t>, size_t> subscriptions;
  // index of a subscribe command -> (events actor, sid), for unsubscribe.
  std::map<size_t, std::pair<caf::actor, uint64_t>> by_command;
};

using client_actor = caf::stateful_actor<client_state>;

std::string text_of(const bytes& data) { return std::string(data.begin(), data.end()); }
bytes bytes_of(const std::string& text) { return bytes(text.begin(), text.end()); }

caf::behavior events_client(client_actor* self, world* shared, std::vector<events_command> commands,
                            std::vector<events_outcome>* outcomes) {
  using namespace std::chrono;
  auto now_us = [self] {
    return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
  };
  auto record = [=](events_outcome o) {
    o.at_us = now_us();
    if (outcomes) outcomes->push_back(std::move(o));
  };
  self->set_default_handler(ignore_unexpected);
  for (size_t i = 0; i < commands.size(); ++i)
    self->delayed_send(self, microseconds(std::max<int64_t>(0, commands[i].at_us - now_us())),
                       tick_atom::value, static_cast<uint64_t>(i));
  return {
    [=](tick_atom, uint64_t index) {
      const auto& c = commands[index];
      events_outcome base;
      base.command_index = index;
      base.node = c.node;
      const auto* bus = c.node < shared->nodes.size() && shared->nodes[c.node].view.up
                            ? shared->nodes[c.node].service(services::events)
                            : nullptr;
      if (bus == nullptr) {
        base.what = events_outcome::kind::refused;
        base.status = 503;
        base.reason = "node down";
        record(base);
        return;
      }
      caf::actor target = *bus;
      switch (c.what) {
        case events_command::kind::subscribe:
          self->request(target, seconds(60), events::events_sub_atom::value, c.subject,
                        c.queue_group, caf::actor{self})
              .then([=](uint16_t status, const std::string& reason, uint64_t sid) {
                auto o = base;
                o.status = status;
                o.reason = reason;
                o.what = status == 200 ? events_outcome::kind::subscribed
                                       : events_outcome::kind::refused;
                if (status == 200) {
                  self->state.subscriptions[{target.id(), sid}] = index;
                  self->state.by_command[index] = {target, sid};
                }
                record(o);
              });
          break;
        case events_command::kind::unsubscribe: {
          auto it = self->state.by_command.find(c.subscription);
          if (it == self->state.by_command.end()) {
            auto o = base;
            o.status = 404;
            o.reason = "not subscribed";
            record(o);
            break;
          }
          auto [actor, sid] = it->second;
          self->state.by_command.erase(it);
          self->state.subscriptions.erase({actor.id(), sid});
          self->request(actor, seconds(60), events::events_unsub_atom::value, sid)
              .then([=](uint16_t status, const std::string& reason) {
                auto o = base;
                o.what = events_outcome::kind::unsubscribed;
                o.status = status;
                o.reason = reason;
                record(o);
              });
          break;
        }
        case events_command::kind::publish:
          self->request(target, seconds(60), events::events_pub_atom::value, c.subject,
                        std::string(), bytes_of(c.payload))
              .then([=](uint16_t status, const std::string& reason, bool interest) {
                auto o = base;
                o.what = status == 200 ? events_outcome::kind::published
                                       : events_outcome::kind::refused;
                o.status = status;
                o.reason = reason;
                o.interest = interest;
                record(o);
              });
          break;
        case events_command::kind::request:
          self->request(target, seconds(120), events::events_request_atom::value, c.subject,
                        bytes_of(c.payload), c.timeout_ms)
              .then([=](uint16_t status, const std::string& reason, const bytes& reply) {
                auto o = base;
                o.what = events_outcome::kind::reply;
                o.status = status;
                o.reason = reason;
                o.payload = text_of(reply);
                record(o);
              });
          break;
      }
    },
    [=](events::events_msg_atom, uint64_t sid, const std::string& subject,
        const std::string& reply_to, const bytes& payload) {
      auto sender = self->current_sender();
      if (!sender) return;
      auto it = self->state.subscriptions.find({sender->id(), sid});
      if (it == self->state.subscriptions.end()) return;  // after unsubscribe
      const auto& c = commands[it->second];
      events_outcome o;
      o.what = events_outcome::kind::message;
      o.command_index = it->second;
      o.node = c.node;
      o.status = 200;
      o.subject = subject;
      o.payload = text_of(payload);
      record(o);
      if (!c.payload.empty() && !reply_to.empty())  // a responder: answer through the same node
        self->send(caf::actor_cast<caf::actor>(sender), events::events_pub_atom::value, reply_to,
                   std::string(), bytes_of(c.payload));
    },
    [=](events::events_slow_atom, uint64_t sid, uint64_t dropped, uint64_t) {
      auto sender = self->current_sender();
      if (!sender) return;
      auto it = self->state.subscriptions.find({sender->id(), sid});
      if (it == self->state.subscriptions.end()) return;
      events_outcome o;
      o.what = events_outcome::kind::slow_consumer;
      o.command_index = it->second;
      o.node = commands[it->second].node;
      o.status = static_cast<uint16_t>(dropped);
      record(o);
    },
  };
}

}  // namespace

caf::actor spawn_events_client(caf::actor_system& system, world* shared,
                               std::vector<events_command> commands,
                               std::vector<events_outcome>* outcomes) {
  return system.spawn(events_client, shared, std::move(commands), outcomes);
}

}  // namespace cmesh::sim
