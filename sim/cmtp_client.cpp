#include "sim/cmtp_client.hpp"

#include <chrono>

#include "actors/iam/token.hpp"
#include "actors/router/router_machine.hpp"
#include "actors/ignore_unexpected.hpp"
#include "actors/router/router_actor.hpp"
#include "messages/codec.hpp"
#include "messages/cmtp_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/world.hpp"

namespace cmesh::sim {

namespace {

// A session token for `client` at node `node`, as that node's IAM would issue it.
std::string session_token(uint64_t seed, const cmtp_command& c, int64_t now_us) {
  const identity node = identity::derive_for_simulation(seed, c.node);
  const identity holder = identity::derive_for_simulation(seed, cmtp_client_identity_index(c.client));
  iam::session_claims claims;
  claims.issuer = node.did();
  claims.subject = holder.did();
  claims.audience = router::default_audience;
  claims.issued_at_s = now_us / 1'000'000;
  claims.expires_at_s = claims.issued_at_s + 3600;
  auto scopes = iam::parse_scope(c.scope);
  if (scopes) claims.scopes = *scopes;
  claims.token_id = c.tx + "-token";
  auto token = iam::issue_session_token(claims, jose::signer_for(node));
  return token ? *token : std::string();
}

cmtp_outcome outcome_of(cmtp_outcome o, const cmtp::response& response) {
  o.status = response.status;
  o.reason = response.reason;
  o.body.assign(response.body.begin(), response.body.end());
  o.audit.assign(response.audit.begin(), response.audit.end());
  return o;
}

caf::behavior cmtp_client(caf::event_based_actor* self, world* shared, uint64_t seed,
                          std::vector<cmtp_command> commands, std::vector<cmtp_outcome>* outcomes) {
  using namespace std::chrono;
  auto now_us = [self] { return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count(); };
  self->set_default_handler(ignore_unexpected);
  for (size_t i = 0; i < commands.size(); ++i)
    self->delayed_send(self, microseconds(std::max<int64_t>(0, commands[i].at_us - now_us())), tick_atom::value,
                       static_cast<uint64_t>(i));
  return {
    [=](tick_atom, uint64_t index) {
      const auto& c = commands[index];
      cmtp_outcome base;
      base.command_index = index;
      const auto* router = c.node < shared->nodes.size() && shared->nodes[c.node].view.up
                               ? shared->nodes[c.node].service(services::cmtp)
                               : nullptr;
      if (router == nullptr) {
        base.at_us = now_us();
        base.reason = "node down";
        if (outcomes) outcomes->push_back(base);
        return;
      }
      auto request_of = [&](const cmtp_command& cmd) {
        cmtp::request r;
        r.tx = cmd.tx;
        r.fqmn = cmd.fqmn;
        r.token = session_token(seed, cmd, now_us());
        r.body.assign(cmd.body.begin(), cmd.body.end());
        return r;
      };
      if (c.batched) {
        // The group's first command sends the whole group; the others were sent with it.
        std::vector<uint64_t> group;
        for (size_t i = 0; i < commands.size(); ++i)
          if (commands[i].batched && commands[i].at_us == c.at_us && commands[i].node == c.node) group.push_back(i);
        if (group.front() != index) return;
        std::vector<cmtp::request> requests;
        for (auto i : group) requests.push_back(request_of(commands[i]));
        self->request(*router, seconds(60), router::router_batch_atom::value, std::move(requests))
            .then(
                [=](const std::vector<cmtp::response>& responses) {
                  for (size_t k = 0; k < group.size(); ++k) {
                    auto o = base;
                    o.command_index = group[k];
                    o.at_us = now_us();
                    if (k < responses.size()) o = outcome_of(std::move(o), responses[k]);
                    else o.reason = "batch answered with too few responses";
                    if (outcomes) outcomes->push_back(std::move(o));
                  }
                },
                [=](caf::error&) {
                  for (auto i : group) {
                    auto o = base;
                    o.command_index = i;
                    o.at_us = now_us();
                    o.reason = "no answer (router down)";
                    if (outcomes) outcomes->push_back(std::move(o));
                  }
                });
        return;
      }
      auto packed = pack_value(request_of(c));
      if (!packed) return;
      self->request(*router, seconds(60), router::router_call_atom::value, std::move(*packed))
          .then(
              [=](const bytes& answer) {
                auto o = base;
                o.at_us = now_us();
                auto response = unpack_value<cmtp::response>(answer.data(), answer.size());
                if (response) o = outcome_of(std::move(o), *response);
                else o.reason = "unreadable response";
                if (outcomes) outcomes->push_back(std::move(o));
              },
              [=](caf::error&) {
                auto o = base;
                o.at_us = now_us();
                o.reason = "no answer (router down)";
                if (outcomes) outcomes->push_back(std::move(o));
              });
    },
  };
}

}  // namespace

caf::actor spawn_cmtp_client(caf::actor_system& system, world* shared, uint64_t seed,
                             std::vector<cmtp_command> commands, std::vector<cmtp_outcome>* outcomes) {
  return system.spawn(cmtp_client, shared, seed, std::move(commands), outcomes);
}

}  // namespace cmesh::sim
