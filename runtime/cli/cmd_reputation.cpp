// cmesh reputation: endorse an agent, report one, present a saved claim, or show what a node
// knows of an agent (docs/reputation.md §8). Claims are signed here with the client's identity;
// the node verifies them like any peer's, answers with its verdict, and gossips a report on.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include "actors/reputation/reputation_actor.hpp"
#include "actors/reputation/reputation_machine.hpp"
#include "messages/codec.hpp"
#include "messages/reputation_messages.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/jose.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

const char* overview =
    "cmesh reputation: signed endorsements and reports (docs/reputation.md).\n"
    "\n"
    "Usage:\n"
    "  cmesh reputation endorse DID --node ADDR --identity FILE (--resource FILE | --resource-text T)\n"
    "  cmesh reputation report DID --reason R --node ADDR --identity FILE (--evidence FILE | --evidence-text T)\n"
    "  cmesh reputation present FILE --node ADDR\n"
    "  cmesh reputation show DID --node ADDR\n"
    "\n"
    "An endorsement says 'I accessed this resource served by DID' and is signed by your identity;\n"
    "send it to the agent's node (it counts there, and the agent may show it to others). A report\n"
    "says 'DID did this' (fraud, impersonation, spam, malformed, unresponsive) with the hash of your\n"
    "evidence; the node gossips it to its contacts for up to 3 hops. Every node verifies every\n"
    "claim: forged, altered, replayed and future-dated claims are refused with the reason.\n"
    "Run 'cmesh reputation <subcommand> --help' for the options.\n";

constexpr const char* claim_file_magic = "cmesh-reputation-claim";

