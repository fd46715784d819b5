// cmesh id credential: SD-JWT attribute credentials (RFC 9901, docs/iam.md §5), offline.
//   issue   an issuer signs salted digests of attributes for a holder's key
//   present the holder discloses only the attributes asked for, bound to its key and the
//           verifier's nonce by a key-binding JWT
//   verify  a verifier checks a presentation against the issuer it trusts, its audience and nonce
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "actors/iam/sd_jwt.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/json.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

const char* overview =
    "cmesh id credential: SD-JWT credentials (selective disclosure, RFC 9901).\n"
    "\n"
    "Usage:\n"
    "  cmesh id credential issue --identity ISSUER.key --holder DID --claims JSON [--visible JSON] [--ttl T]\n"
    "  cmesh id credential present CREDENTIAL --identity HOLDER.key --disclose NAME[,NAME] --audience A --nonce N\n"
    "  cmesh id credential verify PRESENTATION --issuer DID --audience A --nonce N\n"
    "\n"
    "CREDENTIAL and PRESENTATION may be given as @FILE. --claims are the selectively disclosable\n"
    "attributes (one salted digest each); --visible ones are always shown. A presentation carries\n"
    "only the disclosures named, signed by the holder's key for the verifier's audience and nonce.\n";

int64_t unix_now_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

std::vector<option_spec> identity_option(const char* what) { return {{"identity", "FILE", what, ""}}; }

command_spec issue_spec() {
  command_spec s;
  s.name = "cmesh id credential issue";
  s.summary = "Sign an SD-JWT credential for a holder's key.";
  s.usage = "cmesh id credential issue --identity ISSUER.key --holder DID --claims JSON [--visible JSON] [--ttl T]";
  s.options = identity_option("the issuer's key file");
  s.options.push_back({"holder", "DID", "the holder's did:key (only its key can present the credential)", ""});
  s.options.push_back({"claims", "JSON", "an object of selectively disclosable attributes", ""});
  s.options.push_back({"visible", "JSON", "an object of attributes always shown", "{}"});
  s.options.push_back({"subject", "S", "a sub claim (left out by default: a stable sub links presentations)", ""});
  s.options.push_back({"ttl", "T", "lifetime, e.g. 720h (1m to 9600h)", "720h"});
  s.epilog = "Prints the credential (issuer JWT and disclosures joined by '~'). Exit 0, or 2 for bad input.\n";
  return s;
}

command_spec present_spec() {
  command_spec s;
  s.name = "cmesh id credential present";
  s.summary = "Disclose some attributes of a credential to a verifier.";
  s.usage = "cmesh id credential present CREDENTIAL --identity HOLDER.key --disclose NAMES --audience A --nonce N";
  s.options = identity_option("the holder's key file (the credential's cnf key)");
  s.options.push_back({"disclose", "NAME[,NAME]", "the attributes to reveal (the others stay hidden)", ""});
  s.options.push_back({"audience", "A", "the verifier, as it names itself", ""});
  s.options.push_back({"nonce", "N", "the verifier's fresh nonce", ""});
  s.epilog = "Prints the presentation. Exit 0, 1 refused (not the holder's credential), 2 bad usage.\n";
  return s;
}

command_spec verify_spec() {
  command_spec s;
  s.name = "cmesh id credential verify";
  s.summary = "Check a presentation: issuer, holder binding, audience, nonce, disclosures.";
  s.usage = "cmesh id credential verify PRESENTATION --issuer DID --audience A --nonce N";
  s.options = {{"issuer", "DID", "the issuer trusted for this credential", ""},
               {"audience", "A", "this verifier", ""},
               {"nonce", "N", "the nonce handed to the holder", ""}};
  s.epilog =
      "Prints 'disclosed NAME...' and the claims as JSON (disclosed ones filled in, hidden ones absent).\n"
      "Exit 0 verified, 1 refused (the kind and reason on stderr), 2 bad usage.\n";
  return s;
}

// The single positional argument, or the first line of the file after '@'.
result<std::string> text_argument(const parsed_options& p, const char* what) {
  if (p.positional().size() != 1) return error{errc::invalid_argument, std::string("give exactly one ") + what};
  std::string text = p.positional()[0];
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    if (!in) return error{errc::invalid_argument, "cannot read " + text.substr(1)};
    std::getline(in, text);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return error{errc::invalid_argument, std::string(what) + " is empty"};
  return text;
}

