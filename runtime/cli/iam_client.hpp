// The client side of the IAM handshake over the wire (docs/iam.md §2, §9), shared by
// `cmesh id session|revoke` and `cmesh call`: one client_exchange per round trip, every refusal
// printed on stderr with the exit code the command should return.
#pragma once

#include <optional>
#include <string>

#include "actors/iam/token.hpp"
#include "messages/error.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::cli {

// The audience a session is for when the user names none (what the router checks by default).
inline constexpr const char* default_audience = "cmesh";

// Who asks, which node, how long to wait (read with read_client_options).
using iam_client = client_options;

struct session_grant {
  std::string token;
  iam::session_claims claims;
  node_id node;  // the node that issued it (authenticated by the transport)
};

// Which way the two round trips of the handshake go: straight to the node's IAM service (service
// 10), or as CMTP requests through its router (0xI:challenge, 0xI:session; docs/router.md).
enum class handshake_route { iam_service, router };

// The handshake: asks `c.node` for a challenge for `audience`, checks that it names the node that
// answered and that audience, signs it for `scope` with c.me, and checks the token it gets back
// (signed by that node, for c.me and that audience). On failure prints why and sets exit_code
// (1 refused, 3 unreachable).
std::optional<session_grant> open_session(const iam_client& c, const std::string& audience,
                                          const std::string& scope, int& exit_code,
                                          handshake_route route = handshake_route::iam_service);

// The kv and events client protocols of a node that requires sessions (docs/iam.md §13) answer
// 401 until c.me holds a live session of that node: this runs the handshake with c.node for
// `scope` (the node then knows the key; no token needs to travel with later requests). Prints
// what it does with c.verbose, and why it failed otherwise; sets exit_code on failure.
bool ensure_session(const iam_client& c, const std::string& scope, int& exit_code);

// Revokes `token` at c.node. On success returns the node's note ("" or e.g. "already revoked").
std::optional<std::string> revoke_session(const iam_client& c, const std::string& token, int& exit_code);

// Writes a bearer token to `path`, mode 0600 (also when the file existed).
status save_token(const std::string& path, const std::string& token);

}  // namespace cmesh::cli