std::vector<option_spec> common_options() {
  return {
      {"node", "[DID@]HOST:PORT", "the node to send to", ""},
      {"identity", "FILE", "the client's key file", ""},
      {"timeout", "T", "stop waiting for the answer after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
}

command_spec endorse_spec() {
  command_spec spec;
  spec.name = "cmesh reputation endorse";
  spec.summary = "Sign 'I accessed this resource served by DID' and send it to a node.";
  spec.usage = "cmesh reputation endorse DID --node ADDR --identity FILE (--resource FILE | --resource-text T)";
  spec.options = common_options();
  spec.options.push_back({"resource", "FILE", "the resource you accessed (its BLAKE2b-256 hash is signed)", ""});
  spec.options.push_back({"resource-text", "TEXT", "the resource as text, e.g. its canonical URL", ""});
  spec.options.push_back({"save", "FILE", "also write the signed endorsement there (for 'present')", ""});
  spec.epilog =
      "Exit codes: 0 accepted, 1 refused (the node's reason on stderr), 2 bad usage,\n"
      "3 no answer in time or the node cannot be reached.\n"
      "Example:\n"
      "  cmesh reputation endorse did:key:z6Mk... --resource-text https://shop.example/order/17 \\\n"
      "      --identity me.key --node 127.0.0.1:7001 --save order17.claim\n";
  return spec;
}

command_spec report_spec() {
  command_spec spec;
  spec.name = "cmesh reputation report";
  spec.summary = "Sign a report of reputation-damaging behaviour and have a node gossip it.";
  spec.usage = "cmesh reputation report DID --reason R --node ADDR --identity FILE (--evidence FILE | --evidence-text T)";
  spec.options = common_options();
  spec.options.push_back({"reason", "R", "fraud, impersonation, spam, malformed or unresponsive", ""});
  spec.options.push_back({"evidence", "FILE", "the evidence (its BLAKE2b-256 hash is signed)", ""});
  spec.options.push_back({"evidence-text", "TEXT", "the evidence as text", ""});
  spec.options.push_back({"save", "FILE", "also write the signed report there (for 'present')", ""});
  spec.epilog =
      "Exit codes: 0 accepted (and gossiped on), 1 refused (reason on stderr), 2 bad usage,\n"
      "3 no answer in time or the node cannot be reached.\n";
  return spec;
}

command_spec present_spec() {
  command_spec spec;
  spec.name = "cmesh reputation present";
  spec.summary = "Send a saved claim (from --save) to a node, e.g. to show an endorsement elsewhere.";
  spec.usage = "cmesh reputation present FILE --node ADDR [--identity FILE]";
  spec.options = common_options();
  spec.epilog =
      "The node verifies the claim as if it were new; a node that counted it already refuses it\n"
      "as a replay. Exit codes as for endorse.\n";
  return spec;
}

command_spec show_spec() {
  command_spec spec;
  spec.name = "cmesh reputation show";
  spec.summary = "Print a node's score for an agent and the reports it holds about it.";
  spec.usage = "cmesh reputation show DID --node ADDR [--reports N]";
  spec.options = common_options();
  spec.options.push_back({"reports", "N", "most reports to list (the node caps it at 64)", "16"});
  spec.epilog =
      "Prints 'score S endorsers E reporters R report_weight W endorsements N', then one line per\n"
      "report: REASON REPORTER ISSUED EVIDENCE-HASH. Every report is verified here (signature and\n"
      "subject); those that fail are counted, never printed.\n"
      "Exit codes: 0 answered, 2 bad usage, 3 no answer in time or unreachable.\n";
  return spec;
}

int64_t unix_now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string iso_time(int64_t unix_us) {
  std::time_t seconds = static_cast<std::time_t>(unix_us / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}


result<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error{errc::invalid_argument, "cannot read " + path};
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The hash a claim signs: of --NAME FILE's bytes or of --NAME-text's text (exactly one).
result<reputation::hash32> hash_option(const parsed_options& p, const std::string& name) {
  const bool file = p.has(name), text = p.has(name + "-text");
  if (file == text) return error{errc::invalid_argument, "give exactly one of --" + name + " and --" + name + "-text"};
  std::string content = p.get(name + "-text");
  if (file) {
    auto loaded = read_whole_file(p.get(name));
    if (!loaded) return error{errc::invalid_argument, "--" + name + ": " + loaded.err().message};
    content = std::move(*loaded);
  }
  return reputation::resource_hash(reinterpret_cast<const uint8_t*>(content.data()), content.size());
}

// --identity is required for a claim: a claim is signed by its author.
result<client_options> read_client(const parsed_options& p, bool need_identity) {
  return read_client_options(p, need_identity ? "a claim is signed by its author" : "");
}

result<node_id> subject_argument(const parsed_options& p) {
  if (p.positional().size() != 1) return error{errc::invalid_argument, "give exactly one agent DID"};
  auto subject = node_id_from_did(p.positional()[0]);
  if (!subject) return error{errc::invalid_argument, "not a did:key: " + p.positional()[0]};
  return *subject;
}

// A saved claim: one line "cmesh-reputation-claim endorsement|report BASE64URL(msgpack)".
status save_claim(const std::string& path, const reputation::wire_message& claim) {
  auto packed = std::visit(
      [](const auto& m) -> result<bytes> {
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, reputation::endorsement>) return pack_value(m);
        else return pack_value(m.body);
      },
      claim);
  if (!packed) return packed.err();
  std::ofstream out(path, std::ios::trunc);
  out << claim_file_magic << ' '
      << (std::holds_alternative<reputation::endorsement>(claim) ? "endorsement" : "report") << ' '
      << jose::base64url_encode(packed->data(), packed->size()) << '\n';
  out.close();
  if (!out) return error{errc::invalid_argument, "cannot write " + path};
  return ok_status();
}

result<reputation::wire_message> load_claim(const std::string& path) {
  auto content = read_whole_file(path);
  if (!content) return content.err();
  std::istringstream in(*content);
  std::string magic, kind, text;
  in >> magic >> kind >> text;
  if (magic != claim_file_magic || (kind != "endorsement" && kind != "report"))
    return error{errc::malformed, path + " is not a saved claim (cmesh reputation ... --save)"};
  auto packed = jose::base64url_decode(text);
  if (!packed) return error{errc::malformed, path + ": " + packed.err().message};
  if (kind == "endorsement") {
    auto e = unpack_value<reputation::endorsement>(packed->data(), packed->size());
    if (!e) return error{errc::malformed, path + ": " + e.err().message};
    return reputation::wire_message{*e};
  }
  auto r = unpack_value<reputation::report>(packed->data(), packed->size());
  if (!r) return error{errc::malformed, path + ": " + r.err().message};
  // As far as the node allows (it clamps to its report_hops_max - 1).
  return reputation::wire_message{reputation::report_gossip{*r, 255}};
}

// Sends the claim, prints the node's verdict.
int submit(const client_options& c, const reputation::wire_message& claim) {
  exchange_request exchange;
  exchange.service = services::reputation;
  exchange.reply_type = reputation::claim_result::type_id;
  exchange.timeout_us = c.timeout_us;
  exchange.verbose = c.verbose;
  exchange.encode = [claim](const node_id& self, uint64_t correlation) {
    return std::visit([&](const auto& m) { return encode_message(self, correlation, m); }, claim);
  };
  auto outcome = run_exchange(c.me, c.node, std::move(exchange));
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto result = decode_payload<reputation::claim_result>(outcome.reply);
  if (!result) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", c.node.address.c_str(), result.err().describe().c_str());
    return exit_failed;
  }
  if (result->verdict != 0) {
    std::fprintf(stderr, "refused: %s\n", result->reason.c_str());
    return exit_failed;
  }
  std::printf("accepted; score at %s now %lld\n", c.node.address.c_str(), static_cast<long long>(result->score));
  return exit_ok;
}

int run_endorse(const command_spec& spec, const parsed_options& p) {
  auto subject = subject_argument(p);
  if (!subject) return usage_error(spec, subject.err().message);
  auto resource = hash_option(p, "resource");
  if (!resource) return usage_error(spec, resource.err().message);
  auto c = read_client(p, true);
  if (!c) return usage_error(spec, c.err().message);
  if (*subject == c->me.public_key) return usage_error(spec, "an agent cannot endorse itself");
  reputation::wire_message claim = reputation::sign_endorsement(
      c->me.public_key, reputation::signer_for(c->me), *subject, *resource, unix_now_us(), random_nonzero());
  if (p.has("save"))
    if (auto saved = save_claim(p.get("save"), claim); !saved.ok()) return usage_error(spec, saved.message);
  return submit(*c, claim);
}

int run_report(const command_spec& spec, const parsed_options& p) {
  auto subject = subject_argument(p);
  if (!subject) return usage_error(spec, subject.err().message);
  const uint8_t reason = reputation::reason_from_name(p.get("reason"));
  if (reason == 0)
    return usage_error(spec, "--reason: expected fraud, impersonation, spam, malformed or unresponsive");
  auto evidence = hash_option(p, "evidence");
  if (!evidence) return usage_error(spec, evidence.err().message);
  auto c = read_client(p, true);
  if (!c) return usage_error(spec, c.err().message);
  if (*subject == c->me.public_key) return usage_error(spec, "an agent cannot report itself");
  auto body = reputation::sign_report(c->me.public_key, reputation::signer_for(c->me), *subject, reason,
                                      *evidence, unix_now_us(), random_nonzero());
  reputation::wire_message claim = reputation::report_gossip{body, 255};
  if (p.has("save"))
    if (auto saved = save_claim(p.get("save"), claim); !saved.ok()) return usage_error(spec, saved.message);
  return submit(*c, claim);
}

int run_present(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 1) return usage_error(spec, "give exactly one saved claim FILE");
  auto claim = load_claim(p.positional()[0]);
  if (!claim) return usage_error(spec, claim.err().message);
  auto c = read_client(p, false);
  if (!c) return usage_error(spec, c.err().message);
  return submit(*c, *claim);
}