result<json::object> object_option(const parsed_options& p, const std::string& name, const std::string& fallback) {
  json::parse_error bad;
  auto v = json::parse(p.get(name, fallback), &bad);
  if (!v) return error{errc::invalid_argument, "--" + name + " is not JSON: " + bad.message};
  if (!v->is_object()) return error{errc::invalid_argument, "--" + name + " must be a JSON object"};
  return v->as_object();
}

int run_issue(const command_spec& spec, const parsed_options& p) {
  for (const char* name : {"identity", "holder", "claims"})
    if (!p.has(name)) return usage_error(spec, std::string("--") + name + " is required");
  auto holder = node_id_from_did(p.get("holder"));
  if (!holder) return usage_error(spec, "--holder: " + holder.err().message);
  auto selective = object_option(p, "claims", "{}");
  if (!selective) return usage_error(spec, selective.err().message);
  auto visible = object_option(p, "visible", "{}");
  if (!visible) return usage_error(spec, visible.err().message);
  auto ttl = sim::parse_duration_us(p.get("ttl", "720h"));
  if (!ttl || *ttl < 60'000'000 || *ttl > int64_t{400} * 86400 * 1'000'000)
    return usage_error(spec, "--ttl: expected a duration from 1m to 9600h");
  auto me = client_identity(p.get("identity"));
  if (!me) return usage_error(spec, me.err().message);
  iam::credential_request request;
  request.subject = p.get("subject");
  request.holder_key = *holder;
  request.issued_at_s = unix_now_s();
  request.expires_at_s = request.issued_at_s + *ttl / 1'000'000;
  request.visible_claims = std::move(*visible);
  request.selective_claims = std::move(*selective);
  auto issued = iam::issue_credential(request, jose::signer_for(*me), jose::secure_random_source());
  if (!issued) return usage_error(spec, issued.err().message);
  std::printf("%s\n", issued->serialize().c_str());
  return exit_ok;
}

int run_present(const command_spec& spec, const parsed_options& p) {
  auto credential = text_argument(p, "CREDENTIAL");
  if (!credential) return usage_error(spec, credential.err().message);
  for (const char* name : {"identity", "disclose", "audience", "nonce"})
    if (!p.has(name)) return usage_error(spec, std::string("--") + name + " is required");
  auto me = client_identity(p.get("identity"));
  if (!me) return usage_error(spec, me.err().message);
  iam::key_binding_request binding{p.get("audience"), p.get("nonce"), unix_now_s()};
  auto presentation =
      iam::present_credential(*credential, split_list(p.get("disclose")), binding, jose::signer_for(*me));
  if (!presentation) {
    std::fprintf(stderr, "refused: %s\n", presentation.err().describe().c_str());
    return presentation.err().code == errc::invalid_argument ? exit_usage : exit_failed;
  }
  std::printf("%s\n", presentation->c_str());
  return exit_ok;
}

int run_verify(const command_spec& spec, const parsed_options& p) {
  auto presentation = text_argument(p, "PRESENTATION");
  if (!presentation) return usage_error(spec, presentation.err().message);
  for (const char* name : {"issuer", "audience", "nonce"})
    if (!p.has(name)) return usage_error(spec, std::string("--") + name + " is required");
  auto issuer = node_id_from_did(p.get("issuer"));
  if (!issuer) return usage_error(spec, "--issuer: " + issuer.err().message);
  iam::presentation_check check;
  check.issuer_key = *issuer;
  check.audience = p.get("audience");
  check.nonce = p.get("nonce");
  check.now_s = unix_now_s();
  auto verified = iam::verify_presentation(*presentation, check);
  if (!verified) {
    std::fprintf(stderr, "refused: %s\n", verified.err().describe().c_str());
    return exit_failed;
  }
  std::string names;
  for (const auto& n : verified->disclosed) names += " " + n;
  std::printf("disclosed%s\n%s\n", names.c_str(), json::dump(verified->claims).c_str());
  return exit_ok;
}

}  // namespace

int run_credential(int argc, char** argv) {
  return run_subcommand("cmesh id credential", overview, argc, argv,
                        {{"issue", issue_spec, run_issue}, {"present", present_spec, run_present},
                         {"verify", verify_spec, run_verify}});
}

}  // namespace cmesh::cli
