// Real mode: cmesh node processes on loopback talking real TCP with the real handshake.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <regex>
#include <set>

#include <sodium.h>

#include "messages/codec.hpp"
#include "messages/peer_messages.hpp"
#include "runtime/crypto/handshake.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/secure_channel.hpp"
#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

struct node_proc {
  std::string did;
  std::string address;
  std::string data;
  std::string key;
  std::unique_ptr<process> proc;
};

// A node's identity, free loopback address and data folder (not started yet).
node_proc make_node(const temp_dir& dir, const std::string& name) {
  node_proc n;
  n.did = new_identity(dir, name);
  n.key = dir.file(name + ".key");
  n.address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  n.data = dir.file(name + "-data");
  return n;
}

std::unique_ptr<process> start_node(const temp_dir& dir, const node_proc& n,
                                    const std::vector<std::string>& extra, const std::string& log) {
  std::vector<std::string> args = {"node", "--listen", n.address, "--data", n.data, "--identity", n.key,
                                   "--verbose", "--status-interval", "1s"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto p = std::make_unique<process>(binary, args, dir.file(log));
  REQUIRE(p->started());
  return p;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

bool has_pong_from(const std::string& log, const std::string& did) {
  return log.find("peer pong peer=" + did) != std::string::npos;
}

// A minimal raw client: TCP connect, real handshake as initiator, then send frames by hand.
struct raw_client {
  int fd = -1;
  cmesh::identity id = cmesh::identity::generate();
  std::optional<cmesh::secure_channel> channel;
  cmesh::node_id peer;

  explicit raw_client(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~raw_client() { if (fd >= 0) ::close(fd); }
  void send_raw(const cmesh::bytes& data) { REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == (ssize_t)data.size()); }
  // Bytes received past the end of the last frame stay here for the next read: one recv can carry
  // several frames (a fresh reader per call lost them, and the next sealed frame failed to open).
  cmesh::frame_reader reader{1 << 21};
  // Reads one length-prefixed frame body (blocking, 5 s cap); nullopt on EOF or timeout.
  std::optional<cmesh::bytes> read_frame() {
    for (;;) {
      if (auto body = reader.next()) return body;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return std::nullopt;
      uint8_t buffer[4096];
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return std::nullopt;
      REQUIRE(reader.push(buffer, static_cast<size_t>(n)).ok());
    }
  }
  void handshake() {
    std::array<uint8_t, 32> ephemeral;
    randombytes_buf(ephemeral.data(), ephemeral.size());
    cmesh::handshake hs(cmesh::handshake::role::initiator,
                        cmesh::local_credentials{id.public_key, id.secret_key, ""}, ephemeral, std::nullopt);
    send_raw(cmesh::frame_with_length(hs.start()));
    auto msg2 = read_frame();
    REQUIRE(msg2);
    auto step = hs.on_message(msg2->data(), msg2->size());
    REQUIRE(step.ok());
    REQUIRE(step->done);
    send_raw(cmesh::frame_with_length(step->reply));
    channel.emplace(hs.outcome().keys);
    peer = hs.outcome().peer;
  }
  cmesh::bytes ping_envelope(uint64_t nonce, const cmesh::node_id& source) {
    auto env = cmesh::encode_message(source, 0, cmesh::peer::ping{nonce, ""});
    REQUIRE(env.ok());
    return *env;
  }
  cmesh::bytes sealed(const cmesh::bytes& plaintext) {
    auto body = channel->seal(plaintext.data(), plaintext.size());
    REQUIRE(body.ok());
    return cmesh::frame_with_length(*body);
  }
  cmesh::bytes sealed_ping(uint64_t nonce) { return sealed(ping_envelope(nonce, id.public_key)); }
  // True once the node has answered `wanted` pongs (skipping the peer-list sample and the other
  // greetings a node sends every new connection; several envelopes may share a frame, a bundle).
  bool got_pong(int wanted = 1) {
    int pongs = 0;
    for (int frames = 0; frames < 64; ++frames) {  // the node's services greet a new peer too
      auto frame = read_frame();
      if (!frame) return false;
      auto plain = channel->open(frame->data(), frame->size());
      if (!plain) return false;
      std::vector<std::pair<const uint8_t*, size_t>> parts = {{plain->data(), plain->size()}};
      if (cmesh::is_bundle(plain->data(), plain->size())) {
        auto split = cmesh::split_bundle(plain->data(), plain->size());
        if (!split) return false;
        parts = *split;
      }
      for (const auto& [data, size] : parts) {
        auto env = cmesh::decode_envelope(data, size);
        if (!env) return false;
        if (env->type == cmesh::peer::pong::type_id && ++pongs == wanted) return true;
      }
    }
    return false;
  }
  bool closed_by_peer() {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    uint8_t buffer[256];
    ssize_t n;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) {
    }
    return n == 0 || n < 0;
  }
};

}  // namespace