int run_show(const command_spec& spec, const parsed_options& p) {
  auto subject = subject_argument(p);
  if (!subject) return usage_error(spec, subject.err().message);
  auto reports_max = get_unsigned(p, "reports", 16, 0, reputation::score_reply_reports_max);
  if (!reports_max) return usage_error(spec, "--reports: " + reports_max.err().message);
  auto c = read_client(p, false);
  if (!c) return usage_error(spec, c.err().message);
  exchange_request exchange;
  exchange.service = services::reputation;
  exchange.reply_type = reputation::score_reply::type_id;
  exchange.timeout_us = c->timeout_us;
  exchange.verbose = c->verbose;
  bytes key(subject->key.begin(), subject->key.end());
  const auto wanted = static_cast<uint32_t>(*reports_max);
  exchange.encode = [key, wanted](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, reputation::score_query{key, wanted});
  };
  auto outcome = run_exchange(c->me, c->node, std::move(exchange));
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto reply = decode_payload<reputation::score_reply>(outcome.reply);
  if (!reply) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", c->node.address.c_str(), reply.err().describe().c_str());
    return exit_failed;
  }
  if (reply->status != reputation::score_ok) {
    std::fprintf(stderr, "refused: %s\n", reply->reason.c_str());
    return exit_failed;
  }
  std::printf("score %lld endorsers %u reporters %u report_weight %lld endorsements %llu\n",
              static_cast<long long>(reply->score), reply->endorsers, reply->reporters,
              static_cast<long long>(reply->report_weight), static_cast<unsigned long long>(reply->endorsements));
  size_t discarded = 0;
  const int64_t now = unix_now_us();
  for (const auto& r : reply->reports) {
    if (reputation::verify_report(r, now, reputation::config{}.clock_skew_us_max) !=
            reputation::verdict::accepted ||
        r.subject != key) {
      ++discarded;
      continue;
    }
    std::printf("report %s by %s at %s evidence %s\n", reputation::reason_name(r.reason),
                did_from_node_id(node_id::from_bytes(r.reporter.data())).c_str(), iso_time(r.issued_at_us).c_str(),
                to_hex(r.evidence_hash.data(), std::min<size_t>(8, r.evidence_hash.size())).c_str());
  }
  if (discarded > 0) std::fprintf(stderr, "%zu report(s) discarded: bad signature or subject\n", discarded);
  return exit_ok;
}

}  // namespace

int run_reputation(int argc, char** argv) {
  int code = run_subcommand("cmesh reputation", overview, argc, argv,
                            {{"endorse", endorse_spec, run_endorse},
                             {"report", report_spec, run_report},
                             {"present", present_spec, run_present},
                             {"show", show_spec, run_show}});
  exit_client(code);
}

}  // namespace cmesh::cli
