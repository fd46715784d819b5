// Real mode of IAM: a `cmesh node` process and the `cmesh id` client. The passwordless handshake
// over the wire earns a token signed by the node that `cmesh id token verify` accepts offline for
// its audience and scope (and refuses for another scope, issuer or time); a scope the policy does
// not allow is refused; a token revoked over the wire is known revoked at the node; a token of
// another issuer cannot be revoked there. (A replayed answer cannot be produced with the CLI: see
// tests/sim/test_iam_actor.cpp.)
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

std::pair<int, std::string> id(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "id");
  return cmesh::testing::run(binary, args, dir.file("id-" + std::to_string(runs++) + ".log"), 20s);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The value of the line "KEY VALUE" in `out`.
std::string field(const std::string& out, const std::string& key) {
  const std::string prefix = key + " ";
  size_t at = out.rfind("\n" + prefix);
  at = at == std::string::npos ? (out.rfind(prefix, 0) == 0 ? 0 : std::string::npos) : at + 1;
  if (at == std::string::npos) return {};
  const size_t end = out.find('\n', at);
  return out.substr(at + prefix.size(), end == std::string::npos ? std::string::npos : end - at - prefix.size());
}

}  // namespace

TEST_CASE("real iam: session over the wire - offline verify - scope refused - revoke over the wire - foreign token refused") {
  temp_dir dir;
  auto [made, node_out] = id(dir, {"new", dir.file("node.key")});
  REQUIRE(made == 0);
  const std::string node_did = first_line(node_out);
  auto [made_client, client_out] = id(dir, {"new", dir.file("client.key")});
  REQUIRE(made_client == 0);
  const std::string client_did = first_line(client_out);
  const std::string address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  process node(binary,
               {"node", "--listen", address, "--data", dir.file("data"), "--identity", dir.file("node.key"),
                "--status-interval", "500ms", "--iam-session-ttl", "10m"},
               dir.file("node.log"));
  REQUIRE(node.started());
  REQUIRE(node.wait_for_text("listening on", 10s));

  // The handshake; the node grants what its default policy allows of the request.
  auto [code, out] = id(dir, {"session", "--identity", dir.file("client.key"), "--node", node_did + "@" + address,
                              "--audience", "svc", "--scope", "state.read admin", "--save", dir.file("me.token")});
  INFO("session output:\n" << out << "\nnode log:\n" << node.output());
  REQUIRE(code == 0);
  const std::string token = field(out, "token");
  CHECK(token.size() > 100);
  CHECK(field(out, "scope") == "state.read");
  CHECK(field(out, "issuer") == node_did);
  CHECK(field(out, "subject") == client_did);
  CHECK(field(out, "audience") == "svc");
  const std::string jti = field(out, "token_id");
  CHECK(jti.size() == 22);
  struct stat saved{};
  REQUIRE(::stat(dir.file("me.token").c_str(), &saved) == 0);
  CHECK((saved.st_mode & 077) == 0);
  // --iam-session-ttl 10m
  const long long issued = std::stoll(field(out, "issued_at"));
  CHECK(std::stoll(field(out, "expires_at")) == issued + 600);

  // Offline verification.
  auto ok = id(dir, {"token", "verify", "@" + dir.file("me.token"), "--issuer", node_did, "--audience", "svc",
                     "--scope", "state.read"});
  CHECK(ok.first == 0);
  CHECK(first_line(ok.second) == "valid");
  CHECK(field(ok.second, "token_id") == jti);
  auto scope = id(dir, {"token", "verify", token, "--issuer", node_did, "--audience", "svc", "--scope", "state.write"});
  CHECK(scope.first == 1);
  CHECK(scope.second.find("refused: insufficient_scope") != std::string::npos);
  CHECK(scope.second.find("CMTP 403") != std::string::npos);
  auto issuer = id(dir, {"token", "verify", token, "--issuer", client_did});
  CHECK(issuer.first == 1);
  CHECK(issuer.second.find("refused: wrong_issuer") != std::string::npos);
  auto audience = id(dir, {"token", "verify", token, "--issuer", node_did, "--audience", "other"});
  CHECK(audience.first == 1);
  CHECK(audience.second.find("wrong_audience") != std::string::npos);
  auto later = id(dir, {"token", "verify", token, "--issuer", node_did, "--at", std::to_string(issued + 700)});
  CHECK(later.first == 1);
  CHECK(later.second.find("refused: expired") != std::string::npos);
  std::string tampered = token;
  tampered[tampered.find('.') + 5] = tampered[tampered.find('.') + 5] == 'A' ? 'B' : 'A';
  auto bad = id(dir, {"token", "verify", tampered, "--issuer", node_did});
  CHECK(bad.first == 1);
  CHECK(bad.second.find("refused:") != std::string::npos);

  // Nothing the policy allows: refused with the reason, exit 1.
  auto denied = id(dir, {"session", "--identity", dir.file("client.key"), "--node", address, "--scope", "admin"});
  CHECK(denied.first == 1);
  CHECK(denied.second.find("403") != std::string::npos);
  CHECK(denied.second.find("scope_denied") != std::string::npos);

  // Revoke over the wire (with a transport identity other than the holder's); the node knows it.
  auto revoked = id(dir, {"revoke", token, "--node", address});
  INFO("revoke output:\n" << revoked.second);
  CHECK(revoked.first == 0);
  CHECK(first_line(revoked.second) == "revoked");
  auto twice = id(dir, {"revoke", "@" + dir.file("me.token"), "--node", address});
  CHECK(twice.first == 0);
  CHECK(twice.second.find("already revoked") != std::string::npos);
  CHECK(node.wait_for_text("iam revoked", 5s));
  CHECK(node.output().find("jti=" + jti) != std::string::npos);
  CHECK(node.wait_for_text("revoked=1", 5s));

  // A token the node did not issue (signed by the client's own key) cannot be revoked there.
  auto own = id(dir, {"token", "issue", "--identity", dir.file("client.key"), "--subject", client_did, "--audience",
                      "svc", "--scope", "state.read", "--ttl", "5m"});
  REQUIRE(own.first == 0);
  auto self_verified = id(dir, {"token", "verify", first_line(own.second), "--issuer", client_did, "--scope", "state.read"});
  CHECK(self_verified.first == 0);
  auto foreign = id(dir, {"revoke", first_line(own.second), "--node", address});
  CHECK(foreign.first == 1);
  CHECK(foreign.second.find("wrong_issuer") != std::string::npos);

  // A new session after the revocation is a new token.
  auto again = id(dir, {"session", "--identity", dir.file("client.key"), "--node", address, "--audience", "svc",
                        "--scope", "events.read events.publish"});
  CHECK(again.first == 0);
  CHECK(field(again.second, "scope") == "events.read events.publish");
  CHECK(field(again.second, "token_id") != jti);
  CHECK(node.wait_for_text("sessions=2", 5s));

  // Usage and reachability.
  CHECK(id(dir, {"session", "--node", address}).first == 2);
  CHECK(id(dir, {"token", "verify", token}).first == 2);
  CHECK(id(dir, {"token", "verify", token, "--issuer", "did:key:nope"}).first == 2);
  CHECK(id(dir, {"session", "--identity", dir.file("client.key"), "--scope", "bad\"scope", "--node", address}).first == 2);
  const std::string closed = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  CHECK(id(dir, {"session", "--identity", dir.file("client.key"), "--node", closed, "--timeout", "2s"}).first == 3);

  node.signal(SIGTERM);
  CHECK(node.wait(10s) == 0);
}