TEST_CASE("real mesh: three processes find each other through one seed and exchange pings then survive SIGKILL and restart") {
  cmesh::crypto_init();
  temp_dir dir;
  std::vector<node_proc> nodes(3);
  for (int i = 0; i < 3; ++i) nodes[i] = make_node(dir, "n" + std::to_string(i));
  nodes[0].proc = start_node(dir, nodes[0], {}, "n0.log");
  REQUIRE(nodes[0].proc->wait_for_text("listening on", 10s));
  for (int i = 1; i < 3; ++i)
    nodes[i].proc = start_node(dir, nodes[i], {"--join", nodes[0].address}, "n" + std::to_string(i) + ".log");

  // Every node hears pongs from both others (nodes 1 and 2 only know node 0's address).
  for (int i = 0; i < 3; ++i) {
    INFO("node " << i << " log:\n" << nodes[i].proc->output());
    CHECK(nodes[i].proc->wait_for([&](const std::string& log) {
      return has_pong_from(log, nodes[(i + 1) % 3].did) && has_pong_from(log, nodes[(i + 2) % 3].did);
    }, 15s));
  }

  // SIGKILL node 2 and restart it on the same data folder: same identity, rejoins.
  nodes[2].proc->signal(SIGKILL);
  CHECK(nodes[2].proc->wait() == 128 + SIGKILL);
  auto before_restart_0 = count(nodes[0].proc->output(), "peer pong peer=" + nodes[2].did);
  nodes[2].proc = start_node(dir, nodes[2], {"--join", nodes[0].address}, "n2-restarted.log");
  CHECK(nodes[2].proc->wait_for_text("node " + nodes[2].did + " listening", 10s));
  CHECK(nodes[2].proc->wait_for([&](const std::string& log) {
    return has_pong_from(log, nodes[0].did) && has_pong_from(log, nodes[1].did);
  }, 15s));
  CHECK(nodes[0].proc->wait_for([&](const std::string& log) {
    return count(log, "peer pong peer=" + nodes[2].did) > before_restart_0;
  }, 15s));

  // Clean shutdown on SIGTERM: peers told, store closed, exit code 0.
  for (auto& n : nodes) n.proc->signal(SIGTERM);
  for (int i = 0; i < 3; ++i) {
    INFO("node " << i << " log:\n" << nodes[i].proc->output());
    CHECK(nodes[i].proc->wait(10s) == 0);
    CHECK(nodes[i].proc->output().find("stopped cleanly") != std::string::npos);
  }
}

