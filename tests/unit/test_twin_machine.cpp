// The twin's command handlers (actors/rmb/twin_machine.hpp).
#include <doctest/doctest.h>

#include "actors/rmb/twin_machine.hpp"
#include "runtime/crypto/identity.hpp"

using namespace cmesh;
using namespace cmesh::rmb;

namespace {

twin_envelope request_for(const std::string& command, const std::string& data) {
  twin_envelope env;
  env.command = command;
  env.data = bytes(data.begin(), data.end());
  env.source = bytes(32, 7);
  return env;
}

std::string text(const bytes& b) { return std::string(b.begin(), b.end()); }

}  // namespace

TEST_CASE("twin counter.add counts and changes state and counter.get reads without changing it") {
  twin_machine twin(node_id{}, {});
  auto first = twin.handle(request_for("counter.add", "visits"));
  CHECK(first.code == status_code::ok);
  CHECK(first.state_changed);
  CHECK(text(first.data) == "1");
  CHECK(text(twin.handle(request_for("counter.add", "visits")).data) == "2");
  auto read = twin.handle(request_for("counter.get", "visits"));
  CHECK_FALSE(read.state_changed);
  CHECK(text(read.data) == "2");
  CHECK(text(twin.handle(request_for("counter.get", "other")).data) == "0");
}

TEST_CASE("twin state survives encode and decode") {
  twin_machine twin(node_id{}, {});
  twin.handle(request_for("counter.add", "a"));
  twin.handle(request_for("counter.add", "a"));
  auto decoded = twin_machine::decode_state(twin.encode_state());
  REQUIRE(decoded);
  twin_machine again(node_id{}, *decoded);
  CHECK(text(again.handle(request_for("counter.add", "a")).data) == "3");
  CHECK_FALSE(twin_machine::decode_state(bytes{0xc1}));
}

TEST_CASE("twin echo returns the data and unknown commands fail with a reason") {
  twin_machine twin(node_id{}, {});
  auto echoed = twin.handle(request_for("echo", "hello"));
  CHECK(echoed.code == status_code::ok);
  CHECK(text(echoed.data) == "hello");
  auto unknown = twin.handle(request_for("launch", ""));
  CHECK(unknown.code == status_code::command_failed);
  CHECK(unknown.reason.find("unknown command 'launch'") != std::string::npos);
  auto empty = twin.handle(request_for("counter.add", ""));
  CHECK(empty.code == status_code::command_failed);
  CHECK_FALSE(empty.state_changed);
}

TEST_CASE("twin whoami names the twin and the caller") {
  auto me = identity::from_seed(std::array<uint8_t, 32>{1});
  twin_machine twin(me.public_key, {});
  auto answer = twin.handle(request_for("whoami", ""));
  CHECK(text(answer.data).rfind(me.did() + " did:key:", 0) == 0);
}
