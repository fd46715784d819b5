// The seed's example flow end to end over the wire: three `cmesh node` processes forming a Raft
// group, `cmesh call` as the client (IAM handshake, kept session, CMTP), and `cmesh events sub` as
// an independent observer of the audit trail.
#include <doctest/doctest.h>

#include <filesystem>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

struct call_result {
  int code = 0;
  std::string output;
};

call_result call_once(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "call");
  auto [code, out] = cmesh::testing::run(binary, args, dir.file("call-" + std::to_string(runs++) + ".log"), 30s);
  return {code, out};
}

// Repeats a call until it answers something other than 503 (no leader yet, or an election under
// load: what a client retries) or `limit` passes.
call_result call_when_ready(const temp_dir& dir, const std::vector<std::string>& args, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto r = call_once(dir, args);
    if (r.output.find("\n503 ") == std::string::npos && r.output.rfind("503 ", 0) != 0) return r;
    if (std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(300ms);
  }
}

// Every request of the flow touches the Raft group; a leader change on a loaded machine answers
// 503 for a moment, and the client retries, as a user's would.
call_result call(const temp_dir& dir, const std::vector<std::string>& args) { return call_when_ready(dir, args, 15s); }

bool has_line_starting(const std::string& out, const std::string& prefix) {
  return out.rfind(prefix, 0) == 0 || out.find("\n" + prefix) != std::string::npos;
}

}  // namespace