TEST_CASE("real mesh: hostile bytes close only their own connection and the node keeps serving") {
  cmesh::crypto_init();
  temp_dir dir;
  std::vector<node_proc> nodes(2);
  for (int i = 0; i < 2; ++i) nodes[i] = make_node(dir, "h" + std::to_string(i));
  nodes[0].proc = start_node(dir, nodes[0], {}, "h0.log");
  REQUIRE(nodes[0].proc->wait_for_text("listening on", 10s));
  nodes[1].proc = start_node(dir, nodes[1], {"--join", nodes[0].address}, "h1.log");
  REQUIRE(nodes[0].proc->wait_for([&](const std::string& log) { return has_pong_from(log, nodes[1].did); }, 15s));
  int port = std::stoi(nodes[0].address.substr(nodes[0].address.rfind(':') + 1));

  SUBCASE("garbage before any handshake") {
    raw_client garbage(port);
    cmesh::bytes junk(4000);
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 131 + 7);
    garbage.send_raw(junk);
    CHECK(garbage.closed_by_peer());
  }
  SUBCASE("tampered frame after a valid handshake") {
    raw_client client(port);
    client.handshake();
    CHECK(client.peer.key == cmesh::node_id_from_did(nodes[0].did)->key);
    client.send_raw(client.sealed_ping(1));
    CHECK(client.got_pong());  // the authenticated channel works
    auto frame = client.sealed_ping(2);
    frame[frame.size() / 2] ^= 0x01;
    client.send_raw(frame);
    CHECK(client.closed_by_peer());
  }
  SUBCASE("replayed frame after a valid handshake") {
    raw_client client(port);
    client.handshake();
    auto frame = client.sealed_ping(7);
    client.send_raw(frame);
    CHECK(client.got_pong());
    client.send_raw(frame);  // same bytes again: the counter nonce has moved on
    CHECK(client.closed_by_peer());
  }
  SUBCASE("a bundle of two envelopes in one frame is two messages") {
    raw_client client(port);
    client.handshake();
    client.send_raw(client.sealed(cmesh::encode_bundle(
        {client.ping_envelope(11, client.id.public_key), client.ping_envelope(12, client.id.public_key)})));
    CHECK(client.got_pong(2));
    // Then one of them claiming another source: the whole frame is refused, the connection closed.
    const cmesh::identity other = cmesh::identity::generate();
    client.send_raw(client.sealed(cmesh::encode_bundle(
        {client.ping_envelope(13, client.id.public_key), client.ping_envelope(14, other.public_key)})));
    CHECK(client.closed_by_peer());
  }
  SUBCASE("a bundle that is not one (bad tag) closes the connection") {
    raw_client client(port);
    client.handshake();
    cmesh::bytes bundle = cmesh::encode_bundle(
        {client.ping_envelope(21, client.id.public_key), client.ping_envelope(22, client.id.public_key)});
    bundle[2] = 'x';  // "b1" -> "x1"
    client.send_raw(client.sealed(bundle));
    CHECK(client.closed_by_peer());
  }
  SUBCASE("oversized frame length") {
    raw_client client(port);
    client.handshake();
    client.send_raw({0x7f, 0xff, 0xff, 0xff});
    CHECK(client.closed_by_peer());
  }
  // The node logged why, and its other peer keeps getting answers.
  CHECK(nodes[0].proc->wait_for_text("transport connection_closed", 5s));
  auto pongs_before = count(nodes[1].proc->output(), "peer pong peer=" + nodes[0].did);
  CHECK(nodes[1].proc->wait_for([&](const std::string& log) {
    return count(log, "peer pong peer=" + nodes[0].did) >= pongs_before + 2;
  }, 10s));
  CHECK(nodes[0].proc->running());
}

TEST_CASE("real mesh: a pinned seed identity that does not match is refused") {
  cmesh::crypto_init();
  temp_dir dir;
  node_proc seed, joiner;
  seed = make_node(dir, "seed");
  joiner = make_node(dir, "joiner");
  auto impostor_did = new_identity(dir, "other");  // an identity that is not the seed's
  seed.proc = start_node(dir, seed, {}, "seed.log");
  REQUIRE(seed.proc->wait_for_text("listening on", 10s));

  SUBCASE("wrong pin refused") {
    joiner.proc = start_node(dir, joiner, {"--join", impostor_did + "@" + seed.address}, "joiner.log");
    CHECK(joiner.proc->wait_for_text("identity_mismatch", 10s));
    std::this_thread::sleep_for(1500ms);
    INFO(joiner.proc->output());
    CHECK(joiner.proc->output().find("peer peer_added") == std::string::npos);
  }
  SUBCASE("right pin accepted") {
    joiner.proc = start_node(dir, joiner, {"--join", seed.did + "@" + seed.address}, "joiner.log");
    CHECK(joiner.proc->wait_for([&](const std::string& log) { return has_pong_from(log, seed.did); }, 15s));
  }
}

