// cmesh id: identities (ed25519 keys named as did:key) and IAM sessions (docs/iam.md §11).
//   new FILE | show FILE [--jwk]                       create or show an identity
//   session --identity FILE --node ADDR ...            the passwordless handshake with a node
//   token verify TOKEN --issuer DID ...                offline check of a session token
//   token issue --identity FILE --subject DID ...      sign a session token with a key
//   revoke TOKEN --node ADDR                           revoke a token at the node that issued it
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <string>

#include "actors/iam/iam_machine.hpp"
#include "actors/iam/token.hpp"
#include "messages/codec.hpp"
#include "messages/iam_messages.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/iam_client.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

const char* overview =
    "cmesh id: identities and IAM sessions (docs/iam.md).\n"
    "\n"
    "Usage:\n"
    "  cmesh id new FILE\n"
    "  cmesh id show FILE [--jwk]\n"
    "  cmesh id session --identity FILE --node [DID@]HOST:PORT [--audience A] [--scope S] [--save FILE]\n"
    "  cmesh id token verify TOKEN (--issuer DID | --issuer-jwk JWK) [--audience A] [--scope S]\n"
    "  cmesh id token issue --identity FILE --subject DID --audience A [--scope S] [--ttl T]\n"
    "  cmesh id revoke TOKEN --node [DID@]HOST:PORT [--identity FILE]\n"
    "  cmesh id credential issue|present|verify ...     SD-JWT credentials (selective disclosure)\n"
    "\n"
    "An identity is an ed25519 key named as did:key, kept in a key file (mode 0600). A session is\n"
    "earned with the passwordless handshake: the node hands out a challenge, the key signs it, the\n"
    "node answers with a session token (a compact JWS signed by the node's key) that every protected\n"
    "service checks locally. TOKEN may be given as @FILE (e.g. a file written by session --save).\n"
    "Run 'cmesh id <subcommand> --help' for the options.\n";


command_spec new_spec() {
  command_spec spec;
  spec.name = "cmesh id new";
  spec.summary = "Create a fresh identity (ed25519 key) in FILE and print its did:key.";
  spec.usage = "cmesh id new FILE";
  spec.epilog =
      "The file is created with mode 0600 and never overwritten.\n"
      "Exit codes: 0 created, 1 cannot write (exists, permissions), 2 bad usage.\n"
      "Example:\n  cmesh id new node1.key && cmesh node --identity node1.key\n";
  return spec;
}

command_spec show_spec() {
  command_spec spec;
  spec.name = "cmesh id show";
  spec.summary = "Print the did:key of the identity in FILE (or its public JWK).";
  spec.usage = "cmesh id show FILE [--jwk]";
  spec.options = {
      {"jwk", "", "print the public key as a JWK (RFC 8037: {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":...}) instead", ""},
  };
  spec.epilog =
      "Refuses key files that others can read. Exit codes: 0 shown, 1 unreadable, 2 bad usage.\n";
  return spec;
}

