// Errors as values: one error channel for every layer (leveldb's Status, CAF's expected).
//
// Operating errors (bad bytes from a peer, a failed signature, a full disk, a timeout) are returned
// as `cmesh::error` inside a `cmesh::result<T>`; they never escape as exceptions across actors.
// Programmer errors are assertions, which stay on in release builds.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace cmesh {

enum class errc : int {
  ok = 0,
  malformed,          // bytes that do not parse as what they claim to be
  truncated,          // input ended before the structure did
  too_large,          // over a named limit (see runtime/core/limits.hpp)
  unsupported_version,
  unknown_type,       // a message type or service this node does not know
  bad_signature,
  auth_failed,        // handshake or AEAD authentication failure
  identity_mismatch,  // peer is not the identity we pinned
  replayed,
  io_error,
  permission_denied,
  not_found,
  already_exists,
  invalid_argument,
  timeout,
  unavailable,
  storage_error,
  closed,
};

const char* errc_name(errc code);

struct error {
  errc code = errc::ok;
  std::string message;

  error() = default;
  error(errc c, std::string msg) : code(c), message(std::move(msg)) {}

  bool ok() const { return code == errc::ok; }
  // True when this holds an error (so `if (auto e = f()) handle(e);` reads naturally).
  explicit operator bool() const { return code != errc::ok; }
  // "malformed: envelope field 3 is not an integer"
  std::string describe() const;
};

// A value or an error. Minimal std::expected stand-in (g++ 12 has no <expected>).
template <class T>
class result {
public:
  result(T value) : state_(std::move(value)) {}
  result(error err) : state_(std::move(err)) { assert(std::get<error>(state_).code != errc::ok); }

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const { assert(!ok()); return std::get<1>(state_); }

private:
  std::variant<T, error> state_;
};

// For operations that return nothing on success.
using status = error;  // code == errc::ok means success
inline status ok_status() { return {}; }

}  // namespace cmesh
