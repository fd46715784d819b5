// Wire messages of reputation (actors/reputation, spec in docs/reputation.md).
// Each is the payload of an envelope with service = services::reputation and type = T::type_id.
// Keys, hashes and signatures travel as `bytes`; the machine checks their lengths (32, 32, 64) and
// returns an error value for anything malformed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::reputation {

// Version of the signed encodings below; it selects the domain tag the signature covers.
inline constexpr uint8_t signed_format_version = 1;

// "`endorser` accessed the resource whose BLAKE2b-256 hash is `resource_hash`, served by
// `subject`, at `issued_at_us`." Signed by the endorser over the canonical encoding
// (docs/reputation.md section 2). Sent by the endorser to the subject, which may show it to
// anyone; any holder of the endorser's public key can verify it.
struct endorsement {
  static constexpr uint16_t service_id = services::reputation;
  static constexpr uint16_t type_id = 1;
  uint8_t version = signed_format_version;
  bytes endorser;       // 32-byte ed25519 public key
  bytes subject;        // 32-byte ed25519 public key
  bytes resource_hash;  // 32 bytes
  int64_t issued_at_us = 0;
  uint64_t nonce = 0;   // fresh per endorsement: (endorser, nonce) is never accepted twice
  bytes signature;      // 64 bytes
  MSGPACK_DEFINE(version, endorser, subject, resource_hash, issued_at_us, nonce, signature);
};

// Reason codes of a report (what the subject did). Weights in docs/reputation.md section 4.
enum class report_reason : uint8_t {
  fraud = 1,          // took payment or goods and did not deliver
  impersonation = 2,  // claimed another identity or forged signatures
  spam = 3,           // unsolicited traffic
  malformed = 4,      // sent malformed or hostile protocol messages
  unresponsive = 5,   // accepted work and went silent
};
inline constexpr uint8_t report_reason_max = 5;

// "`reporter` saw `subject` do `reason`; `evidence_hash` is the BLAKE2b-256 hash of the evidence."
// Signed by the reporter over the canonical encoding (docs/reputation.md section 2).
struct report {
  uint8_t version = signed_format_version;
  bytes reporter;       // 32 bytes
  bytes subject;        // 32 bytes
  uint8_t reason = 0;   // a report_reason
  bytes evidence_hash;  // 32 bytes
  int64_t issued_at_us = 0;
  uint64_t nonce = 0;
  bytes signature;      // 64 bytes
  MSGPACK_DEFINE(version, reporter, subject, reason, evidence_hash, issued_at_us, nonce, signature);
};

// A report spreading through contacts, at most `hops_left` more hops.
struct report_gossip {
  static constexpr uint16_t service_id = services::reputation;
  static constexpr uint16_t type_id = 2;
  report body;
  uint8_t hops_left = 0;
  MSGPACK_DEFINE(body, hops_left);
};

// ---- Client protocol (docs/reputation.md section 8) -------------------------------------------
// A client (cmesh reputation) authenticates to a node with the transport handshake and sends an
// `endorsement` or a `report_gossip` with a non-zero envelope correlation: the node answers with a
// `claim_result` carrying the same correlation. Peers gossip with correlation 0 and get no answer.
// A `score_query` is answered with a `score_reply`.

// Outcome of a claim a client submitted. `verdict` is reputation::verdict (0 = accepted;
// 1 malformed, 2 unsupported_version, 3 bad_signature, 4 from_future, 5 stale, 6 replay,
// 7 self_claim, 8 unknown_reason). Wire values: never renumber.
struct claim_result {
  static constexpr uint16_t service_id = services::reputation;
  static constexpr uint16_t type_id = 3;
  uint8_t verdict = 0;
  std::string reason;      // empty when accepted
  int64_t score = 0;       // the subject's score at this node after the claim
  MSGPACK_DEFINE(verdict, reason, score);
};

// "What does this node know about `subject`?" At most `reports_max` cached reports are returned.
struct score_query {
  static constexpr uint16_t service_id = services::reputation;
  static constexpr uint16_t type_id = 4;
  bytes subject;           // 32-byte ed25519 public key
  uint32_t reports_max = 16;
  MSGPACK_DEFINE(subject, reports_max);
};

inline constexpr uint8_t score_ok = 0;
inline constexpr uint8_t score_bad_request = 1;

// The node's score card for the subject (docs/reputation.md section 4) and its cached reports
// about it, most recent first. The client verifies every report itself.
struct score_reply {
  static constexpr uint16_t service_id = services::reputation;
  static constexpr uint16_t type_id = 5;
  uint8_t status = score_ok;
  std::string reason;      // when status != score_ok
  int64_t score = 0;
  uint32_t endorsers = 0;
  uint32_t reporters = 0;
  int64_t report_weight = 0;
  uint64_t endorsements = 0;
  std::vector<report> reports;
  MSGPACK_DEFINE(status, reason, score, endorsers, reporters, report_weight, endorsements, reports);
};

}  // namespace cmesh::reputation