TEST_CASE("real mesh: startup errors are clear and exit non-zero") {
  cmesh::crypto_init();
  temp_dir dir;
  auto port = cmesh::testing::free_port();
  node_proc holder;
  holder.did = new_identity(dir, "holder");
  holder.key = dir.file("holder.key");
  holder.address = "127.0.0.1:" + std::to_string(port);
  holder.data = dir.file("holder-data");
  holder.proc = start_node(dir, holder, {}, "holder.log");
  REQUIRE(holder.proc->wait_for_text("listening on", 10s));

  auto run = [&](const std::vector<std::string>& args) {
    return cmesh::testing::run(binary, args, dir.file("error.log"), 20s);
  };
  {
    auto [code, out] = run({"node", "--listen", holder.address, "--data", dir.file("d1")});
    CHECK(code == 1);
    CHECK(out.find("Address already in use") != std::string::npos);
  }
  {
    auto [code, out] = run({"node", "--listen", "127.0.0.1:99999", "--data", dir.file("d2")});
    CHECK(code == 2);
    CHECK(out.find("is not HOST:PORT") != std::string::npos);
  }
  {
    auto [code, out] = run({"node", "--join", "localhost", "--data", dir.file("d3")});
    CHECK(code == 2);
    CHECK(out.find("--join") != std::string::npos);
  }
  {
    auto key = dir.file("open.key");
    REQUIRE(run({"id", "new", key}).first == 0);
    ::chmod(key.c_str(), 0644);
    auto [code, out] = run({"node", "--identity", key, "--listen", "127.0.0.1:0", "--data", dir.file("d4")});
    CHECK(code == 2);
    CHECK(out.find("readable by others") != std::string::npos);
    auto [show_code, show_out] = run({"id", "show", key});
    CHECK(show_code == 1);
  }
  {
    auto [code, out] = run({"node", "--identity", dir.file("none.key"), "--listen", "127.0.0.1:0", "--data", dir.file("d5")});
    CHECK(code == 2);
    CHECK(out.find("cmesh id new") != std::string::npos);
  }
  {
    auto file = dir.file("plain-file");
    { std::ofstream(file) << "x"; }
    auto [code, out] = run({"node", "--listen", "127.0.0.1:0", "--data", file + "/sub"});
    CHECK(code == 2);
    CHECK(out.find("cannot create data folder") != std::string::npos);
  }
  {
    auto [code, out] = run({"node", "--no-such-flag"});
    CHECK(code == 2);
    CHECK(out.find("unknown option --no-such-flag") != std::string::npos);
  }
  {
    auto [code, out] = run({"node", "--help"});
    CHECK(code == 0);
    CHECK(out.find("--join") != std::string::npos);
  }
}

TEST_CASE("real mesh: a node started before its seed keeps dialing with backoff and joins when the seed appears") {
  cmesh::crypto_init();
  temp_dir dir;
  node_proc seed, joiner;
  seed = make_node(dir, "late-seed");
  joiner = make_node(dir, "early");
  joiner.proc = start_node(dir, joiner, {"--join", seed.address}, "early.log");
  REQUIRE(joiner.proc->wait_for_text("listening on", 10s));
  std::this_thread::sleep_for(1500ms);  // several refused connection attempts happen meanwhile
  CHECK(joiner.proc->output().find("peer peer_added") == std::string::npos);
  seed.proc = start_node(dir, seed, {}, "late-seed.log");
  CHECK(joiner.proc->wait_for([&](const std::string& log) { return has_pong_from(log, seed.did); }, 15s));
  CHECK(seed.proc->wait_for([&](const std::string& log) { return has_pong_from(log, joiner.did); }, 15s));
}
