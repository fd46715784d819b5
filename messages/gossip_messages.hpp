// Wire messages of the cached gossip search (actors/gossip, spec in docs/gossip-search.md).
// Each is the payload of an envelope with service = services::gossip and type = T::type_id.
// Keys travel as `bytes` and are checked (32 bytes) by the machine, which returns an error value
// for anything malformed.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::gossip {

// The five searchable tags of seed 003. In a query an empty tag means "any"; in a profile an empty
// tag matches only queries that leave it empty.
struct search_tags {
  std::string category;     // clothing, tech, grocery, art, travel, experience ...
  std::string subcategory;  // fruits
  std::string name;         // apple
  std::string location;     // city, country
  std::string adjective;    // organic, pink, cotton, sustainable
  MSGPACK_DEFINE(category, subcategory, name, location, adjective);

  friend auto operator<=>(const search_tags&, const search_tags&) = default;
  friend bool operator==(const search_tags&, const search_tags&) = default;
};

// One cache row, and one search answer: an agent's public key, address and tags. Nothing else is
// kept or sent about an agent.
struct agent_record {
  bytes key;            // 32-byte ed25519 public key
  std::string address;  // where the agent listens
  search_tags tags;     // its profile (in answers) or what it searched (in referrals)
  MSGPACK_DEFINE(key, address, tags);
};

// A gossip: "who matches these tags?" from `origin`, travelling at most `hops_left` more hops.
// Sent by the origin to its contacts and by a contact that the origin asked to forward.
struct query {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 1;
  uint64_t search_id = 0;     // chosen by the origin; (origin, search_id) names the search
  bytes origin_key;           // 32 bytes
  std::string origin_address; // answers go straight here
  search_tags tags;
  uint8_t hops_left = 0;      // 0 = the receiver must not offer to forward
  MSGPACK_DEFINE(search_id, origin_key, origin_address, tags, hops_left);
};

// Answer source codes for `search_result::source`.
inline constexpr uint8_t result_from_query = 1;       // profile match and/or request cache
inline constexpr uint8_t result_from_cache_query = 2; // a referred agent's request cache

// Matches for a search, sent straight to its origin. An empty list answers a cache_query with
// "not in my cache".
struct search_result {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 2;
  uint64_t search_id = 0;
  uint8_t source = result_from_query;
  std::vector<agent_record> matches;
  MSGPACK_DEFINE(search_id, source, matches);
};

// "I have no answer, but `requester` searched the same tags before: ask it." If
// `forward_contacts` > 0 the sender also holds a forward offer the origin may accept later (for
// example when the referred agent has nothing cached); `referrer_address` is where to accept it.
struct referral {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 3;
  uint64_t search_id = 0;
  agent_record requester;
  uint16_t forward_contacts = 0;
  std::string referrer_address;
  MSGPACK_DEFINE(search_id, requester, forward_contacts, referrer_address);
};

// "I have no answer. Shall I ask my `contacts` contacts?" The offerer may be several hops from
// the origin, so it says where it listens.
struct forward_offer {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 4;
  uint64_t search_id = 0;
  uint16_t contacts = 0;
  std::string offerer_address;
  MSGPACK_DEFINE(search_id, contacts, offerer_address);
};

// The origin's "yes" to a forward offer (a "no" is silence: the offer expires).
struct forward_accept {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 5;
  uint64_t search_id = 0;
  MSGPACK_DEFINE(search_id);
};

// The origin asks a referred agent whether it has answers to these tags in its request cache.
// Always answered with a search_result (source = result_from_cache_query), possibly empty.
struct cache_query {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 6;
  uint64_t search_id = 0;
  std::string origin_address;
  search_tags tags;
  MSGPACK_DEFINE(search_id, origin_address, tags);
};

// ---- client requests (cmesh search): a client asks one node to search on its behalf ---------
// The node is the search's origin (answers come to it); it answers the client once the search
// ends. The client is authenticated by the transport handshake; the request names nothing about
// it.

// Status codes of search_response (HTTP meanings, as CMTP).
inline constexpr uint16_t search_ok = 200;
inline constexpr uint16_t search_bad_request = 400;   // bad tags
inline constexpr uint16_t search_busy = 503;          // too many searches running

struct search_request {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 7;
  search_tags tags;           // at least one non-empty
  uint32_t timeout_ms = 0;    // 0 = the node's default (5 s); capped by it
  MSGPACK_DEFINE(tags, timeout_ms);
};

struct search_response {
  static constexpr uint16_t service_id = services::gossip;
  static constexpr uint16_t type_id = 8;
  uint16_t status = search_ok;
  std::string reason;                 // why, when status != 200
  std::vector<agent_record> matches;  // in arrival order
  std::string done;                   // done_reason_name: enough_matches, deadline, ...
  uint32_t elapsed_ms = 0;
  uint32_t messages = 0;              // sent by the origin node for this search
  MSGPACK_DEFINE(status, reason, matches, done, elapsed_ms, messages);
};

}  // namespace cmesh::gossip