TEST_CASE("real router: the seed's flow - names registered once, resolved and dispatched, 404 for google.com, audit trail observed, a revoked session is replaced") {
  temp_dir dir;
  std::vector<std::string> dids, addresses;
  for (int i = 0; i < 3; ++i) {
    dids.push_back(new_identity(dir, "n" + std::to_string(i)));
    addresses.push_back("127.0.0.1:" + std::to_string(cmesh::testing::free_port()));
  }
  std::vector<std::unique_ptr<process>> nodes;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> args = {"node", "--listen", addresses[i], "--data", dir.file("d" + std::to_string(i)),
                                     "--identity", dir.file("n" + std::to_string(i) + ".key")};
    for (int j = 0; j < 3; ++j) args.insert(args.end(), {"--raft-member", dids[j] + "@" + addresses[j]});
    nodes.push_back(std::make_unique<process>(binary, args, dir.file("n" + std::to_string(i) + ".log")));
    REQUIRE(nodes.back()->started());
  }
  for (auto& n : nodes) REQUIRE(n->wait_for_text("listening on", 10s));
  // Each router authenticated its own identity with its node's IAM before serving (seed 000).
  for (int i = 0; i < 3; ++i) CHECK(nodes[i]->wait_for_text("router authenticated peer=" + dids[i], 10s));
  auto me = new_identity(dir, "me");
  new_identity(dir, "bob");
  const std::string key = dir.file("me.key");

  // An observer of the audit trail at node 0 (the router the writes go through).
  auto observer = std::make_unique<process>(binary, std::vector<std::string>{"events", "sub", "events.>", "--node", addresses[0]},
                                            dir.file("observer.log"));
  REQUIRE(observer->started());
  std::this_thread::sleep_for(500ms);

  auto first = call_when_ready(dir, {"0xRW:register:helloWorld.mcom:0xS:0x001", "--identity", key, "--node",
                                     addresses[0], "--tx", "reg1"}, 20s);
  INFO(first.output);
  CHECK(first.code == 0);
  CHECK(has_line_starting(first.output, "201"));
  auto second = call(dir, {"0xRW:register:helloWorldExample.mcom:0xS:0x001:hello_world", "--identity", key, "--node",
                           addresses[0], "--tx", "reg2"});
  CHECK(second.code == 0);
  // A second registration of the same name, by someone else: refused, naming the owner.
  auto taken = call(dir, {"0xRW:register:helloWorld.mcom:0xS:0x002", "--identity", dir.file("bob.key"), "--node",
                          addresses[1]});
  INFO(taken.output);
  CHECK(taken.code == 1);
  CHECK(has_line_starting(taken.output, "409 name taken (owner " + me + ")"));
  // State behind both names, written through two different routers.
  CHECK(call(dir, {"0xSW:0x001", "--data", "\"contract state\"", "--identity", key, "--node", addresses[0], "--tx",
                   "w1"}).code == 0);
  CHECK(call(dir, {"0xSW:0x001:hello_world", "--data", "\"hello, world\"", "--identity", key, "--node", addresses[1]})
            .code == 0);
  // Both names resolve and dispatch, at any router.
  auto hello = call(dir, {"0xR:helloWorld.mcom", "--identity", key, "--node", addresses[2]});
  INFO(hello.output);
  CHECK(hello.code == 0);
  CHECK(has_line_starting(hello.output, "\"contract state\""));
  auto example = call(dir, {"0xR:helloWorldExample.mcom", "--identity", key, "--node", addresses[0]});
  CHECK(example.code == 0);
  CHECK(has_line_starting(example.output, "\"hello, world\""));
  // 0xP: node 0's router forwards to node 2's (which trusts node 0's IAM: same Raft group).
  auto proxied = call(dir, {"0xP:" + dids[2] + ":0xR:helloWorldExample.mcom", "--identity", key, "--node", addresses[0]});
  INFO(proxied.output);
  CHECK(proxied.code == 0);
  CHECK(has_line_starting(proxied.output, "\"hello, world\""));
  CHECK(nodes[0]->wait_for_text("router proxied peer=" + dids[2], 5s));
  auto google = call(dir, {"0xR:google.com", "--identity", key, "--node", addresses[0]});
  CHECK(google.code == 1);
  CHECK(has_line_starting(google.output, "404 "));
  // 0xE is a request on the events bus: nobody answers on this subject.
  auto nobody = call(dir, {"0xE:svc.echo:{}", "--identity", key, "--node", addresses[0]});
  INFO(nobody.output);
  CHECK(nobody.code == 1);
  CHECK(has_line_starting(nobody.output, "404 no responders"));
  // 0xC:kv:status: the Raft replica's status line at that node.
  auto raft_status = call(dir, {"0xC:kv:status", "--identity", key, "--node", addresses[1]});
  INFO(raft_status.output);
  CHECK(raft_status.code == 0);
  CHECK(raft_status.output.find("kv role=") != std::string::npos);
  // A bad FQMN is caught before anything is sent; the router would say the same (400, column).
  auto bad = call(dir, {"0xQ:x", "--identity", key, "--node", addresses[0]});
  CHECK(bad.code == 2);
  CHECK(bad.output.find("column 0: unknown opcode '0xQ'") != std::string::npos);

  // The audit trail of the write w1, in order, as a subscriber on the bus sees it.
  CHECK(observer->wait_for([](const std::string& log) { return log.find("events.confirmed.w1") != std::string::npos; }, 10s));
  const std::string trail = observer->output();
  INFO(trail);
  auto requests = trail.find("events.requests");
  auto responses = trail.find("events.responses.w1");
  auto mined = trail.find("events.mined.w1");
  auto confirmed = trail.find("events.confirmed.w1");
  CHECK(requests != std::string::npos);
  CHECK(responses != std::string::npos);
  CHECK(mined != std::string::npos);
  CHECK(responses < mined);
  CHECK(mined < confirmed);
  CHECK(trail.find("events.confirmed.reg1") != std::string::npos);  // registrations are writes too
  CHECK(trail.find("eyJ") == std::string::npos);                    // no token (a JWS) on the bus

  // Revoke the kept session at node 0: the next call is refused with it (401), runs a new
  // handshake and succeeds.
  const std::string session = dir.file("me.key." + addresses[0].substr(0, addresses[0].find(':')) + "_" +
                                       addresses[0].substr(addresses[0].find(':') + 1) + ".session");
  std::string token;
  {
    std::ifstream in(session);
    std::string issuer;
    in >> issuer >> token;
  }
  REQUIRE(!token.empty());
  // Node 0's token is good at node 1 too (its router trusts its Raft group's IAMs): keep it as
  // the session for node 1, and use it there once.
  auto session_file = [&](const std::string& address) {
    return dir.file("me.key." + address.substr(0, address.find(':')) + "_" + address.substr(address.find(':') + 1) +
                    ".session");
  };
  std::filesystem::copy_file(session, session_file(addresses[1]), std::filesystem::copy_options::overwrite_existing);
  auto elsewhere = call(dir, {"0xR:helloWorld.mcom", "--identity", key, "--node", addresses[1], "--verbose"});
  INFO(elsewhere.output);
  CHECK(elsewhere.code == 0);
  // No refusal on the way (a bare "401" could also be part of a hex tx or audit hash).
  CHECK_FALSE(has_line_starting(elsewhere.output, "401"));
  CHECK(elsewhere.output.find("401 with the kept session") == std::string::npos);
  auto revoked = cmesh::testing::run(binary, {"id", "revoke", token, "--node", addresses[0]}, dir.file("revoke.log"));
  CHECK(revoked.first == 0);
  // The revocation reaches the other nodes' IAMs, and their routers refuse the token.
  for (int i = 1; i < 3; ++i) CHECK(nodes[i]->wait_for_text("iam revocation_learned peer=" + dids[0], 5s));
  auto refused_elsewhere = call(dir, {"0xR:helloWorld.mcom", "--identity", key, "--node", addresses[1], "--verbose"});
  INFO(refused_elsewhere.output);
  CHECK(refused_elsewhere.code == 0);  // refused with the kept session, then a new handshake at node 1
  CHECK(refused_elsewhere.output.find("401 with the kept session") != std::string::npos);
  CHECK(refused_elsewhere.output.find("revoked") != std::string::npos);
  auto after = call(dir, {"0xR:helloWorld.mcom", "--identity", key, "--node", addresses[0], "--verbose"});
  INFO(after.output);
  CHECK(after.code == 0);
  CHECK(after.output.find("401 with the kept session") != std::string::npos);
  CHECK(after.output.find("revoked") != std::string::npos);

  for (auto& n : nodes) CHECK(n->running());
}

