// cmesh kv / cmesh name: a one-shot client of the replicated key/value service and registrar
// (actors/kv). It runs its own small actor system with the real transport, authenticates to one
// node with the handshake (the node learns the caller's identity from it, never from the
// request), sends one kv::request envelope and prints the kv::response with that correlation
// (runtime/cli/client_exchange.hpp).
//
// A follower forwards the request to the leader itself, so any member normally answers. A 503
// that names a leader and its address is retried once, with the same (client_id, sequence), so
// a write that did apply is not applied twice.
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <memory>
#include <string>

#include "messages/codec.hpp"
#include "messages/kv_messages.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/iam_client.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

std::vector<option_spec> common_options(const std::string& identity_help) {
  return {
      {"node", "[DID@]HOST:PORT", "the node to ask (any member of the group); with DID@ the client refuses anyone but that identity there", ""},
      {"identity", "FILE", identity_help, ""},
      {"timeout", "T", "give up after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
}

const char* exit_codes_text =
    "Exit codes: 0 success (2xx), 1 refused by the service (4xx/5xx, printed on stderr as\n"
    "'STATUS reason'), 2 bad usage, 3 timeout, cannot connect or connection lost.";

command_spec kv_spec() {
  command_spec spec;
  spec.name = "cmesh kv";
  spec.summary = "Read and write the replicated key/value store of a Raft group (nodes started with "
                 "--raft-member, or 'cmesh up --raft').";
  spec.usage =
      "cmesh kv get KEY --node [DID@]HOST:PORT [options]\n"
      "       cmesh kv put KEY VALUE --node ...\n"
      "       cmesh kv del KEY --node ...\n"
      "       cmesh kv cas KEY (--expect OLD | --expect-absent) NEW --node ...";
  spec.options = common_options("identity key file to authenticate with (default: a fresh one in memory)");
  spec.options.push_back({"expect", "OLD", "cas: the value the key must hold", ""});
  spec.options.push_back({"expect-absent", "", "cas: the key must be absent", ""});
  spec.epilog = std::string(
                    "get prints the value on stdout; writes print 'STATUS ok (index N)'.\n"
                    "Example:\n"
                    "  cmesh kv put greeting hello --node 127.0.0.1:7001\n"
                    "  cmesh kv get greeting --node 127.0.0.1:7002\n"
                    "  cmesh kv cas greeting --expect hello bonjour --node 127.0.0.1:7003\n") +
                exit_codes_text;
  return spec;
}

command_spec name_spec() {
  command_spec spec;
  spec.name = "cmesh name";
  spec.summary = "Register and resolve registrar names (NAME.mcom -> FQMN), owned by the identity "
                 "that registered them.";
  spec.usage =
      "cmesh name register NAME FQMN --identity FILE --node [DID@]HOST:PORT [options]\n"
      "       cmesh name resolve NAME --node ...\n"
      "       cmesh name transfer NAME DID --identity FILE --node ...\n"
      "       cmesh name release NAME --identity FILE --node ...";
  spec.options = common_options(
      "identity key file of the owner (required for register, transfer, release)");
  spec.epilog = std::string(
                    "resolve prints the target on stdout; the others print 'STATUS ok (index N)'.\n"
                    "Names: labels of letters, digits and '-', ending in .mcom, case-insensitive.\n"
                    "Example:\n"
                    "  cmesh id new me.key\n"
                    "  cmesh name register helloWorld.mcom 0xS:0x001 --identity me.key --node 127.0.0.1:7001\n"
                    "  cmesh name resolve helloWorld.mcom --node 127.0.0.1:7002\n") +
                exit_codes_text;
  return spec;
}

// ---- one request --------------------------------------------------------------------------------

struct outcome {
  exchange_outcome exchange;
  kv::response response;  // when exchange.kind == answered
  seed_spec answered_at;  // the node that answered (the leader, after a redirect)
};

// Runs one request against the node. A 503 that names a leader and its address is retried
// there once, with the same (client_id, sequence), so a write that did apply is not applied twice.
outcome run_request(const identity& me, const seed_spec& node, const kv::request& request,
                    int64_t timeout_us, bool verbose) {
  exchange_request exchange;
  exchange.service = services::kv;
  exchange.reply_type = kv::response::type_id;
  exchange.timeout_us = timeout_us;
  exchange.verbose = verbose;
  exchange.encode = [request](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, request);
  };
  auto redirected = std::make_shared<seed_spec>(node);
  exchange.judge = [redirected](const node_id&, const envelope& reply) {
    reply_decision decision;
    auto response = decode_payload<kv::response>(reply);
    // A node that does not know the leader's address cannot forward; it names the leader instead.
    if (response && response->status == 503 && response->leader.size() == 32 &&
        !response->leader_address.empty()) {
      decision.what = reply_decision::action::redirect;
      decision.redirect_to = node_id::from_bytes(response->leader.data());
      decision.redirect_address = response->leader_address;
      *redirected = seed_spec{response->leader_address, decision.redirect_to};
    }
    return decision;
  };
  outcome result;
  result.exchange = run_exchange(me, node, std::move(exchange));
  result.answered_at = *redirected;
  if (result.exchange.kind == exchange_kind::answered) {
    auto response = decode_payload<kv::response>(result.exchange.reply);
    if (response) {
      result.response = std::move(*response);
    } else {
      result.response.status = 500;
      result.response.reason = "undecodable answer: " + response.err().describe();
    }
  }
  return result;
}

const char* status_text(uint16_t status) {
  switch (status) {
    case 200: return "ok";
    case 201: return "created";
    case 400: return "bad request";
    case 403: return "forbidden";
    case 404: return "not found";
    case 408: return "timeout";
    case 409: return "conflict";
    case 413: return "too large";
    case 500: return "internal error";
    case 503: return "unavailable";
    default: return "error";
  }
}

// Prints the outcome; returns the exit code.
int report(const outcome& result, kv::op operation) {
  if (result.exchange.kind != exchange_kind::answered) return report_unreachable(result.exchange);
  const auto& r = result.response;
  std::string reason = r.reason.empty() ? status_text(r.status) : r.reason;
  if (r.status >= 200 && r.status < 300) {
    if (operation == kv::op::get || operation == kv::op::name_resolve) {
      std::fwrite(r.value.data(), 1, r.value.size(), stdout);  // values may hold any bytes
      std::fputc('\n', stdout);
    } else {
      std::string note;
      if (operation == kv::op::del && !r.found) note = ", the key was absent";
      std::printf("%u %s%s (index %llu)\n", r.status, reason.c_str(), note.c_str(),
                  static_cast<unsigned long long>(r.index));
    }
    return exit_ok;
  }
  std::string extra;
  if (r.status == 503) {
    if (r.leader.size() == 32)
      extra = " (leader " + did_from_node_id(node_id::from_bytes(r.leader.data())) +
              (r.leader_address.empty() ? std::string() : " at " + r.leader_address) + ")";
  } else if (r.status == 409 && operation == kv::op::cas && r.found) {
    extra = " (current value: " + r.value + ")";
  }
  std::fprintf(stderr, "%u %s%s\n", r.status, reason.c_str(), extra.c_str());
  return exit_failed;
}

struct common {
  seed_spec node;
  int64_t timeout_us = 5'000'000;
  std::optional<identity> me;  // empty = none given
  bool verbose = false;
};

// Reads --node, --timeout, --identity. Prints the usage error and returns nullopt on failure.
std::optional<common> read_common(const command_spec& spec, const parsed_options& p,
                                  bool identity_required) {
  auto fail = [&](const std::string& message) -> std::optional<common> {
    std::fprintf(stderr, "%s: %s\n", spec.name.c_str(), message.c_str());
    return std::nullopt;
  };
  common c;
  if (!p.has("node")) return fail("--node [DID@]HOST:PORT is required (see " + spec.name + " --help)");
  auto node = parse_seed_spec(p.get("node"));
  if (!node) return fail("--node: " + node.err().message);
  c.node = *node;
  auto timeout = sim::parse_duration_us(p.get("timeout", "5s"));
  if (!timeout) return fail("--timeout: " + timeout.err().message);
  if (*timeout <= 0) return fail("--timeout: must be more than 0");
  c.timeout_us = *timeout;
  c.verbose = p.has("verbose");
  if (p.has("identity")) {
    auto loaded = read_identity_file(p.get("identity"));
    if (!loaded) return fail("--identity: " + loaded.err().describe());
    c.me = *loaded;
  } else if (identity_required) {
    return fail("--identity FILE is required: the caller's identity owns the name "
                "(create one with: cmesh id new FILE)");
  }
  return c;
}

int execute(const common& c, const kv::request& request) {
  auto me = c.me ? *c.me : identity::generate();
  auto result = run_request(me, c.node, request, c.timeout_us, c.verbose);
  const bool scope_missing = result.response.status == 403 && result.response.reason.rfind("insufficient_scope", 0) == 0;
  if (result.exchange.kind == exchange_kind::answered && (result.response.status == 401 || scope_missing)) {
    // The node serves only keys that hold a session of it with the scope (docs/iam.md §13): open
    // one, retry once.
    int code = exit_failed;
    client_options at{me, result.answered_at, c.timeout_us, c.verbose};
    if (!ensure_session(at, "state.read state.write", code)) exit_client(code);
    result = run_request(me, result.answered_at, request, c.timeout_us, c.verbose);
  }
  exit_client(report(result, static_cast<kv::op>(request.operation)));
}

kv::request make_request(kv::op operation, std::string key, std::string value = {}) {
  kv::request r;
  r.operation = static_cast<uint8_t>(operation);
  r.key = std::move(key);
  r.value = std::move(value);
  bool read = operation == kv::op::get || operation == kv::op::name_resolve;
  if (!read) {
    // Exactly-once: a fresh client and sequence 1, so a retry of this very request is
    // recognised by the state machine and answered without applying it again.
    r.client_id = random_nonzero();
    r.sequence = 1;
  }
  return r;
}


}  // namespace

