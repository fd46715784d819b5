// Real mode of the replicated key/value service and registrar: `cmesh node --raft-member ...`
// processes on loopback, driven by the `cmesh kv` and `cmesh name` clients (separate processes),
// including SIGKILL of the leader and a restart from the same data folder.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

struct member {
  std::string name;
  std::string did;
  std::string key;
  std::string address;
  std::string data;
  std::unique_ptr<process> proc;
  int starts = 0;
};

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

std::vector<member> make_members(const temp_dir& dir, const std::string& prefix, int count) {
  std::vector<member> members(count);
  for (int i = 0; i < count; ++i) {
    auto& m = members[i];
    m.name = prefix + std::to_string(i);
    m.did = new_identity(dir, m.name);
    m.key = dir.file(m.name + ".key");
    m.address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
    m.data = dir.file(m.name + "-data");
  }
  return members;
}

// Starts (or restarts, same identity and data folder) member `i` of the group.
void start_member(const temp_dir& dir, std::vector<member>& members, size_t i) {
  auto& m = members[i];
  std::vector<std::string> args = {"node", "--listen", m.address, "--data", m.data, "--identity",
                                   m.key, "--status-interval", "300ms", "--election-timeout",
                                   "150ms-300ms", "--heartbeat", "40ms"};
  for (const auto& other : members) {
    args.push_back("--raft-member");
    args.push_back(other.did + "@" + other.address);
  }
  m.proc = std::make_unique<process>(binary, args,
                                     dir.file(m.name + "-" + std::to_string(m.starts++) + ".log"));
  REQUIRE(m.proc->started());
}

struct client_result {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// One `cmesh kv|name ...` run against `node` (HOST:PORT or DID@HOST:PORT).
client_result client(const temp_dir& dir, std::vector<std::string> args, const std::string& node,
                     const std::string& timeout = "3s") {
  static int runs = 0;
  args.insert(args.end(), {"--node", node, "--timeout", timeout});
  auto [code, out] = cmesh::testing::run(binary, args, dir.file("client-" + std::to_string(runs++) + ".log"), 20s);
  return {code, out};
}

// Retries a write until it exits 0 (a leader change answers 408 or 503 meanwhile).
client_result write_until_ok(const temp_dir& dir, const std::vector<std::string>& args,
                             const std::string& node, std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  client_result r;
  do {
    r = client(dir, args, node);
    if (r.code == 0) return r;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return r;
}

uint64_t index_of(const std::string& output) {
  auto at = output.find("(index ");
  if (at == std::string::npos) return 0;
  return std::stoull(output.substr(at + 7));
}

// The member whose most recent role event is became_leader, if exactly one is running as such.
std::optional<size_t> current_leader(std::vector<member>& members) {
  std::optional<size_t> leader;
  int leaders = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!members[i].proc || !members[i].proc->running()) continue;
    auto log = members[i].proc->output();
    auto became = log.rfind("kv became_leader");
    if (became == std::string::npos) continue;
    bool stepped_down = false;
    for (const char* other : {"kv became_follower", "kv became_candidate", "kv became_pre_candidate"}) {
      auto at = log.rfind(other);
      if (at != std::string::npos && at > became) stepped_down = true;
    }
    if (!stepped_down) {
      leader = i;
      ++leaders;
    }
  }
  if (leaders != 1) return std::nullopt;
  return leader;
}

// The applied index in the member's latest status line ("kv role=... applied=N ...").
uint64_t applied_of(member& m) {
  auto log = m.proc->output();
  auto at = log.rfind(" applied=");
  if (at == std::string::npos) return 0;
  return std::stoull(log.substr(at + 9));
}

