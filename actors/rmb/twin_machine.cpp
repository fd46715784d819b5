#include "actors/rmb/twin_machine.hpp"

#include "messages/codec.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::rmb {

namespace {

bytes text_bytes(const std::string& text) { return bytes(text.begin(), text.end()); }

twin_result failed(std::string reason) {
  twin_result r;
  r.code = status_code::command_failed;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

twin_result twin_machine::handle(const twin_envelope& request) {
  const std::string name(request.data.begin(), request.data.end());
  if (request.command == "echo") {
    twin_result r;
    r.data = request.data;
    return r;
  }
  if (request.command == "whoami") {
    twin_result r;
    node_id source = request.source.size() == 32 ? node_id::from_bytes(request.source.data()) : node_id{};
    r.data = text_bytes(did_from_node_id(self_) + " " + did_from_node_id(source));
    return r;
  }
  if (request.command == "counter.add" || request.command == "counter.get") {
    if (name.empty() || name.size() > counter_name_max)
      return failed("counter name must be 1 to " + std::to_string(counter_name_max) + " bytes");
    auto it = state_.counters.find(name);
    twin_result r;
    if (request.command == "counter.get") {
      r.data = text_bytes(std::to_string(it == state_.counters.end() ? 0 : it->second));
      return r;
    }
    if (it == state_.counters.end()) {
      if (state_.counters.size() >= counters_max)
        return failed("too many counters (at most " + std::to_string(counters_max) + ")");
      it = state_.counters.emplace(name, 0).first;
    }
    ++it->second;
    r.data = text_bytes(std::to_string(it->second));
    r.state_changed = true;
    return r;
  }
  return failed("unknown command '" + request.command +
                "' (known: echo, counter.add, counter.get, whoami)");
}

bytes twin_machine::encode_state() const {
  auto packed = pack_value(state_);
  return packed ? *packed : bytes{};
}

result<twin_state> twin_machine::decode_state(const bytes& data) {
  return unpack_value<twin_state>(data.data(), data.size());
}

}  // namespace cmesh::rmb
