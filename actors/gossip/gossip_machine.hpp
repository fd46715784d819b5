// Cached gossip search (seed 003): find agents whose profile tags match a query by asking
// contacts, who answer from their caches, refer to an earlier requester, or offer to forward.
//
// One machine per agent. It holds the agent's profile, its contacts (handed in by the membership
// layer, which owns them), two caches bounded in entries and bytes (request/response and gossip,
// both least-recently-used) and the searches this agent started. Spec: docs/gossip-search.md.
//
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_us`; search ids and
// forwarding samples come from the seeded `rng` handed in at construction. No unordered container
// is iterated. Every input appends what the agent must do to `effects`; the actor shell sends
// `effects::sends` (introducing `address` to the transport when it is not empty) and reports the
// events and finished searches.
//
// Thread confinement: one owner (the gossip actor of the node); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "actors/gossip/lru_cache.hpp"
#include "messages/codec.hpp"
#include "messages/error.hpp"
#include "messages/gossip_messages.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/flat_map.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::gossip {

// Every bound of the protocol, with the reason for its value. Checked by validate().
struct config {
  // Seed 003: "every agent caches responses from last 1000 requests".
  size_t request_cache_entries_max = 1000;
  // 1,000 requests x 100 responses x ~160 B per row (32 B key, address, tags) is 16 MB; the seed
  // budgets ~50 MB because its keys are 256 B. A request holding 100 full-size rows still fits.
  size_t request_cache_bytes_max = size_t{16} << 20;
  // Seed 003: "every agent caches last 10000 gossips".
  size_t gossip_cache_entries_max = 10000;
  // Seed 003 budgets ~5 MB for the gossip cache (~500 B per gossip).
  size_t gossip_cache_bytes_max = size_t{5} << 20;
  // Seed 003: "100 responses per request". Also the most matches one search_result may carry.
  size_t responses_per_request_max = 100;
  // Earlier requesters remembered per searched tag set: a referral needs one; a few more survive
  // one of them leaving or being the next searcher itself.
  size_t requesters_per_tags_max = 4;
  // Searches remembered for duplicate suppression. A flood lasts at most search_timeout_us; 4,096
  // covers ~800 new searches per second passing through one agent at the default timeout.
  size_t seen_searches_max = 4096;
  // Forward offers waiting for the origin's accept: one per search passing through, cheap rows.
  size_t pending_offers_max = 1024;
  // Searches this agent runs at once; each holds up to responses_per_request_max matches.
  size_t active_searches_max = 64;
  // Contacts used (the membership layer may know more); same reason as limits::peer_table_max.
  size_t contacts_max = 64;
  // Longest path a query travels, counted in contact hops from the origin (1 = contacts only).
  // With 8 contacts and forward_fanout 4, 5 hops reach 8 x 4^4 ~ 2,000 agents, far more than the
  // forward_accepts_per_search_max budget can pay for: the budget, not the hops, bounds a search.
  uint8_t hops_max = 5;
  // Contacts a forwarding agent asks per accepted offer. Forwarded queries mostly reach agents
  // that already saw the search (measured: fanout 8 doubles the duplicates of fanout 4 in a
  // 300-agent mesh of ~6 contacts each, for the same reach).
  size_t forward_fanout = 4;
  // Forward offers one search accepts: the origin pays for at most this many forwards, i.e. at
  // most 256 x forward_fanout = 1,024 forwarded queries (and as many offers) per search.
  size_t forward_accepts_per_search_max = 256;
  // Referred agents one search asks (cache_query): each costs one round trip.
  size_t referrals_per_search_max = 8;
  // A search ends as soon as it has this many distinct matches (then it accepts no more offers).
  size_t matches_wanted = 20;
  // A search ends at this deadline whatever it found.
  int64_t search_timeout_us = 5'000'000;
  // An offer not accepted within this time is forgotten.
  int64_t offer_timeout_us = 5'000'000;
  // Characters per tag. Seed 003 puts a row's tags at 8-256 bytes: 5 x 64 = 320 at most.
  size_t tag_chars_max = 64;
};

// Checks every bound above (all non-zero, hops_max >= 1); the reason names the field.
status validate(const config& cfg);

// A contact: a neighbour from the membership layer, and where it listens.
struct contact {
  node_id id;
  std::string address;
};

// An agent found by a search (one cache row in memory).
struct match {
  node_id key;
  std::string address;
  search_tags tags;
  friend bool operator==(const match&, const match&) = default;
};

// "category=grocery,name=apple" (non-empty tags in the order of search_tags, joined by
// `separator`): the inverse of parse_tag_assignments, for logs and the command line.
std::string format_tags(const search_tags& tags, char separator = ',');

// The same tags as directory keys for the aggregator (docs/aggregator.md): "category:grocery",
// "name:apple", ... for each non-empty tag, normalized, in the order of search_tags.
std::vector<std::string> directory_tags(const search_tags& tags);

// The wire row for a match.
agent_record record_of(const match& m);

// Parses tag assignments "KEY=VALUE" (KEY: category, subcategory, name, location, adjective;
// VALUE may contain spaces) into tags, for the command line and configuration. Errors
// (invalid_argument): an item without '=', an unknown key (the message lists the keys), a key
// given twice.
result<search_tags> parse_tag_assignments(const std::vector<std::string>& items);

// The matching rule: every non-empty tag of `query` equals the same tag of `profile`. Tags are
// compared after normalize(). A query must have at least one non-empty tag.
bool tags_match(const search_tags& query, const search_tags& profile);
// Lower-cases ASCII letters and trims spaces at both ends of every tag.
search_tags normalize(search_tags tags);
// Errors (invalid_argument): a tag longer than tag_chars_max; for a query (`is_query`), all tags
// empty.
status validate_tags(const search_tags& tags, size_t tag_chars_max, bool is_query);

enum class done_reason { enough_matches, deadline, own_cache, no_contacts };
const char* done_reason_name(done_reason reason);

// A finished search: everything it found, in arrival order.
struct search_done {
  uint64_t search_id = 0;
  search_tags tags;
  std::vector<match> matches;
  done_reason reason = done_reason::deadline;
  int64_t started_us = 0;
  int64_t finished_us = 0;
  uint64_t messages_sent = 0;  // by this agent for this search
};

enum class event_kind {
  match_found,        // a new match for one of our searches (peer = the match)
  referral_followed,  // we asked a referred agent (peer) for its cached answers
  forward_accepted,   // we accepted a forward offer from peer
  forwarded,          // we forwarded someone's query to `value` contacts
  duplicate_dropped,  // a query we had already seen (peer = sender)
  late,               // a message for a search or offer we no longer have
};
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  uint64_t search_id = 0;
  node_id peer;
  int64_t value = 0;
};

using wire_message =
    std::variant<query, search_result, referral, forward_offer, forward_accept, cache_query>;

struct effects {
  struct send {
    node_id to;
    std::string address;  // where `to` listens, when it may not be a contact; empty = known
    wire_message message;
  };
  std::vector<send> sends;
  std::vector<event> events;
  std::vector<search_done> done;

  void clear() {
    sends.clear();
    events.clear();
    done.clear();
  }
};

struct stats {
  uint64_t messages_sent = 0;
  uint64_t searches_started = 0;
  uint64_t searches_done = 0;
  uint64_t answered_from_own_cache = 0;  // searches finished by our own request cache
  uint64_t queries_received = 0;         // new (not duplicate) queries
  uint64_t duplicates_dropped = 0;
  uint64_t answers_sent = 0;             // search_result with matches, to a query
  uint64_t cache_answers_sent = 0;       // search_result to a cache_query (maybe empty)
  uint64_t request_cache_hits = 0;       // queries answered (partly) from the request cache
  uint64_t referrals_sent = 0;
  uint64_t offers_sent = 0;
  uint64_t forwards = 0;                 // accepted offers carried out
  uint64_t queries_forwarded = 0;        // query messages sent for other origins
  uint64_t accepts_sent = 0;
  uint64_t cache_queries_sent = 0;
  uint64_t results_received = 0;
  uint64_t rows_rejected = 0;            // answer rows that do not match the query
  uint64_t malformed = 0;
  uint64_t late = 0;
};

// Decodes the payload of a gossip envelope into a wire_message.
// Errors: unknown_type (not service 6 or an unknown type), then as decode_payload.
result<wire_message> decode_wire(const envelope& env);

class machine {
public:
  // REQUIRES: validate(cfg) is ok and validate_tags(profile, cfg.tag_chars_max, false) is ok
  // (the shell checks both when it loads the configuration). The profile is normalized.
  machine(config cfg, node_id self, std::string self_address, search_tags profile, rng random);

  // Replaces the contact list (the membership layer owns it). Drops self and duplicates and keeps
  // at most contacts_max, in the order given.
  void set_contacts(const std::vector<contact>& contacts);
  // Errors: invalid_argument (see validate_tags).
  status set_profile(search_tags profile);

  // Starts a search for `tags` (normalized here). Answers at once from our own request cache if
  // it holds these tags; otherwise sends the query to every contact. Returns the search id.
  // `timeout_us` shortens the search (0 or more than search_timeout_us: search_timeout_us), for a
  // client that waits less than the default.
  // Errors: invalid_argument (bad tags), unavailable (active_searches_max searches running).
  result<uint64_t> start_search(search_tags tags, int64_t now_us, effects& out,
                                int64_t timeout_us = 0);

  // A message from `from` (the transport authenticated it). Errors (the message is dropped and
  // counted, nothing else changes): malformed (bad key or address, bad tags, too many matches).
  // Duplicates and late messages are not errors: they are counted and reported as events.
  status receive(const node_id& from, const wire_message& message, int64_t now_us, effects& out);

  // Ends searches whose deadline has passed.
  void tick(int64_t now_us, effects& out);
  // The earliest deadline of a running search (INT64_MAX if none): when tick() has work.
  int64_t next_deadline_us() const;

  const node_id& self() const { return self_; }
  const search_tags& profile() const { return profile_; }
  const config& configuration() const { return config_; }
  const stats& statistics() const { return stats_; }
  size_t contact_count() const { return contacts_.size(); }
  size_t active_searches() const { return searches_.size(); }

  size_t request_cache_size() const { return request_cache_.size(); }
  size_t request_cache_bytes() const { return request_cache_.bytes(); }
  uint64_t request_cache_evictions() const { return request_cache_.evictions(); }
  size_t gossip_cache_size() const { return gossip_cache_.size(); }
  size_t gossip_cache_bytes() const { return gossip_cache_.bytes(); }
  uint64_t gossip_cache_evictions() const { return gossip_cache_.evictions(); }
  // Cached answers for `tags` without touching recency (for tests and status pages).
  const std::vector<match>* cached_answers(const search_tags& tags) const {
    return request_cache_.peek(normalize(tags));
  }

private:
  struct requester {
    node_id key;
    std::string address;
  };
  using search_key = std::pair<node_id, uint64_t>;  // (origin, search id)
  struct pending_offer {
    query message;      // normalized, hops_left already clamped
    node_id received_from;
    int64_t expires_us = 0;
  };
  struct referred_agent {
    bool answered = false;
    bool had_matches = false;
    std::vector<contact> offering_referrers;  // forward offers held back until it answers
  };
  struct search_state {
    search_tags tags;
    int64_t started_us = 0;
    int64_t deadline_us = 0;
    std::vector<match> matches;
    size_t accepts_sent = 0;
    std::map<node_id, referred_agent> referred;
    uint64_t messages_sent = 0;
  };

  void handle(const node_id& from, const query& message, int64_t now_us, effects& out);
  void handle(const node_id& from, const search_result& message, int64_t now_us, effects& out);
  void handle(const node_id& from, const referral& message, int64_t now_us, effects& out);
  void handle(const node_id& from, const forward_offer& message, int64_t now_us, effects& out);
  void handle(const node_id& from, const forward_accept& message, int64_t now_us, effects& out);
  void handle(const node_id& from, const cache_query& message, int64_t now_us, effects& out);

  std::vector<match> local_answers(const search_tags& tags, const node_id& exclude);
  const requester* referral_candidate(const search_tags& tags, const node_id& origin);
  void remember_gossip(const search_tags& tags, const node_id& origin, const std::string& address);
  void cache_answers(const search_tags& tags, const std::vector<match>& found);
  std::vector<node_id> forward_targets(const node_id& received_from, const node_id& origin);
  void add_matches(uint64_t search_id, search_state& search, std::vector<match> found,
                   effects& out);
  void maybe_accept(uint64_t search_id, search_state& search, const contact& offerer,
                    effects& out);
  void finish(uint64_t search_id, done_reason reason, int64_t now_us, effects& out);
  void send(const node_id& to, const std::string& address, wire_message message, effects& out,
            search_state* search = nullptr);

  config config_;
  node_id self_;
  std::string self_address_;
  search_tags profile_;
  rng rng_;
  flat_map<node_id, std::string> contacts_;
  lru_cache<search_tags, std::vector<match>> request_cache_;
  lru_cache<search_tags, std::vector<requester>> gossip_cache_;
  lru_cache<search_key, char> seen_searches_;
  lru_cache<search_key, pending_offer> pending_offers_;
  std::map<uint64_t, search_state> searches_;
  stats stats_;
};

}  // namespace cmesh::gossip