TEST_CASE("real iam: the kv and events client protocols serve only keys holding a session of the node - the CLI opens one on 401 - a revoked session is refused") {
  temp_dir dir;
  auto [made, node_out] = id(dir, {"new", dir.file("node.key")});
  REQUIRE(made == 0);
  const std::string node_did = first_line(node_out);
  REQUIRE(id(dir, {"new", dir.file("a.key")}).first == 0);
  REQUIRE(id(dir, {"new", dir.file("b.key")}).first == 0);
  const std::string address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  process node(binary,
               {"node", "--listen", address, "--data", dir.file("data"), "--identity", dir.file("node.key"),
                "--raft-member", node_did + "@" + address},
               dir.file("node.log"));
  REQUIRE(node.started());
  REQUIRE(node.wait_for_text("kv became_leader", 10s));
  static int runs = 0;
  auto cli = [&](std::vector<std::string> args) {
    return cmesh::testing::run(binary, args, dir.file("cli-" + std::to_string(runs++) + ".log"), 20s);
  };
  const std::string opening = "no session with the scope at the node: opening one";

  // Key a has no session: the node answers 401, the CLI runs the handshake and retries.
  auto put = cli({"kv", "put", "k", "v1", "--node", address, "--identity", dir.file("a.key"), "--verbose"});
  INFO(put.second << "\nnode log:\n" << node.output());
  REQUIRE(put.first == 0);
  CHECK(put.second.find(opening) != std::string::npos);
  CHECK(node.output().find("kv client_refused") != std::string::npos);
  // Now the node knows a's session: no second handshake.
  auto get = cli({"kv", "get", "k", "--node", address, "--identity", dir.file("a.key"), "--verbose"});
  INFO(get.second);
  CHECK(get.first == 0);
  CHECK(get.second.find("v1") != std::string::npos);
  CHECK(get.second.find(opening) == std::string::npos);
  // Its scope does not cover events: 403 insufficient_scope, then a session for events.
  auto pub = cli({"events", "pub", "orders.new", "x", "--node", address, "--identity", dir.file("a.key"), "--verbose"});
  INFO(pub.second);
  CHECK(pub.first == 0);
  CHECK(pub.second.find(opening) != std::string::npos);
  CHECK(pub.second.find("published on orders.new") != std::string::npos);

  // Key b opens a session by hand; kv reads work with it; once it is revoked the node refuses b
  // again (the CLI opens a new session).
  auto session = id(dir, {"session", "--identity", dir.file("b.key"), "--node", address, "--scope", "state.read",
                          "--save", dir.file("b.token")});
  REQUIRE(session.first == 0);
  auto with = cli({"kv", "get", "k", "--node", address, "--identity", dir.file("b.key"), "--verbose"});
  INFO(with.second);
  CHECK(with.first == 0);
  CHECK(with.second.find(opening) == std::string::npos);
  std::string token;
  {
    std::ifstream in(dir.file("b.token"));
    in >> token;
  }
  REQUIRE(!token.empty());
  REQUIRE(id(dir, {"revoke", token, "--node", address}).first == 0);
  auto after = cli({"kv", "get", "k", "--node", address, "--identity", dir.file("b.key"), "--verbose"});
  INFO(after.second);
  CHECK(after.first == 0);
  CHECK(after.second.find(opening) != std::string::npos);
  CHECK(node.running());
}
