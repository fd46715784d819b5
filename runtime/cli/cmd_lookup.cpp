// cmesh lookup: find agents by tags in an aggregator's directory (docs/aggregator.md §7), in one
// round trip. The client authenticates to the aggregator's node with its identity (the transport
// handshake), sends lookup_agents, checks every returned registration's signature and tags itself
// (the aggregator is not trusted for them), and prints the agents.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string>

#include "actors/aggregator/aggregator_machine.hpp"
#include "actors/gossip/gossip_machine.hpp"
#include "messages/aggregator_messages.hpp"
#include "messages/codec.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

command_spec lookup_spec() {
  command_spec spec;
  spec.name = "cmesh lookup";
  spec.summary = "Find agents by tags in an aggregator's directory, in one round trip.";
  spec.usage = "cmesh lookup KEY=VALUE... --node [DID@]HOST:PORT [options]";
  spec.options = {
      {"node", "[DID@]HOST:PORT", "the aggregator (a node started with --aggregator)", ""},
      {"limit", "N", "most agents wanted (the aggregator caps it)", "64"},
      {"identity", "FILE", "the client's key file (default: a fresh identity)", ""},
      {"timeout", "T", "stop waiting for the answer after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
  spec.epilog =
      "Tags: category, subcategory, name, location, adjective, as agents register them with\n"
      "'cmesh node --profile ... --aggregator-at ADDR'. An agent matches when it carries every tag\n"
      "given (case-insensitive). Every registration returned is checked here: its signature by the\n"
      "agent's key, and that it carries the tags; those that fail are counted, never printed.\n"
      "Prints one line per agent: DID ADDRESS TAGS, then a summary on stderr.\n"
      "Exit codes: 0 at least one agent, 1 none or the aggregator refused (reason on stderr),\n"
      "2 bad usage, 3 no answer in time or the node cannot be reached.\n"
      "Example:\n"
      "  cmesh lookup category=grocery location=paris --node 127.0.0.1:7001\n";
  return spec;
}

bool carries_all(const aggregator::agent_registration& r, const std::vector<std::string>& tags) {
  for (const auto& t : tags) {
    bool found = false;
    for (const auto& have : r.tags) found = found || have == t;
    if (!found) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "-" : out;
}

int run(const command_spec& spec, const parsed_options& p) {
  if (p.positional().empty()) return usage_error(spec, "give at least one tag, e.g. name=apple");
  if (!p.has("node")) return usage_error(spec, "--node [DID@]HOST:PORT is required");
  auto parsed = gossip::parse_tag_assignments(p.positional());
  if (!parsed) return usage_error(spec, parsed.err().message);
  auto tags = gossip::directory_tags(*parsed);
  if (tags.empty()) return usage_error(spec, "every tag given is empty");
  auto node = parse_seed_spec(p.get("node"));
  if (!node) return usage_error(spec, "--node: " + node.err().message);
  uint32_t limit = 64;
  if (p.has("limit")) {
    auto text = p.get("limit");
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0)
      return usage_error(spec, "--limit: expected a whole number from 1, got '" + text + "'");
    limit = value;
  }
  auto timeout = sim::parse_duration_us(p.get("timeout", "5s"));
  if (!timeout || *timeout <= 0) return usage_error(spec, "--timeout: expected a duration such as 5s");
  auto loaded = client_identity(p.get("identity", ""));
  if (!loaded) return usage_error(spec, loaded.err().message);
  identity me = *loaded;

  exchange_request exchange;
  exchange.service = services::aggregator;
  exchange.reply_type = aggregator::lookup_reply::type_id;
  exchange.timeout_us = *timeout;
  exchange.verbose = p.has("verbose");
  exchange.encode = [tags, limit](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, aggregator::lookup_agents{correlation, tags, limit});
  };
  auto outcome = run_exchange(me, *node, std::move(exchange));
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto reply = decode_payload<aggregator::lookup_reply>(outcome.reply);
  if (!reply) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", node->address.c_str(),
                 reply.err().describe().c_str());
    return exit_failed;
  }
  if (reply->status != static_cast<uint8_t>(aggregator::status_code::ok)) {
    std::fprintf(stderr, "%s: %s\n",
                 std::string(aggregator::status_code_name(static_cast<aggregator::status_code>(reply->status))).c_str(),
                 reply->reason.c_str());
    return exit_failed;
  }
  size_t printed = 0, discarded = 0;
  for (const auto& r : reply->agents) {
    if (!aggregator::verify_registration(r) || !carries_all(r, tags)) {
      ++discarded;
      continue;
    }
    std::printf("%s %s %s\n", did_from_node_id(node_id::from_bytes(r.agent.data())).c_str(),
                r.address.c_str(), join(r.tags).c_str());
    ++printed;
  }
  std::fflush(stdout);
  std::fprintf(stderr, "%zu agent%s for %s", printed, printed == 1 ? "" : "s", join(tags).c_str());
  if (discarded > 0) std::fprintf(stderr, " (%zu discarded: bad signature or tags)", discarded);
  std::fprintf(stderr, "\n");
  return printed > 0 ? exit_ok : exit_failed;
}

}  // namespace

int run_lookup(int argc, char** argv) { exit_client(run_with_options(argc, argv, lookup_spec(), run)); }

}  // namespace cmesh::cli
