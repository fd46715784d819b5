// cmesh call: one CMTP request to a node's router (docs/router.md). Earns a session token with the
// IAM handshake (docs/iam.md §2) the first time, keeps it in a session file (mode 0600) and reuses
// it until it is about to expire or the router refuses it (401: one new handshake, one retry).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "actors/iam/token.hpp"
#include "actors/router/fqmn.hpp"
#include "actors/router/router_machine.hpp"
#include "messages/cmtp_messages.hpp"
#include "messages/codec.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/iam_client.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/json.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

// What a session asks for when --scope is not given: everything the default IAM policy grants.
constexpr const char* default_call_scope =
    "state.read state.write events.read events.publish names.resolve names.register proxy consensus";

command_spec call_spec() {
  command_spec spec;
  spec.name = "cmesh call";
  spec.summary = "Send one CMTP request (an FQMN) to a node's router and print the response.";
  spec.usage = "cmesh call FQMN --node [DID@]HOST:PORT --identity FILE [--data JSON | --body TEXT] [options]";
  spec.options = {
      {"node", "[DID@]HOST:PORT", "the router's node", ""},
      {"identity", "FILE", "your key file (the session is for it)", ""},
      {"data", "JSON", "the request body, checked to be one JSON value", ""},
      {"body", "TEXT", "the request body as given", ""},
      {"scope", "S", "scopes to ask for in a new session", default_call_scope},
      {"handshake", "ROUTE", "how a new session is opened: iam (the node's IAM service) or router (CMTP 0xI:challenge and 0xI:session)", "iam"},
      {"session", "FILE", "where the session token is kept (default: next to --identity, one per node: KEYFILE.HOST_PORT.session)", ""},
      {"tx", "ID", "the transaction id ([A-Za-z0-9_-], default random)", ""},
      {"timeout", "T", "stop waiting for an answer after this long (exit 3)", "5s"},
      {"verbose", "", "print the session steps and transport events on stderr", ""},
  };
  spec.epilog =
      "Prints the response body on stdout and 'STATUS REASON' and the audit hash on stderr.\n"
      "Exit codes: 0 for 2xx, 1 for any other status or a refused handshake, 2 bad usage,\n"
      "3 no answer in time or the node cannot be reached.\n"
      "Examples (the seed's flow):\n"
      "  cmesh call 0xRW:register:helloWorld.mcom:0xS:0x001 --identity me.key --node 127.0.0.1:7001\n"
      "  cmesh call 0xSW:0x001:hello_world --data '\"hi\"' --identity me.key --node 127.0.0.1:7001\n"
      "  cmesh call 0xR:helloWorld.mcom --identity me.key --node 127.0.0.1:7001\n"
      "0xI:challenge and 0xI:session are sent without a token (they are how a session starts).\n";
  return spec;
}


int64_t unix_now_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

// A session file holds "ISSUER_DID TOKEN". Returns the token if it is still good for `scope` at
// the node (issuer pinned when --node names a DID) for at least another 30 s.
std::optional<std::string> cached_token(const std::string& path, const seed_spec& node, std::string_view scope) {
  std::ifstream in(path);
  std::string issuer, token;
  if (!(in >> issuer >> token)) return std::nullopt;
  auto key = node_id_from_did(issuer);
  if (!key) return std::nullopt;
  if (!node.pinned.is_zero() && node.pinned != *key) return std::nullopt;
  auto claims = iam::authenticate_session_token(token, *key);
  if (!claims || claims->expires_at_s <= unix_now_s() + 30) return std::nullopt;
  auto needed = iam::parse_scope(scope);
  if (!needed || !iam::covers(claims->scopes, *needed)) return std::nullopt;
  return token;
}

std::optional<std::string> new_session(const iam_client& c, const std::string& scope, const std::string& path,
                                       handshake_route route, bool verbose, int& code) {
  auto granted = open_session(c, default_audience, scope, code, route);
  if (!granted) return std::nullopt;
  if (verbose)
    std::fprintf(stderr, "session: %s for %s, scope '%s', expires %lld\n", granted->claims.token_id.c_str(),
                 granted->claims.subject.c_str(), iam::join_scope(granted->claims.scopes).c_str(),
                 static_cast<long long>(granted->claims.expires_at_s));
  if (auto saved = save_token(path, did_from_node_id(granted->node) + " " + granted->token); !saved.ok())
    std::fprintf(stderr, "warning: session not kept: %s\n", saved.message.c_str());
  return granted->token;
}

