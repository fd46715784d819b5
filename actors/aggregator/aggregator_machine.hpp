// Aggregator directory as pure machines: the aggregator keeps tag -> agent lists; agents register
// (signed), refresh with imAlive (signed) and look up agents by tags in one round trip; entries
// that are not refreshed expire. Also the agent-side client that registers, refreshes before
// expiry and verifies lookup results. Spec: docs/aggregator.md.
//
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_us` (mesh epoch,
// the same on every node because signed times cross nodes); randomness (the sample returned when
// more agents match than a reply may carry) from the seeded rng handed in. Signing and verifying
// are deterministic ed25519. Every input appends what the node must do to `effects`.
//
// The aggregator keeps no durable state: its directory is soft state that agents rebuild by
// refreshing (an imAlive for an unknown agent is answered unknown_agent, and the client then
// registers again). Ownership: one machine per aggregator actor (or client actor). Not
// thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "messages/aggregator_messages.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::aggregator {

// ---- signatures ------------------------------------------------------------------------------
// Signed bytes: the msgpack array
//   ["cmesh-aggregator-registration-v1", agent, address, tags, ttl_s, sequence, signed_ms]
//   ["cmesh-aggregator-alive-v1", agent, sequence, signed_ms]
// (every field but the signature, behind a domain string that keeps the two, and every other
// protocol's signatures, apart).
bytes registration_signing_bytes(const agent_registration& registration);
bytes alive_signing_bytes(const i_am_alive& alive);
// Set the agent field to the signer's key and sign.
void sign_registration(agent_registration& registration, const identity& agent);
void sign_alive(i_am_alive& alive, const identity& agent);
// False also for wrong key or signature sizes.
bool verify_registration(const agent_registration& registration);
bool verify_alive(const i_am_alive& alive);

// ---- the aggregator --------------------------------------------------------------------------

struct config {
  uint32_t tick_ms = 1000;               // how often the shell calls tick() (expiry sweep)
  uint32_t ttl_s_min = 10;               // shorter lifetimes would make refresh traffic dominate
  uint32_t ttl_s_max = 3600;             // a vanished agent stays listed at most this long
  uint32_t signed_within_ms = 60'000;    // a registration or imAlive signed longer ago is stale:
                                         // bounds how long a captured one can be replayed
  uint32_t clock_skew_ms_max = 30'000;   // or signed this far in the future
  size_t agents_max = 65536;             // directory entries: memory is O(agents x tags)
  size_t agents_per_tag_max = 4096;      // one tag list; bounds the work of one lookup
  size_t tags_per_agent_max = 16;        // category, subcategory, name, location, adjectives
  size_t tag_chars_max = 64;             // a tag is a word or two, not a document
  size_t address_chars_max = limits::address_chars_max;
  size_t lookup_tags_max = 8;            // tags one lookup may combine
  size_t lookup_results_max = 64;        // agents in one reply: keeps it a small frame (about
                                         // 64 x 1.3 KiB at the other bounds' maximum)
};

// Errors (invalid_argument) name the bad field.
status validate(const config& cfg);

using request_message = std::variant<register_agent, i_am_alive, lookup_agents>;
using reply_message = std::variant<registration_reply, lookup_reply>;

enum class event_kind : uint8_t { registered, refreshed, expired, refused };
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id agent;
  status_code code = status_code::ok;
  std::string detail;
};

struct effects {
  struct send {
    node_id to;
    reply_message message;
  };
  std::vector<send> sends;
  std::vector<event> events;
  void clear() {
    sends.clear();
    events.clear();
  }
};

class machine {
public:
  struct entry {
    agent_registration registration;  // as signed by the agent (returned by lookups)
    std::vector<std::string> tags;    // sorted, for matching
    int64_t expires_ms = 0;
    uint64_t last_sequence = 0;
  };

  // REQUIRES: validate(cfg) succeeds.
  machine(config cfg, uint64_t rng_seed);

  // A request from node `from`; exactly one reply to `from` is appended.
  void on_message(int64_t now_us, const node_id& from, const request_message& message,
                  effects& out);
  // Drops the entries whose time has come.
  void tick(int64_t now_us, effects& out);

  const std::map<node_id, entry>& entries() const { return entries_; }
  // Agents listed under `tag` (expired but not yet swept ones included).
  size_t agents_with_tag(const std::string& tag) const;
  const config& configuration() const { return config_; }

private:
  registration_reply handle_register(int64_t now_ms, const register_agent& m, effects& out);
  registration_reply handle_alive(int64_t now_ms, const i_am_alive& m, effects& out);
  lookup_reply handle_lookup(int64_t now_ms, const lookup_agents& m);
  std::optional<std::pair<status_code, std::string>> check_tags(
      const std::vector<std::string>& tags, size_t tags_max) const;
  std::optional<std::pair<status_code, std::string>> check_signed_time(int64_t now_ms,
                                                                       uint64_t signed_ms) const;
  void unlist(const node_id& agent, const entry& e);
  void set_expiry(const node_id& agent, entry& e, int64_t expires_ms);

  config config_;
  rng rng_;
  std::map<node_id, entry> entries_;
  std::map<std::string, std::set<node_id>> by_tag_;
  std::set<std::pair<int64_t, node_id>> by_expiry_;
};

// ---- the agent side --------------------------------------------------------------------------

struct client_config {
  uint32_t ttl_s = 120;                 // asked for in each registration
  uint32_t refresh_divisor = 3;         // imAlive every ttl_s / 3: two may be lost before expiry
  uint32_t reply_timeout_ms = 5000;     // a request unanswered this long is sent again
  size_t lookups_pending_max = 64;      // lookups awaiting replies; more are refused at once
};

struct lookup_result {
  uint64_t request_id = 0;
  bool timed_out = false;  // no reply within reply_timeout_ms (status and agents are empty)
  status_code code = status_code::ok;
  std::string reason;
  std::vector<agent_registration> agents;  // only those whose signatures verify and that carry
                                           // every requested tag
  size_t discarded = 0;                    // returned by the aggregator but failed those checks
};

struct client_effects {
  struct send {
    node_id to;
    request_message message;
  };
  std::vector<send> sends;
  std::vector<lookup_result> lookups;
  std::vector<event> events;  // registered, refreshed, refused (for logs)
  void clear() {
    sends.clear();
    lookups.clear();
    events.clear();
  }
};

// A lookup an agent's actor runs at a set time (simulation scenarios; aggregator_actor.hpp).
struct scheduled_lookup {
  int64_t at_us = 0;  // actor clock
  std::vector<std::string> tags;
  uint32_t limit = 0;
};

class client {
public:
  client(identity self, std::string address, std::vector<std::string> tags, node_id aggregator,
         client_config cfg);

  // Sends the first registration.
  void start(int64_t now_us, client_effects& out);
  // Refreshes before expiry (imAlive, or a new registration when not registered) and resends
  // what went unanswered.
  void tick(int64_t now_us, client_effects& out);
  // Asks for agents carrying every tag; the result comes in out.lookups of a later input.
  // Errors: unavailable (too many lookups pending).
  result<uint64_t> lookup(int64_t now_us, std::vector<std::string> tags, uint32_t limit,
                          client_effects& out);
  void on_message(int64_t now_us, const node_id& from, const reply_message& message,
                  client_effects& out);

  bool registered() const { return registered_; }
  int64_t expires_ms() const { return expires_ms_; }

private:
  void send_registration(int64_t now_us, client_effects& out);
  void send_alive(int64_t now_us, client_effects& out);
  uint64_t next_sequence(int64_t now_us);
  void on_registration_reply(int64_t now_us, const registration_reply& reply, client_effects& out);
  void on_lookup_reply(const lookup_reply& reply, client_effects& out);

  identity self_;
  std::string address_;
  std::vector<std::string> tags_;
  node_id aggregator_;
  client_config config_;
  bool registered_ = false;
  int64_t expires_ms_ = 0;
  int64_t next_refresh_us_ = 0;
  uint64_t sequence_ = 0;
  uint64_t next_request_id_ = 1;
  struct pending_registration {
    uint64_t request_id = 0;  // 0 = none outstanding
    int64_t sent_us = 0;
  } pending_;
  struct pending_lookup {
    std::vector<std::string> tags;
    int64_t sent_us = 0;
  };
  std::map<uint64_t, pending_lookup> lookups_;
};

}  // namespace cmesh::aggregator
