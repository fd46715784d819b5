// cmesh search: find agents whose published profile matches tags, through one node's cached gossip
// search (docs/gossip-search.md §8). The client authenticates to the node with its identity (the
// transport handshake), sends a search_request, and prints the matches of the search the node ran.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "actors/gossip/gossip_machine.hpp"
#include "messages/codec.hpp"
#include "messages/gossip_messages.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

command_spec search_spec() {
  command_spec spec;
  spec.name = "cmesh search";
  spec.summary = "Find agents whose published tags match, through a node's cached gossip search.";
  spec.usage = "cmesh search KEY=VALUE... --node [DID@]HOST:PORT [options]";
  spec.options = {
      {"node", "[DID@]HOST:PORT", "the node that runs the search", ""},
      {"identity", "FILE", "the client's key file (default: a fresh identity)", ""},
      {"wait", "T", "how long the node searches (at most 5s)", "2s"},
      {"timeout", "T", "stop waiting for the answer after this long (exit 3)", "wait + 3s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
  spec.epilog =
      "Tags: category, subcategory, name, location, adjective (a node publishes its own with\n"
      "'cmesh node --profile'). A match needs every tag given to be equal (case-insensitive).\n"
      "Prints one line per match: DID ADDRESS TAGS, then a summary on stderr.\n"
      "Exit codes: 0 at least one match, 1 no match or the node refused (reason on stderr),\n"
      "2 bad usage, 3 no answer in time or the node cannot be reached.\n"
      "Example:\n"
      "  cmesh search category=grocery name=apple --node 127.0.0.1:7001\n";
  return spec;
}


// Tags for printing: "category=grocery,name=apple", or "-" for none.
std::string describe_tags(const gossip::search_tags& tags) {
  auto text = gossip::format_tags(tags);
  return text.empty() ? "-" : text;
}

int run(const command_spec& spec, const parsed_options& p) {
  if (p.positional().empty()) return usage_error(spec, "give at least one tag, e.g. name=apple");
  if (!p.has("node")) return usage_error(spec, "--node [DID@]HOST:PORT is required");
  auto tags = gossip::parse_tag_assignments(p.positional());
  if (!tags) return usage_error(spec, tags.err().message);
  if (auto bad = gossip::validate_tags(gossip::normalize(*tags), gossip::config{}.tag_chars_max, true))
    return usage_error(spec, bad.message);
  auto node = parse_seed_spec(p.get("node"));
  if (!node) return usage_error(spec, "--node: " + node.err().message);
  auto wait = sim::parse_duration_us(p.get("wait", "2s"));
  if (!wait || *wait <= 0) return usage_error(spec, "--wait: expected a duration such as 2s");
  int64_t timeout_us = *wait + 3'000'000;
  if (p.has("timeout")) {
    auto timeout = sim::parse_duration_us(p.get("timeout"));
    if (!timeout || *timeout <= 0) return usage_error(spec, "--timeout: expected a duration such as 5s");
    timeout_us = *timeout;
  }
  auto loaded = client_identity(p.get("identity", ""));
  if (!loaded) return usage_error(spec, loaded.err().message);
  identity me = *loaded;

  gossip::search_request request;
  request.tags = *tags;
  request.timeout_ms = static_cast<uint32_t>(std::min<int64_t>(*wait / 1000, 60'000));
  exchange_request exchange;
  exchange.service = services::gossip;
  exchange.reply_type = gossip::search_response::type_id;
  exchange.timeout_us = timeout_us;
  exchange.verbose = p.has("verbose");
  exchange.encode = [request](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, request);
  };
  auto outcome = run_exchange(me, *node, std::move(exchange));
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto response = decode_payload<gossip::search_response>(outcome.reply);
  if (!response) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", node->address.c_str(),
                 response.err().describe().c_str());
    return exit_failed;
  }
  if (response->status != gossip::search_ok) {
    std::fprintf(stderr, "%u %s\n", unsigned(response->status), response->reason.c_str());
    return exit_failed;
  }
  size_t printed = 0;
  for (const auto& row : response->matches) {
    if (row.key.size() != 32) continue;
    auto key = node_id::from_bytes(row.key.data());
    std::printf("%s %s %s\n", did_from_node_id(key).c_str(), row.address.c_str(),
                describe_tags(row.tags).c_str());
    ++printed;
  }
  std::fflush(stdout);  // matches first, then the summary, also when both go to one file
  std::fprintf(stderr, "%zu match%s for %s in %u ms (%s, %u messages from the node)\n", printed,
               printed == 1 ? "" : "es", describe_tags(gossip::normalize(*tags)).c_str(),
               unsigned(response->elapsed_ms), response->done.c_str(), unsigned(response->messages));
  return printed > 0 ? exit_ok : exit_failed;
}

}  // namespace

int run_search(int argc, char** argv) { exit_client(run_with_options(argc, argv, search_spec(), run)); }

}  // namespace cmesh::cli