int run(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 1) return usage_error(spec, "give exactly one FQMN");
  const std::string fqmn_text = p.positional()[0];
  router::fqmn_error problem;
  auto parsed = router::parse_fqmn(fqmn_text, &problem);
  if (!parsed) {
    std::fprintf(stderr, "cmesh call: bad FQMN\n%s\n", problem.render(fqmn_text).c_str());
    return exit_usage;
  }
  auto c = read_client_options(p, "requests are made as someone");
  if (!c) return usage_error(spec, c.err().message);
  if (p.has("data") && p.has("body")) return usage_error(spec, "give --data or --body, not both");
  std::string body = p.get("body");
  if (p.has("data")) {
    json::parse_error bad;
    if (!json::parse(p.get("data"), &bad)) return usage_error(spec, "--data is not JSON: " + bad.message);
    body = p.get("data");
  }
  const std::string scope = p.get("scope", default_call_scope);
  if (auto scopes = iam::parse_scope(scope); !scopes) return usage_error(spec, "--scope: " + scopes.err().message);
  std::string tx = p.get("tx");
  if (tx.empty()) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random_nonzero()));
    tx = text;
  }
  if (!router::valid_tx(tx)) return usage_error(spec, "--tx: 1 to 64 characters of [A-Za-z0-9_-]");
  const std::string route_name = p.get("handshake", "iam");
  if (route_name != "iam" && route_name != "router") return usage_error(spec, "--handshake: iam or router");
  const handshake_route route = route_name == "router" ? handshake_route::router : handshake_route::iam_service;
  // The handshake's own steps carry no token.
  const bool tokenless = fqmn_text == "0xI:challenge" || fqmn_text == "0xI:session";
  const bool verbose = c->verbose;
  const seed_spec* node = &c->node;
  std::string node_part = node->address;
  for (auto& ch : node_part)
    if (ch == ':' || ch == '/') ch = '_';
  const std::string session_path = p.get("session", p.get("identity") + "." + node_part + ".session");

  int code = exit_failed;
  auto token = tokenless ? std::optional<std::string>("")
                         : cached_token(session_path, *node, std::string(router::required_scope(*parsed)));
  const bool from_cache = token.has_value() && !tokenless;
  if (!token) token = new_session(*c, scope, session_path, route, verbose, code);
  if (!token) return code;

  for (int attempt = 0;; ++attempt) {
    cmtp::request request;
    request.tx = tx;
    request.fqmn = fqmn_text;
    request.token = *token;
    request.body.assign(body.begin(), body.end());
    exchange_request exchange;
    exchange.service = services::cmtp;
    exchange.reply_type = cmtp::response::type_id;
    exchange.timeout_us = c->timeout_us;
    exchange.verbose = verbose;
    exchange.encode = [request](const node_id& self, uint64_t correlation) {
      return encode_message(self, correlation, request);
    };
    auto outcome = run_exchange(c->me, *node, std::move(exchange));
    if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
    auto response = decode_payload<cmtp::response>(outcome.reply);
    if (!response) {
      std::fprintf(stderr, "malformed answer from %s: %s\n", node->address.c_str(), response.err().describe().c_str());
      return exit_failed;
    }
    if (response->status == 401 && from_cache && attempt == 0) {
      // The kept session no longer works (revoked, or the node restarted with a new policy).
      if (verbose) std::fprintf(stderr, "401 with the kept session (%s): new handshake\n", response->reason.c_str());
      token = new_session(*c, scope, session_path, route, verbose, code);
      if (!token) return code;
      continue;
    }
    std::fwrite(response->body.data(), 1, response->body.size(), stdout);
    if (!response->body.empty() && response->body.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "%u%s%s\n", response->status, response->reason.empty() ? "" : " ", response->reason.c_str());
    if (!response->audit.empty()) std::fprintf(stderr, "tx %s audit %s\n", tx.c_str(), to_hex(response->audit.data(), response->audit.size()).c_str());
    return response->status >= 200 && response->status < 300 ? exit_ok : exit_failed;
  }
}

}  // namespace

int run_call(int argc, char** argv) { exit_client(run_with_options(argc, argv, call_spec(), run)); }

}  // namespace cmesh::cli
