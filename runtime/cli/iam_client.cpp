#include "runtime/cli/iam_client.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "actors/iam/iam_machine.hpp"
#include "messages/cmtp_messages.hpp"
#include "messages/codec.hpp"
#include "messages/iam_messages.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/core/json.hpp"
#include "runtime/crypto/jose.hpp"

namespace cmesh::cli {

namespace {

// One request, one reply of type Reply from the IAM service, refused unless its status is ok. On
// success `from` is the node that answered.
template <class Reply, class Request>
std::optional<Reply> ask(const iam_client& c, const seed_spec& node, const Request& request, node_id& from,
                         int& exit_code) {
  auto reply = ask_typed<Reply>(c, node, request, from, exit_code);
  if (!reply) return std::nullopt;
  if (reply->status != iam::status_ok) {
    std::fprintf(stderr, "refused (%u %s): %s\n", reply->status, iam::iam_status_name(reply->status).c_str(),
                 reply->reason.c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  return reply;
}

// One token-less CMTP request to the node's router (the handshake through 0xI); on 200 the JSON
// body, an object. On success `from` is the node that answered.
std::optional<json::value> ask_router(const iam_client& c, const seed_spec& node, const std::string& fqmn,
                                      const json::value& body, node_id& from, int& exit_code) {
  cmtp::request request;
  char tx[17];
  std::snprintf(tx, sizeof tx, "%016llx", static_cast<unsigned long long>(random_nonzero()));
  request.tx = tx;
  request.fqmn = fqmn;
  const std::string text = json::dump(body);
  request.body.assign(text.begin(), text.end());
  auto response = ask_typed<cmtp::response>(c, node, request, from, exit_code);
  if (!response) return std::nullopt;
  if (response->status != 200) {
    std::fprintf(stderr, "refused by the router (%u): %s\n", response->status, response->reason.c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  json::parse_error bad;
  auto parsed = json::parse(std::string_view(reinterpret_cast<const char*>(response->body.data()), response->body.size()), &bad);
  if (!parsed || !parsed->is_object()) {
    std::fprintf(stderr, "malformed %s answer from %s: not a JSON object\n", fqmn.c_str(), node.address.c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  if (c.verbose) std::fprintf(stderr, "%s through the router: %u\n", fqmn.c_str(), response->status);
  return std::move(*parsed);
}

std::string text_of(const json::value& object, std::string_view key) {
  const json::value* m = object.find(key);
  return m != nullptr && m->is_string() ? m->as_string() : std::string();
}

int64_t int_of(const json::value& object, std::string_view key) {
  const json::value* m = object.find(key);
  return m != nullptr && m->is_int() ? m->as_int() : 0;
}

// Step 1-2 by either route.
std::optional<iam::challenge_reply> get_challenge(const iam_client& c, const std::string& audience,
                                                  handshake_route route, node_id& node, int& exit_code) {
  if (route == handshake_route::iam_service)
    return ask<iam::challenge_reply>(c, c.node, iam::challenge_request{audience}, node, exit_code);
  json::object body;
  body.emplace_back("audience", json::value(audience));
  auto got = ask_router(c, c.node, "0xI:challenge", json::value(std::move(body)), node, exit_code);
  if (!got) return std::nullopt;
  iam::challenge_reply r;
  r.nonce = text_of(*got, "nonce");
  r.audience = text_of(*got, "audience");
  r.node_did = text_of(*got, "node_did");
  r.expires_at_s = int_of(*got, "expires_at_s");
  return r;
}

// Step 3-4 by either route.
std::optional<iam::session_reply> redeem(const iam_client& c, const seed_spec& node, const iam::answer_message& answer,
                                         handshake_route route, int& exit_code) {
  node_id second;
  if (route == handshake_route::iam_service) return ask<iam::session_reply>(c, node, answer, second, exit_code);
  json::object body;
  body.emplace_back("nonce", json::value(answer.nonce));
  body.emplace_back("holder_did", json::value(answer.holder_did));
  body.emplace_back("scope", json::value(answer.scope));
  body.emplace_back("signature", json::value(answer.signature));
  auto got = ask_router(c, node, "0xI:session", json::value(std::move(body)), second, exit_code);
  if (!got) return std::nullopt;
  iam::session_reply r;
  r.token = text_of(*got, "token");
  r.scope = text_of(*got, "scope");
  r.expires_at_s = int_of(*got, "expires_at_s");
  r.token_id = text_of(*got, "token_id");
  return r;
}

}  // namespace

std::optional<session_grant> open_session(const iam_client& c, const std::string& audience,
                                          const std::string& scope, int& exit_code, handshake_route route) {
  node_id node;
  auto issued = get_challenge(c, audience, route, node, exit_code);
  if (!issued) return std::nullopt;
  // The challenge must come from the node we are talking to, for what we asked: an answer signed
  // for another node or audience would be useless (and signing it would help a relay).
  if (issued->node_did != did_from_node_id(node)) {
    std::fprintf(stderr, "refused: the challenge names node %s, but %s answered\n", issued->node_did.c_str(),
                 did_from_node_id(node).c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  if (issued->audience != audience) {
    std::fprintf(stderr, "refused: the challenge is for audience '%s', not '%s'\n", issued->audience.c_str(),
                 audience.c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  iam::challenge challenge{issued->nonce, issued->audience, issued->node_did, issued->expires_at_s};
  auto answer = iam::answer_challenge(challenge, scope, jose::signer_for(c.me));
  seed_spec same_node{c.node.address, node};  // the second round trip goes to the same identity
  auto granted = redeem(c, same_node, iam::answer_message{answer.nonce, answer.holder_did, answer.scope, answer.signature},
                        route, exit_code);
  if (!granted) return std::nullopt;
  auto claims = iam::authenticate_session_token(granted->token, node);
  if (!claims) {
    std::fprintf(stderr, "the node's token does not verify under its key: %s\n", claims.err().describe().c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  if (claims->subject != c.me.did() || claims->audience != audience) {
    std::fprintf(stderr, "the node's token is for %s / audience %s, not for %s / %s\n", claims->subject.c_str(),
                 claims->audience.c_str(), c.me.did().c_str(), audience.c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  return session_grant{granted->token, *claims, node};
}

bool ensure_session(const iam_client& c, const std::string& scope, int& exit_code) {
  if (c.verbose) std::fprintf(stderr, "no session with the scope at the node: opening one (scope '%s')\n", scope.c_str());
  auto granted = open_session(c, default_audience, scope, exit_code);
  if (granted && c.verbose)
    std::fprintf(stderr, "session %s until %lld\n", granted->claims.token_id.c_str(),
                 static_cast<long long>(granted->claims.expires_at_s));
  return granted.has_value();
}

std::optional<std::string> revoke_session(const iam_client& c, const std::string& token, int& exit_code) {
  node_id node;
  auto done = ask<iam::revoke_reply>(c, c.node, iam::revoke_request{token}, node, exit_code);
  if (!done) return std::nullopt;
  return done->reason;
}

status save_token(const std::string& path, const std::string& token) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return error{errc::invalid_argument, "cannot write " + path + ": " + std::strerror(errno)};
  ::fchmod(fd, 0600);  // a bearer token: nobody else may read it, also when the file existed
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) return error{errc::io_error, "cannot write " + path};
  return ok_status();
}

}  // namespace cmesh::cli