void stop_all(std::vector<member>& members) {
  for (auto& m : members)
    if (m.proc) m.proc->signal(SIGTERM);
  for (auto& m : members) {
    if (!m.proc) continue;
    INFO(m.name << " log:\n" << m.proc->output());
    CHECK(m.proc->wait(10s) == 0);
    CHECK(m.proc->output().find("stopped cleanly") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("real raft: three members replicate writes and survive SIGKILL of the leader and its restart") {
  temp_dir dir;
  auto members = make_members(dir, "r", 3);
  for (size_t i = 0; i < members.size(); ++i) start_member(dir, members, i);

  // A leader is elected; the first write through any member succeeds.
  auto first = write_until_ok(dir, {"kv", "put", "probe", "1"}, members[0].address, 10s);
  REQUIRE(first.code == 0);

  // 20 keys written through different members, each acknowledged.
  std::map<std::string, std::string> model;
  uint64_t last_index = index_of(first.output);
  for (int i = 0; i < 20; ++i) {
    std::string key = "key" + std::to_string(i), value = "value-" + std::to_string(i);
    auto r = client(dir, {"kv", "put", key, value}, members[i % 3].address);
    INFO("put " << key << " via " << members[i % 3].name << ": " << r.output);
    REQUIRE(r.code == 0);
    CHECK(r.output.find("200 ok (index ") == 0);
    last_index = std::max(last_index, index_of(r.output));
    model[key] = value;
  }
  // Read back through another member than the one written through.
  for (int i = 0; i < 20; ++i) {
    std::string key = "key" + std::to_string(i);
    auto r = client(dir, {"kv", "get", key}, members[(i + 1) % 3].address);
    INFO("get " << key << ": " << r.output);
    CHECK(r.code == 0);
    CHECK(r.output == model[key] + "\n");
  }

  // SIGKILL the leader.
  auto leader = current_leader(members);
  REQUIRE(leader.has_value());
  auto& killed = members[*leader];
  killed.proc->signal(SIGKILL);
  REQUIRE(killed.proc->wait(5s) == 128 + SIGKILL);
  auto killed_at = std::chrono::steady_clock::now();
  std::vector<size_t> survivors;
  for (size_t i = 0; i < members.size(); ++i)
    if (i != *leader) survivors.push_back(i);

  // The other two elect a new leader: writes through either succeed again within seconds.
  for (int i = 0; i < 5; ++i) {
    std::string key = "key" + std::to_string(i), value = "after-kill-" + std::to_string(i);
    auto r = write_until_ok(dir, {"kv", "put", key, value}, members[survivors[i % 2]].address, 15s);
    INFO("put " << key << " after the kill: " << r.output);
    REQUIRE(r.code == 0);
    if (i == 0) {
      auto failover = std::chrono::steady_clock::now() - killed_at;
      MESSAGE("first write acknowledged "
              << std::chrono::duration_cast<std::chrono::milliseconds>(failover).count()
              << " ms after SIGKILL of the leader");
      CHECK(failover < 10s);
    }
    last_index = std::max(last_index, index_of(r.output));
    model[key] = value;
  }
  auto new_leader = current_leader(members);
  REQUIRE(new_leader.has_value());
  CHECK(*new_leader != *leader);

  // No acknowledged write lost.
  for (const auto& [key, value] : model) {
    auto r = client(dir, {"kv", "get", key}, members[survivors[1]].address);
    INFO("get " << key << " after the kill: " << r.output);
    CHECK(r.code == 0);
    CHECK(r.output == value + "\n");
  }

  // Restart the killed member from its data folder: it catches up with the log.
  start_member(dir, members, *leader);
  REQUIRE(killed.proc->wait_for_text("listening on", 10s));
  {
    INFO("restarted member log:\n" << killed.proc->output());
    CHECK(killed.proc->wait_for([&](const std::string&) { return applied_of(killed) >= last_index; }, 10s));
  }
  for (const auto& [key, value] : model) {
    auto r = client(dir, {"kv", "get", key}, killed.address);
    INFO("get " << key << " through the restarted member: " << r.output);
    CHECK(r.code == 0);
    CHECK(r.output == value + "\n");
  }
  auto through_restarted = write_until_ok(dir, {"kv", "put", "restarted", "yes"}, killed.address, 10s);
  INFO(through_restarted.output);
  CHECK(through_restarted.code == 0);
  auto read_elsewhere = client(dir, {"kv", "get", "restarted"}, members[survivors[0]].address);
  CHECK(read_elsewhere.output == "yes\n");

  stop_all(members);
}

TEST_CASE("real raft: registrar names belong to the identity that registered them") {
  temp_dir dir;
  auto members = make_members(dir, "n", 3);
  for (size_t i = 0; i < members.size(); ++i) start_member(dir, members, i);
  auto alice_did = new_identity(dir, "alice");
  auto bob_did = new_identity(dir, "bob");
  auto alice = dir.file("alice.key"), bob = dir.file("bob.key");
  REQUIRE(write_until_ok(dir, {"kv", "put", "probe", "1"}, members[0].address, 10s).code == 0);

  // Registered by alice through one member (a follower forwards with alice's identity).
  for (int attempt = 0;; ++attempt) {
    auto r = client(dir, {"name", "register", "helloWorld.mcom", "0xS:0x001", "--identity", alice},
                    members[1].address);
    if (r.code == 0) {
      CHECK(r.output.find("201 created (index ") == 0);
      break;
    }
    // Only a leader change (408/503) is retried; a retry may find its first attempt applied.
    if (attempt > 0 && r.output.find("409 name taken (owner " + alice_did + ")") != std::string::npos) break;
    INFO(r.output);
    REQUIRE(attempt < 3);
  }
  {
    auto r = client(dir, {"name", "register", "helloworld.mcom", "0xS:0x002", "--identity", bob},
                    members[2].address);
    INFO(r.output);
    CHECK(r.code == 1);
    CHECK(r.output.find("409") != std::string::npos);
    CHECK(r.output.find(alice_did) != std::string::npos);  // the owner, as authenticated
  }
  {
    auto r = client(dir, {"name", "resolve", "helloWorld.mcom"}, members[0].address);
    CHECK(r.code == 0);
    CHECK(r.output == "0xS:0x001\n");
  }
  {
    auto r = client(dir, {"name", "resolve", "nobody.mcom"}, members[2].address);
    CHECK(r.code == 1);
    CHECK(r.output.find("404") != std::string::npos);
  }
  // Only the owner may transfer or release; the pinned form of --node works too.
  {
    auto r = client(dir, {"name", "release", "helloWorld.mcom", "--identity", bob}, members[0].address);
    CHECK(r.code == 1);
    CHECK(r.output.find("403") != std::string::npos);
  }
  {
    auto r = client(dir, {"name", "transfer", "helloWorld.mcom", bob_did, "--identity", alice},
                    members[0].did + "@" + members[0].address);
    INFO(r.output);
    CHECK(r.code == 0);
  }
  {
    auto r = client(dir, {"name", "release", "helloWorld.mcom", "--identity", bob}, members[1].address);
    INFO(r.output);
    CHECK(r.code == 0);
    auto gone = client(dir, {"name", "resolve", "helloWorld.mcom"}, members[2].address);
    CHECK(gone.code == 1);
    CHECK(gone.output.find("404") != std::string::npos);
  }
  // Compare-and-swap and delete through the client.
  {
    CHECK(client(dir, {"kv", "cas", "c", "--expect-absent", "one"}, members[0].address).code == 0);
    auto mismatch = client(dir, {"kv", "cas", "c", "--expect", "zero", "two"}, members[1].address);
    CHECK(mismatch.code == 1);
    CHECK(mismatch.output.find("409") != std::string::npos);
    CHECK(mismatch.output.find("current value: one") != std::string::npos);
    CHECK(client(dir, {"kv", "cas", "c", "--expect", "one", "two"}, members[2].address).code == 0);
    CHECK(client(dir, {"kv", "get", "c"}, members[0].address).output == "two\n");
    CHECK(client(dir, {"kv", "del", "c"}, members[1].address).code == 0);
    auto absent = client(dir, {"kv", "get", "c"}, members[2].address);
    CHECK(absent.code == 1);
    CHECK(absent.output.find("404") != std::string::npos);
  }
  stop_all(members);
}

TEST_CASE("real raft: bad usage exits 2 and an unreachable node exits 3") {
  temp_dir dir;
  auto members = make_members(dir, "u", 2);
  auto outsider = make_members(dir, "x", 1);
  auto run = [&](const std::vector<std::string>& args) {
    return cmesh::testing::run(binary, args, dir.file("usage.log"), 20s);
  };
  {
    // The node's own identity is not among the members.
    auto [code, out] = run({"node", "--listen", outsider[0].address, "--data", outsider[0].data,
                            "--identity", outsider[0].key, "--raft-member",
                            members[0].did + "@" + members[0].address, "--raft-member",
                            members[1].did + "@" + members[1].address});
    CHECK(code == 2);
    CHECK(out.find("is not one of the members") != std::string::npos);
  }
  {
    auto [code, out] = run({"node", "--listen", "127.0.0.1:0", "--data", dir.file("d"), "--raft-member", members[0].address});
    CHECK(code == 2);
    CHECK(out.find("DID@HOST:PORT") != std::string::npos);
  }
  {
    auto [code, out] = run({"kv", "get", "k"});
    CHECK(code == 2);
    CHECK(out.find("--node") != std::string::npos);
  }
  CHECK(run({"kv", "frobnicate", "k", "--node", members[0].address}).first == 2);
  CHECK(run({"kv", "cas", "k", "v", "--node", members[0].address}).first == 2);
  {
    auto [code, out] = run({"name", "register", "a.mcom", "x", "--node", members[0].address});
    CHECK(code == 2);
    CHECK(out.find("--identity") != std::string::npos);
  }
  {
    // Nobody listens there.
    auto [code, out] = run({"kv", "get", "k", "--node", members[0].address, "--timeout", "300ms"});
    CHECK(code == 3);
    CHECK(out.find("timed out") != std::string::npos);
  }
  {
    auto [code, out] = run({"kv", "--help"});
    CHECK(code == 0);
    CHECK(out.find("--expect-absent") != std::string::npos);
  }
}