int run_kv(int argc, char** argv) {
  auto spec = kv_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.empty()) return usage_error(spec, "expected get, put, del or cas");
  const std::string& verb = args[0];
  bool is_cas = verb == "cas";
  if (!is_cas && (parsed->has("expect") || parsed->has("expect-absent")))
    return usage_error(spec, "--expect and --expect-absent are for cas");
  kv::request request;
  if (verb == "get" || verb == "del") {
    if (args.size() != 2) return usage_error(spec, verb + " takes one KEY");
    request = make_request(verb == "get" ? kv::op::get : kv::op::del, args[1]);
  } else if (verb == "put") {
    if (args.size() != 3) return usage_error(spec, "put takes KEY VALUE");
    request = make_request(kv::op::put, args[1], args[2]);
  } else if (is_cas) {
    if (args.size() != 3) return usage_error(spec, "cas takes KEY NEW and --expect OLD or --expect-absent");
    bool expect = parsed->has("expect");
    bool absent = parsed->has("expect-absent");
    if (expect == absent) return usage_error(spec, "cas needs exactly one of --expect OLD and --expect-absent");
    request = make_request(kv::op::cas, args[1], args[2]);
    request.expect_present = expect;
    if (expect) request.expected = parsed->all("expect").back();
  } else {
    return usage_error(spec, "unknown kv command '" + verb + "': expected get, put, del or cas");
  }
  crypto_init();
  auto c = read_common(spec, *parsed, false);
  if (!c) return exit_usage;
  return execute(*c, request);
}

