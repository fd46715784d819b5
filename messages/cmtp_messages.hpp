// CMTP: the client-facing request/response of the router (docs/router.md §1, DESIGN.md §4).
// The payloads of envelopes with service = services::cmtp once the router's shell exists; the
// router machine (actors/router/router_machine.hpp) already speaks them, and hashes their msgpack
// encodings for the audit trail.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::cmtp {

inline constexpr const char* version_0 = "CMTP/0";

struct request {
  static constexpr uint16_t service_id = services::cmtp;
  static constexpr uint16_t type_id = 1;
  std::string version = version_0;
  std::string tx;                              // client-chosen, [A-Za-z0-9_-]{1,64}
  std::string fqmn;
  std::string token;                           // compact JWS session token
  std::map<std::string, std::string> headers;  // sorted: one encoding per request
  bytes body;
  MSGPACK_DEFINE(version, tx, fqmn, token, headers, body);
};

// CAF 0.17 inspection, so requests and responses travel typed between actors of one process
// (router_batch_atom); found by ADL, needs no CAF header here.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request& x) {
  return f(x.version, x.tx, x.fqmn, x.token, x.headers, x.body);
}

struct response {
  static constexpr uint16_t service_id = services::cmtp;
  static constexpr uint16_t type_id = 2;
  uint16_t status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;
  bytes body;
  bytes audit;  // 32 bytes once the request reached the audit trail (docs/router.md §5); else empty
  MSGPACK_DEFINE(status, reason, headers, body, audit);
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, response& x) {
  return f(x.status, x.reason, x.headers, x.body, x.audit);
}

}  // namespace cmesh::cmtp