command_spec session_spec() {
  command_spec spec;
  spec.name = "cmesh id session";
  spec.summary = "Run the passwordless handshake with a node and print the session token it issues.";
  spec.usage = "cmesh id session --identity FILE --node [DID@]HOST:PORT [--audience A] [--scope S] [--save FILE]";
  spec.options = {
      {"identity", "FILE", "the key the session is for (it signs the node's challenge)", ""},
      {"node", "[DID@]HOST:PORT", "the node whose IAM issues the token", ""},
      {"audience", "A", "the service or router the session is for", default_audience},
      {"scope", "S", "requested scopes, space-separated (the node grants those its policy allows; empty = identity only)", ""},
      {"save", "FILE", "also write the token there (mode 0600, replaced if present)", ""},
      {"timeout", "T", "stop waiting for each answer after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
  spec.epilog =
      "Two round trips: a challenge for the audience, then the answer signed with --identity.\n"
      "The token is checked here before it is printed (signed by the node that was dialed, for\n"
      "this identity and audience). Output, one item per line:\n"
      "  token TOKEN / issuer DID / subject DID / audience A / scope S / expires_at UNIX (ISO) /\n"
      "  token_id JTI\n"
      "Exit codes: 0 token issued, 1 refused (the node's reason on stderr), 2 bad usage,\n"
      "3 no answer in time or the node cannot be reached.\n"
      "Example:\n"
      "  cmesh id session --identity me.key --node 127.0.0.1:7001 --scope \"state.read events.read\" \\\n"
      "      --save me.token\n";
  return spec;
}

command_spec verify_spec() {
  command_spec spec;
  spec.name = "cmesh id token verify";
  spec.summary = "Check a session token offline: issuer signature, lifetime, audience, scope.";
  spec.usage = "cmesh id token verify TOKEN (--issuer DID | --issuer-jwk JWK) [--audience A] [--scope S]";
  spec.options = {
      {"issuer", "DID", "the did:key of the node (or key) whose tokens you accept", ""},
      {"issuer-jwk", "JWK", "the issuer's public key as an Ed25519 JWK (JSON text) instead of --issuer", ""},
      {"audience", "A", "the audience the token must be for", "not checked"},
      {"scope", "S", "scopes the token must carry, space-separated", "none"},
      {"at", "UNIX_SECONDS", "check as of this time instead of now", "now"},
      {"skew", "T", "tolerated clock difference", "30s"},
  };
  spec.epilog =
      "Checks in the order of docs/iam.md §3 (the issuer key given here, never one named in the\n"
      "token). Revocation is the issuing node's to know and is not checked here. On success prints\n"
      "'valid' then the claims, one per line (issuer, subject, audience, scope, issued_at,\n"
      "expires_at, token_id); on a refusal prints 'refused: KIND: REASON (CMTP 401|403)' on stderr.\n"
      "Exit codes: 0 valid, 1 refused, 2 bad usage.\n";
  return spec;
}

command_spec issue_spec() {
  command_spec spec;
  spec.name = "cmesh id token issue";
  spec.summary = "Sign a session token with a key (for tools and tests that verify our tokens).";
  spec.usage = "cmesh id token issue --identity FILE --subject DID --audience A [--scope S] [--ttl T]";
  spec.options = {
      {"identity", "FILE", "the issuer's key file (iss = its did:key)", ""},
      {"subject", "DID", "the holder the token is for (sub)", ""},
      {"audience", "A", "the service the token is for (aud)", ""},
      {"scope", "S", "scopes granted, space-separated", ""},
      {"ttl", "T", "lifetime (1s to 24h, whole seconds)", "1h"},
  };
  spec.epilog =
      "Prints the token: {\"alg\":\"Ed25519\",\"typ\":\"cmesh-session+jwt\"} over iss, sub, aud, iat,\n"
      "exp, scope and a random jti. Exit codes: 0 printed, 1 cannot read the key, 2 bad usage.\n";
  return spec;
}

command_spec revoke_spec() {
  command_spec spec;
  spec.name = "cmesh id revoke";
  spec.summary = "Revoke a session token at the node that issued it (logout).";
  spec.usage = "cmesh id revoke TOKEN --node [DID@]HOST:PORT [--identity FILE]";
  spec.options = {
      {"node", "[DID@]HOST:PORT", "the node that issued the token", ""},
      {"identity", "FILE", "the client's key file for the transport handshake", "a fresh key"},
      {"timeout", "T", "stop waiting for the answer after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
  spec.epilog =
      "Whoever holds a token may revoke it. The node refuses tokens it did not issue. After it, the\n"
      "node's IAM (and every service watching it) refuses the token until it would have expired.\n"
      "Exit codes: 0 revoked (or already expired), 1 refused (reason on stderr), 2 bad usage,\n"
      "3 no answer in time or the node cannot be reached.\n";
  return spec;
}

int64_t unix_now_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

std::string iso_time(int64_t unix_s) {
  std::time_t seconds = static_cast<std::time_t>(unix_s);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// TOKEN or @FILE (first line, surrounding whitespace removed).
result<std::string> token_argument(const parsed_options& p) {
  if (p.positional().size() != 1) return error{errc::invalid_argument, "give exactly one TOKEN (or @FILE)"};
  std::string text = p.positional()[0];
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    if (!in) return error{errc::invalid_argument, "cannot read " + text.substr(1)};
    std::getline(in, text);
  }
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  if (first == std::string::npos) return error{errc::invalid_argument, "the token is empty"};
  return text.substr(first, last - first + 1);
}

// Whole seconds in [min_s, max_s] from a duration option.
result<int64_t> seconds_option(const parsed_options& p, const std::string& name, const std::string& fallback,
                               int64_t min_s, int64_t max_s) {
  auto us = sim::parse_duration_us(p.get(name, fallback));
  if (!us || *us % 1'000'000 != 0 || *us / 1'000'000 < min_s || *us / 1'000'000 > max_s)
    return error{errc::invalid_argument, "--" + name + ": expected whole seconds from " + std::to_string(min_s) +
                                             "s to " + std::to_string(max_s) + "s, e.g. 30s or 1h"};
  return *us / 1'000'000;
}

void print_claims(const iam::session_claims& claims) {
  std::printf("issuer %s\n", claims.issuer.c_str());
  std::printf("subject %s\n", claims.subject.c_str());
  std::printf("audience %s\n", claims.audience.c_str());
  std::printf("scope %s\n", iam::join_scope(claims.scopes).c_str());
  std::printf("issued_at %lld (%s)\n", static_cast<long long>(claims.issued_at_s), iso_time(claims.issued_at_s).c_str());
  std::printf("expires_at %lld (%s)\n", static_cast<long long>(claims.expires_at_s),
              iso_time(claims.expires_at_s).c_str());
  std::printf("token_id %s\n", claims.token_id.c_str());
}

// ---- new, show ----------------------------------------------------------------------------------

int run_new(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 1) return usage_error(spec, "give exactly one FILE");
  crypto_init();
  auto id = identity::generate();
  if (auto s = write_identity_file(p.positional()[0], id); !s.ok()) {
    std::fprintf(stderr, "cmesh id: %s\n", s.describe().c_str());
    return exit_failed;
  }
  std::printf("%s\n", id.did().c_str());
  return exit_ok;
}

int run_show(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 1) return usage_error(spec, "give exactly one FILE");
  crypto_init();
  auto id = read_identity_file(p.positional()[0]);
  if (!id) {
    std::fprintf(stderr, "cmesh id: %s\n", id.err().describe().c_str());
    return exit_failed;
  }
  if (p.has("jwk")) std::printf("%s\n", json::dump(jose::public_jwk(id->public_key)).c_str());
  else std::printf("%s\n", id->did().c_str());
  return exit_ok;
}

// ---- over the wire ------------------------------------------------------------------------------

// --identity is required for a session: the session is for that key.
result<client_options> read_client(const parsed_options& p, bool need_identity) {
  return read_client_options(p, need_identity ? "the session is for that key" : "");
}

int run_session(const command_spec& spec, const parsed_options& p) {
  if (!p.positional().empty()) return usage_error(spec, "unexpected argument '" + p.positional()[0] + "'");
  const std::string audience = p.get("audience", default_audience);
  const std::string scope = p.get("scope", "");
  if (auto scopes = iam::parse_scope(scope); !scopes) return usage_error(spec, "--scope: " + scopes.err().message);
  auto c = read_client(p, true);
  if (!c) return usage_error(spec, c.err().message);

  int code = exit_failed;
  auto granted = open_session(*c, audience, scope, code);
  if (!granted) return code;
  const auto* claims = &granted->claims;
  if (p.has("save"))
    if (auto saved = save_token(p.get("save"), granted->token); !saved.ok()) {
      std::fprintf(stderr, "cmesh id session: %s\n", saved.message.c_str());
      return exit_failed;
    }
  std::printf("token %s\n", granted->token.c_str());
  print_claims(*claims);
  return exit_ok;
}

int run_revoke(const command_spec& spec, const parsed_options& p) {
  auto token = token_argument(p);
  if (!token) return usage_error(spec, token.err().message);
  auto c = read_client(p, false);
  if (!c) return usage_error(spec, c.err().message);
  int code = exit_failed;
  auto done = revoke_session(*c, *token, code);
  if (!done) return code;
  std::printf("revoked%s%s\n", done->empty() ? "" : ": ", done->c_str());
  return exit_ok;
}

// ---- offline tokens -----------------------------------------------------------------------------

int run_verify(const command_spec& spec, const parsed_options& p) {
  auto token = token_argument(p);
  if (!token) return usage_error(spec, token.err().message);
  if (p.has("issuer") == p.has("issuer-jwk")) return usage_error(spec, "give exactly one of --issuer and --issuer-jwk");
  crypto_init();
  node_id issuer;
  if (p.has("issuer")) {
    auto key = node_id_from_did(p.get("issuer"));
    if (!key) return usage_error(spec, "--issuer: " + key.err().message);
    issuer = *key;
  } else {
    auto jwk = jose::parse_json_object(p.get("issuer-jwk"), "--issuer-jwk");
    if (!jwk) return usage_error(spec, jwk.err().message);
    auto key = jose::node_id_from_jwk(*jwk);
    if (!key) return usage_error(spec, "--issuer-jwk: " + key.err().message);
    issuer = *key;
  }
  const std::string required = p.get("scope", "");
  if (auto scopes = iam::parse_scope(required); !scopes) return usage_error(spec, "--scope: " + scopes.err().message);
  int64_t now = unix_now_s();
  if (p.has("at")) {
    auto at = get_unsigned(p, "at", 0, 0, uint64_t{1} << 40);
    if (!at) return usage_error(spec, "--at: " + at.err().message);
    now = static_cast<int64_t>(*at);
  }
  auto skew = seconds_option(p, "skew", "30s", 0, 3600);
  if (!skew) return usage_error(spec, skew.err().message);

  auto refuse = [](const iam::iam_error& err) {
    std::fprintf(stderr, "refused: %s (CMTP %d)\n", err.describe().c_str(), iam::cmtp_status(err.kind));
    return exit_failed;
  };
  auto authentic = iam::authenticate_session_token(*token, issuer);
  if (!authentic) return refuse(authentic.err());
  iam::token_check check;
  check.issuer_key = issuer;
  check.audience = p.has("audience") ? p.get("audience") : authentic->audience;
  check.now_s = now;
  check.required_scope = required;
  check.clock_skew_s = *skew;
  auto checked = iam::check_session_claims(*authentic, check);
  if (!checked) return refuse(checked.err());
  std::printf("valid\n");
  print_claims(*checked);
  if (!p.has("audience")) std::fprintf(stderr, "note: audience not checked (give --audience)\n");
  return exit_ok;
}

int run_issue(const command_spec& spec, const parsed_options& p) {
  if (!p.positional().empty()) return usage_error(spec, "unexpected argument '" + p.positional()[0] + "'");
  for (const char* name : {"identity", "subject", "audience"})
    if (!p.has(name)) return usage_error(spec, std::string("--") + name + " is required");
  auto subject = node_id_from_did(p.get("subject"));
  if (!subject) return usage_error(spec, "--subject: " + subject.err().message);
  auto scopes = iam::parse_scope(p.get("scope", ""));
  if (!scopes) return usage_error(spec, "--scope: " + scopes.err().message);
  auto ttl = seconds_option(p, "ttl", "1h", 1, 24 * 3600);
  if (!ttl) return usage_error(spec, ttl.err().message);
  auto me = client_identity(p.get("identity"));
  if (!me) {
    std::fprintf(stderr, "cmesh id token issue: %s\n", me.err().message.c_str());
    return exit_failed;
  }
  iam::session_claims claims;
  claims.issuer = me->did();
  claims.subject = did_from_node_id(*subject);
  claims.audience = p.get("audience");
  claims.issued_at_s = unix_now_s();
  claims.expires_at_s = claims.issued_at_s + *ttl;
  claims.scopes = *scopes;
  claims.token_id = iam::make_token_id(jose::secure_random_source());
  auto token = iam::issue_session_token(claims, jose::signer_for(*me));
  if (!token) return usage_error(spec, token.err().message);
  std::printf("%s\n", token->c_str());
  return exit_ok;
}

}  // namespace

int run_id(int argc, char** argv) {
  if (argc < 1) {
    std::fprintf(stderr, "cmesh id: give a subcommand: new, show, session, token, revoke or credential\n\n%s", overview);
    return exit_usage;
  }
  const std::string what = argv[0];
  int code = exit_usage;
  if (what == "--help" || what == "-h" || what == "help") {
    std::fputs(overview, stdout);
    return exit_ok;
  } else if (what == "new") {
    return run_with_options(argc - 1, argv + 1, new_spec(), run_new);
  } else if (what == "show") {
    return run_with_options(argc - 1, argv + 1, show_spec(), run_show);
  } else if (what == "token") {
    const std::string action = argc >= 2 ? argv[1] : "";
    if (action == "verify") return run_with_options(argc - 2, argv + 2, verify_spec(), run_verify);
    if (action == "issue") return run_with_options(argc - 2, argv + 2, issue_spec(), run_issue);
    if (action == "--help" || action == "-h") {
      std::fputs(overview, stdout);
      return exit_ok;
    }
    std::fprintf(stderr, "cmesh id token: expected 'verify' or 'issue'\n\n%s", overview);
    return exit_usage;
  } else if (what == "credential") {
    return run_credential(argc - 1, argv + 1);
  } else if (what == "session") {
    code = run_with_options(argc - 1, argv + 1, session_spec(), run_session);
  } else if (what == "revoke") {
    code = run_with_options(argc - 1, argv + 1, revoke_spec(), run_revoke);
  } else {
    std::fprintf(stderr, "cmesh id: unknown subcommand '%s'\n\n%s", what.c_str(), overview);
    return exit_usage;
  }
  exit_client(code);
}

}  // namespace cmesh::cli
