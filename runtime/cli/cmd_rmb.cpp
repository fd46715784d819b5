// cmesh rmb send: send one RMB command to a twin and print its reply (docs/rmb.md).
//
// The client is a small RMB agent of its own: it hosts one twin (the --identity key, which signs
// the envelope), asks the node given by --node where the destination twin lives (locate_twin),
// then sends the envelope straight to the hosting agent with the bus's acknowledgement, retries
// and deduplication, and waits for the twin's reply, which comes back to the client's agent.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "actors/rmb/rmb_actor.hpp"
#include "actors/rmb/rmb_envelope.hpp"
#include "messages/codec.hpp"
#include "messages/rmb_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/mesh_clock.hpp"
#include "runtime/net/transport.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

command_spec rmb_spec() {
  command_spec spec;
  spec.name = "cmesh rmb";
  spec.summary = "Send a command to a twin over the reliable message bus and print its reply.";
  spec.usage = "cmesh rmb send --to DID --cmd COMMAND [--data TEXT] --node [DID@]HOST:PORT [options]";
  spec.options = {
      {"to", "DID", "the destination twin (a node's own identity is a twin on that node)", ""},
      {"cmd", "COMMAND", "echo, counter.add, counter.get or whoami (docs/rmb.md)", ""},
      {"data", "TEXT", "the command's data", ""},
      {"expiry", "T", "envelope lifetime (capped at 30m)", "5m"},
      {"node", "[DID@]HOST:PORT", "a node to ask where the twin lives", ""},
      {"identity", "FILE", "the sending twin's key file (default: a fresh identity)", ""},
      {"timeout", "T", "stop waiting for the reply after this long (exit 3)", "10s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
  spec.epilog =
      "Prints the reply's data on stdout. Exit codes: 0 the command succeeded, 1 the bus or the\n"
      "twin refused it ('STATUS reason' on stderr: bad_signature, unknown_twin, too_large,\n"
      "expired, undeliverable, command_failed, ...), 2 bad usage, 3 no reply in time or the\n"
      "node cannot be reached.\n"
      "Example:\n"
      "  cmesh rmb send --to did:key:z6Mk... --cmd counter.add --data visits --node 127.0.0.1:7001\n";
  return spec;
}


struct send_outcome {
  bool answered = false;
  uint8_t code = 0;
  std::string reason;
  bytes data;
};

int run_send(const command_spec& spec, const parsed_options& p) {
  if (!p.has("to")) return usage_error(spec, "--to DID is required");
  if (!p.has("cmd")) return usage_error(spec, "--cmd COMMAND is required");
  if (!p.has("node")) return usage_error(spec, "--node [DID@]HOST:PORT is required");
  auto to = node_id_from_did(p.get("to"));
  if (!to) return usage_error(spec, "--to: '" + p.get("to") + "' is not a did:key: " + to.err().message);
  auto node = parse_seed_spec(p.get("node"));
  if (!node) return usage_error(spec, "--node: " + node.err().message);
  auto timeout = sim::parse_duration_us(p.get("timeout", "10s"));
  if (!timeout || *timeout <= 0) return usage_error(spec, "--timeout: expected a duration such as 10s");
  auto expiry = sim::parse_duration_us(p.get("expiry", "5m"));
  if (!expiry || *expiry < 1'000'000) return usage_error(spec, "--expiry: expected a duration of 1s or more");
  auto loaded = client_identity(p.get("identity", ""));
  if (!loaded) return usage_error(spec, loaded.err().message);
  identity me = *loaded;
  bool verbose = p.has("verbose");

  // 1. Where does the twin live? Ask the node.
  exchange_request locate;
  locate.service = services::rmb;
  locate.reply_type = rmb::twin_location::type_id;
  locate.timeout_us = std::min<int64_t>(*timeout, 5'000'000);
  locate.verbose = verbose;
  locate.encode = [twin = *to](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, rmb::locate_twin{rmb::to_bytes(twin)});
  };
  auto located = run_exchange(me, *node, std::move(locate));
  if (located.kind != exchange_kind::answered) return report_unreachable(located);
  auto where = decode_payload<rmb::twin_location>(located.reply);
  if (!where || !where->found || where->agent.size() != 32) {
    std::fprintf(stderr, "unknown_twin the node at %s does not know where %s lives\n",
                 node->address.c_str(), p.get("to").c_str());
    return exit_failed;
  }
  auto agent_node = node_id::from_bytes(where->agent.data());
  std::string agent_address = where->address.empty() ? node->address : where->address;

  // 2. Send through our own agent, straight to the hosting agent.
  auto* system = &client_actor_system();  // the exchange's system: one per process
  auto transport = start_transport(*system, client_transport(me));
  if (!transport) {
    std::fprintf(stderr, "cannot start the client transport: %s\n", transport.err().message.c_str());
    return exit_unreachable;
  }
  rmb::agent_context agent;
  agent.self = me.public_key;
  agent.twins.push_back(me);
  agent.rng_seed = randombytes_random() | (uint64_t{randombytes_random()} << 32);
  agent.epoch_offset_us = mesh_epoch_offset_us();
  auto bus = rmb::spawn_rmb_agent(*system, transport->first, std::move(agent));
  caf::anon_send(transport->first, introduce_atom::value, agent_node, agent_address);
  caf::anon_send(bus, rmb::rmb_where_atom::value, rmb::to_bytes(*to), rmb::to_bytes(agent_node),
                 agent_address);
  std::string data = p.get("data", "");
  send_outcome result;
  {
    caf::scoped_actor self{*system};
    self->request(bus, std::chrono::microseconds(*timeout), rmb::rmb_send_atom::value,
                  rmb::to_bytes(me.public_key), rmb::to_bytes(*to), p.get("cmd"),
                  bytes(data.begin(), data.end()), static_cast<uint32_t>(*expiry / 1'000'000))
        .receive(
            [&](uint8_t code, const std::string& reason, const bytes& reply) {
              result.answered = true;
              result.code = code;
              result.reason = reason;
              result.data = reply;
            },
            [&](const caf::error&) {});
  }
  if (!result.answered) {
    std::fprintf(stderr, "no reply from %s within %s (the command may still be delivered)\n",
                 p.get("to").c_str(), p.get("timeout", "10s").c_str());
    return exit_unreachable;
  }
  auto code = static_cast<rmb::status_code>(result.code);
  if (code != rmb::status_code::ok) {
    std::fprintf(stderr, "%s %s\n", std::string(rmb::status_code_name(code)).c_str(), result.reason.c_str());
    return exit_failed;
  }
  std::fwrite(result.data.data(), 1, result.data.size(), stdout);
  std::fputc('\n', stdout);
  return exit_ok;
}

}  // namespace

int run_rmb(int argc, char** argv) {
  auto spec = rmb_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.size() != 1 || args[0] != "send") return usage_error(spec, "expected: cmesh rmb send ...");
  int code = run_send(spec, *parsed);
  exit_client(code);
}

}  // namespace cmesh::cli
