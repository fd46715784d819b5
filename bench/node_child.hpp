// A `cmesh node` child process for the benchmarks that measure a node over the wire (router,
// events): a fresh identity, a free port on 127.0.0.1, data and log in one folder. The process is
// stopped (SIGTERM) and reaped when the handle goes, on every path.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "messages/error.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::bench {

class node_child {
public:
  ~node_child();
  node_child(const node_child&) = delete;
  node_child& operator=(const node_child&) = delete;

  const identity& key() const { return key_; }
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  const std::string& log() const { return log_; }

  // Starts `cmesh node --listen ADDRESS --data DIR/node --identity DIR/node.key` plus `extra`
  // (which may name the address and DID as {address} and {did}). Errors: io_error.
  static result<std::unique_ptr<node_child>> start(const std::string& dir, const std::vector<std::string>& extra = {});

private:
  node_child() = default;
  identity key_;
  std::string address_;
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace cmesh::bench