TEST_CASE("real router: the IAM handshake through CMTP - 0xI:challenge and 0xI:session without a token, then the session serves") {
  temp_dir dir;
  const std::string did = new_identity(dir, "n0");
  const std::string address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  process node(binary, {"node", "--listen", address, "--data", dir.file("d0"), "--identity", dir.file("n0.key"),
                        "--raft-member", did + "@" + address},
               dir.file("n0.log"));
  REQUIRE(node.started());
  REQUIRE(node.wait_for_text("router authenticated peer=" + did, 15s));
  new_identity(dir, "me");
  const std::string key = dir.file("me.key");
  // Raft has a leader (another identity's write): the calls below need no retry, so each output is
  // the whole story of one call.
  new_identity(dir, "warm");
  auto warm = call(dir, {"0xSW:0x000", "--data", "0", "--identity", dir.file("warm.key"), "--node", address});
  REQUIRE(warm.code == 0);

  // A challenge, asked without any session: JSON naming this node and the default audience.
  auto challenge = call(dir, {"0xI:challenge", "--identity", key, "--node", address, "--tx", "c1"});
  INFO(challenge.output);
  CHECK(challenge.code == 0);
  CHECK(challenge.output.find("\"node_did\":\"" + did + "\"") != std::string::npos);
  CHECK(challenge.output.find("\"audience\":\"cmesh\"") != std::string::npos);
  CHECK(challenge.output.find("\"nonce\":\"") != std::string::npos);
  CHECK(has_line_starting(challenge.output, "200"));
  CHECK(challenge.output.find("tx c1 audit ") != std::string::npos);  // audited like any request
  // An answer to no challenge the node issued: refused by the IAM, through the router.
  auto forged = call(dir, {"0xI:session", "--identity", key, "--node", address, "--data",
                           R"({"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","holder_did":"did:key:z6Mkf","signature":"AAAA"})"});
  INFO(forged.output);
  CHECK(forged.code == 1);
  CHECK((has_line_starting(forged.output, "400") || has_line_starting(forged.output, "401")));

  // A fresh identity opens its session through the router (both steps as CMTP), then uses it.
  auto write = call(dir, {"0xSW:0x001", "--data", "\"through cmtp\"", "--identity", key, "--node", address,
                          "--handshake", "router", "--verbose"});
  INFO(write.output);
  CHECK(write.code == 0);
  CHECK(write.output.find("0xI:challenge through the router: 200") != std::string::npos);
  CHECK(write.output.find("0xI:session through the router: 200") != std::string::npos);
  CHECK(has_line_starting(write.output, "200"));
  // The kept session (from the router's handshake) serves the next call without a handshake.
  auto read = call(dir, {"0xS:0x001", "--identity", key, "--node", address, "--verbose"});
  INFO(read.output);
  CHECK(read.code == 0);
  CHECK(read.output.find("through the router") == std::string::npos);
  CHECK(read.output.find("\"through cmtp\"") != std::string::npos);
}