int run_name(int argc, char** argv) {
  auto spec = name_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.empty()) return usage_error(spec, "expected register, resolve, transfer or release");
  const std::string& verb = args[0];
  kv::request request;
  crypto_init();
  if (verb == "register") {
    if (args.size() != 3) return usage_error(spec, "register takes NAME FQMN");
    request = make_request(kv::op::name_register, args[1], args[2]);
  } else if (verb == "resolve") {
    if (args.size() != 2) return usage_error(spec, "resolve takes one NAME");
    request = make_request(kv::op::name_resolve, args[1]);
  } else if (verb == "transfer") {
    if (args.size() != 3) return usage_error(spec, "transfer takes NAME DID");
    auto to = node_id_from_did(args[2]);
    if (!to) return usage_error(spec, "transfer: '" + args[2] + "' is not a did:key: " + to.err().message);
    request = make_request(kv::op::name_transfer, args[1],
                           std::string(to->key.begin(), to->key.end()));
  } else if (verb == "release") {
    if (args.size() != 2) return usage_error(spec, "release takes one NAME");
    request = make_request(kv::op::name_release, args[1]);
  } else {
    return usage_error(spec, "unknown name command '" + verb +
                                 "': expected register, resolve, transfer or release");
  }
  // Resolving needs no ownership, so any identity (a fresh one by default) will do.
  auto c = read_common(spec, *parsed, verb != "resolve");
  if (!c) return exit_usage;
  return execute(*c, request);
}

}  // namespace cmesh::cli
