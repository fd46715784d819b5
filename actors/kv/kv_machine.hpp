// The replicated key/value state machine and the registrar: what every Raft replica of a group
// applies its committed entries to (actors/kv/kv_actor.cpp owns one per replica).
//
// Pure and deterministic: no CAF, no I/O, no clock, no randomness, no unordered containers. Two
// machines that applied the same commands at the same indices hold the same state, the same
// sessions and the same state_hash(). Never throws; malformed input comes back as a response
// status (requests) or an error value (snapshots). Not thread-safe: one owner (the replica actor).
//
// Data: one ordered map from key to value (std::map). Registrar names live in the same map under
// "name/" + lowercase(name) with a msgpack name_record value (messages/kv_messages.hpp). Names
// compare case-insensitively, as DNS names do, so "helloWorld.mcom" and "HelloWorld.mcom" are one
// name. Plain put, del and cas refuse keys under "name/" (400) so names change only through the
// registrar operations; a plain get may read the raw record.
//
// Name syntax: labels of [A-Za-z0-9-], 1..63 characters, not starting or ending with '-',
// separated by '.', at least two labels, at most 253 characters, last label "mcom". A bad name is
// a 400 whose reason names the 0-based position of the first bad character.
//
// Exactly-once writes: a write with client_id != 0 and sequence != 0 is applied at most once per
// (client_id, sequence). The machine keeps one session per client: the last applied sequence and
// its response. A command with the session's last sequence gets that response again (with the
// index at which it first applied) and has no effect; an older sequence gets 400 "stale
// sequence" and has no effect; a newer one (gaps allowed) is applied. At most
// limits_config::sessions_max sessions: a new client evicts the session whose last command is
// oldest by log index. An evicted client's retry of an old sequence is applied again (the usual
// bounded-session trade-off; docs/raft.md ("Key/value service")).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "messages/error.hpp"
#include "messages/kv_messages.hpp"

namespace cmesh::kv {

// Registrar keys live under this prefix of the data map.
inline constexpr std::string_view name_key_prefix = "name/";
// A name's target (FQMN): long enough for any realistic fully qualified mesh name, small enough
// that a name record stays a short value.
inline constexpr size_t name_target_bytes_max = 1024;
// DNS limits, kept so names can be mapped onto DNS later.
inline constexpr size_t name_chars_max = 253;
inline constexpr size_t name_label_chars_max = 63;

struct limits_config {
  size_t key_bytes_max = 1024;         // keys are identifiers, not data
  size_t value_bytes_max = 64 * 1024;  // a command (key + value + expected) stays one frame
  size_t sessions_max = 10'000;        // clients remembered for exactly-once writes
};

// Checks that a command within these limits fits one envelope and that a transfer's 32-byte key
// fits a value. The reason names the field. Errors: invalid_argument.
status validate_limits(const limits_config& limits);

// "" if `name` is a valid registrar name, else a reason naming the 0-based position of the first
// bad character, e.g. `bad name "bad..mcom" at position 4: empty label`.
std::string check_name(std::string_view name);

class machine {
public:
  // REQUIRES: validate_limits(limits).ok().
  explicit machine(limits_config limits = {});

  // Checks a request before it is proposed or read: unknown operation (400), empty key (400),
  // key, value or expected over the limits (413), a plain put/del/cas under "name/" (400), a bad
  // name (400), a name target empty (400) or over name_target_bytes_max (413), a transfer whose
  // value is not a 32-byte key (400). Returns status 0 when the request is fine.
  static response validate(const request& req, const limits_config& limits);

  // Applies one committed command at log index `index`. REQUIRES: index > applied_index().
  // Re-validates the request with this machine's limits (a command that fails has no effect and
  // does not touch the client's session). Registrar writes require a 32-byte caller (else 400).
  // A read (get, name_resolve) is answered as read() would, without effect. The response's index
  // is `index`, except for a repeated write, which carries the index of its first application.
  response apply(uint64_t index, const command& cmd);

  // Answers get and name_resolve from the current state; anything else is 400. No effect.
  // The response's index is 0 (the replica fills in the index it served the read at).
  response read(const request& req) const;

  // The index of the last command applied (or of the restored snapshot); 0 at start.
  uint64_t applied_index() const { return applied_index_; }

  // The whole state (data, sessions, applied index) as msgpack bytes. Never fails.
  bytes snapshot() const;
  // Replaces the whole state with a snapshot() of some machine. Checks everything first (shape,
  // version, keys in strictly increasing order, name records, sessions) and on any error leaves
  // the state unchanged. Sessions over this machine's sessions_max are evicted oldest first.
  // Errors: truncated, malformed, too_large, unsupported_version.
  status restore(const bytes& data);

  // Number of keys, names included.
  size_t size() const { return data_.size(); }
  // A 64-bit hash of the data (keys and values, not sessions): a sum of one mixed hash per
  // entry, kept up to date on every change, so it costs O(1) and does not depend on the order of
  // the operations that produced the data. Same data => same hash on every replica and platform.
  uint64_t state_hash() const { return data_hash_; }

  const limits_config& limits() const { return limits_; }
  size_t sessions() const { return sessions_.size(); }

private:
  struct session {
    uint64_t sequence = 0;         // last applied sequence
    uint64_t last_used_index = 0;  // log index of the client's most recent command (LRU order)
    response last;                 // the response to `sequence`
  };

  response execute(const command& cmd);
  response put(const request& req);
  response del(const request& req);
  response cas(const request& req);
  response name_register(const request& req, const bytes& caller);
  response name_transfer(const request& req, const bytes& caller);
  response name_release(const request& req, const bytes& caller);

  void set_value(const std::string& key, std::string value);
  void erase_value(std::map<std::string, std::string>::iterator it);
  void touch(std::map<uint64_t, session>::iterator it, uint64_t index);
  void remember(uint64_t client_id, uint64_t sequence, uint64_t index, const response& answer);
  void evict_oldest_session();

  limits_config limits_;
  std::map<std::string, std::string> data_;
  std::map<uint64_t, session> sessions_;             // by client_id
  std::map<uint64_t, uint64_t> sessions_by_use_;     // last_used_index -> client_id
  uint64_t applied_index_ = 0;
  uint64_t data_hash_ = 0;
};

}  // namespace cmesh::kv
