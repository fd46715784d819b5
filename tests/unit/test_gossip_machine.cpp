// Tests for actors/gossip: the LRU cache, the tag matching rule, the gossip machine driven with
// explicit times and checked through its effects, and a mesh of a few hundred machines exchanging
// encoded envelopes through a seeded in-memory queue (no CAF).
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/gossip/gossip_machine.hpp"
#include "actors/gossip/lru_cache.hpp"
#include "messages/codec.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::gossip;

// Distinct ids for n < 65536, ordered by n.
node_id node(uint32_t n) {
  node_id id;
  id.key[0] = static_cast<uint8_t>(n >> 8);
  id.key[1] = static_cast<uint8_t>(n);
  for (size_t i = 2; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(n * 13 + i);
  return id;
}
bytes key_bytes(const node_id& id) { return bytes(id.key.begin(), id.key.end()); }
std::string address_of(uint32_t n) { return "sim:" + std::to_string(n); }

search_tags tags(std::string category, std::string subcategory = {}, std::string name = {},
                 std::string location = {}, std::string adjective = {}) {
  return {std::move(category), std::move(subcategory), std::move(name), std::move(location),
          std::move(adjective)};
}
const search_tags organic_apple = tags("grocery", "fruits", "apple", "dubai", "organic");

config small_config() {
  config cfg;
  cfg.hops_max = 3;
  cfg.forward_fanout = 8;
  cfg.matches_wanted = 5;
  return cfg;
}

machine make(uint32_t n, search_tags profile = {}, config cfg = small_config()) {
  return machine(cfg, node(n), address_of(n), std::move(profile), rng(1000 + n));
}

std::vector<contact> contacts_of(std::initializer_list<uint32_t> ns) {
  std::vector<contact> out;
  for (auto n : ns) out.push_back({node(n), address_of(n)});
  return out;
}

template <class T>
std::vector<std::pair<node_id, T>> sends_of(const effects& out) {
  std::vector<std::pair<node_id, T>> found;
  for (const auto& s : out.sends)
    if (auto* m = std::get_if<T>(&s.message)) found.emplace_back(s.to, *m);
  return found;
}

size_t events_of(const effects& out, event_kind kind) {
  return static_cast<size_t>(std::count_if(out.events.begin(), out.events.end(),
                                           [&](const event& e) { return e.kind == kind; }));
}

query query_from(uint32_t origin, uint64_t search_id, const search_tags& t, uint8_t hops_left) {
  return {search_id, key_bytes(node(origin)), address_of(origin), t, hops_left};
}

agent_record row_of(uint32_t n, const search_tags& t) {
  return {key_bytes(node(n)), address_of(n), t};
}

// ---- LRU cache -------------------------------------------------------------------------------

TEST_CASE("gossip lru cache is bounded by entries and evicts the least recent") {
  lru_cache<int, std::string> cache(3, 1 << 20);
  for (int i = 0; i < 5; ++i) CHECK(cache.put(i, "v" + std::to_string(i), 10));
  CHECK(cache.size() == 3);
  CHECK(cache.evictions() == 2);
  CHECK_FALSE(cache.contains(0));
  CHECK_FALSE(cache.contains(1));
  CHECK(cache.contains(4));
  CHECK(cache.bytes() == 30);
  CHECK(cache.least_recent().key == 2);
}

TEST_CASE("gossip lru cache is bounded by bytes and refuses an entry larger than the bound") {
  lru_cache<int, int> cache(100, 100);
  for (int i = 0; i < 10; ++i) cache.put(i, i, 30);
  CHECK(cache.size() == 3);  // 3 x 30 = 90 <= 100
  CHECK(cache.bytes() == 90);
  CHECK(cache.evictions() == 7);
  CHECK_FALSE(cache.put(50, 50, 101));
  CHECK(cache.refused() == 1);
  CHECK_FALSE(cache.contains(50));
  CHECK(cache.size() == 3);
  // Replacing an entry with a bigger value re-counts its bytes and evicts others to fit.
  CHECK(cache.put(9, 9, 80));
  CHECK(cache.size() == 1);
  CHECK(cache.bytes() == 80);
}

TEST_CASE("gossip lru cache read refreshes recency but peek does not") {
  lru_cache<int, int> cache(3, 1000);
  cache.put(1, 1, 1);
  cache.put(2, 2, 1);
  cache.put(3, 3, 1);
  REQUIRE(cache.get(1) != nullptr);  // 1 is now the most recent: 2 is the least recent
  CHECK(cache.peek(2) != nullptr);   // peek does not refresh 2
  cache.put(4, 4, 1);
  CHECK(cache.contains(1));
  CHECK_FALSE(cache.contains(2));
  CHECK(cache.hits() == 1);
  CHECK(cache.get(99) == nullptr);
  CHECK(cache.misses() == 1);
  std::vector<int> order;
  for (const auto& e : cache) order.push_back(e.key);
  CHECK(order == std::vector<int>{4, 1, 3});
}

// ---- matching rule ---------------------------------------------------------------------------

TEST_CASE("gossip tags match when every non-empty queried tag equals the profile tag") {
  CHECK(tags_match(tags("grocery"), organic_apple));
  CHECK(tags_match(tags("grocery", "", "apple"), organic_apple));
  CHECK(tags_match(organic_apple, organic_apple));
  CHECK_FALSE(tags_match(tags("grocery", "", "pear"), organic_apple));
  CHECK_FALSE(tags_match(tags("", "", "", "", "organic"), tags("grocery")));
  CHECK(normalize(tags("  GroCery ", "Fruits")) == tags("grocery", "fruits"));
  CHECK(tags_match(normalize(tags("GROCERY")), organic_apple));
  CHECK(validate_tags(tags(""), 64, true).code == errc::invalid_argument);
  CHECK(validate_tags(tags(""), 64, false).ok());
  CHECK(validate_tags(tags(std::string(65, 'x')), 64, false).code == errc::invalid_argument);
  CHECK(validate(config{}).ok());
  config bad;
  bad.hops_max = 0;
  CHECK(validate(bad).code == errc::invalid_argument);
}

// ---- one machine -----------------------------------------------------------------------------

TEST_CASE("gossip search sends the query to every contact with the hop budget") {
  auto a = make(1);
  a.set_contacts(contacts_of({2, 3, 4, 1}));  // self is dropped
  CHECK(a.contact_count() == 3);
  effects out;
  auto id = a.start_search(organic_apple, 0, out);
  REQUIRE(id.ok());
  auto queries = sends_of<query>(out);
  REQUIRE(queries.size() == 3);
  for (const auto& [to, q] : queries) {
    CHECK(q.search_id == *id);
    CHECK(q.hops_left == small_config().hops_max - 1);
    CHECK(q.origin_key == key_bytes(node(1)));
    CHECK(q.tags == organic_apple);
  }
  CHECK(a.start_search(tags(""), 0, out).err().code == errc::invalid_argument);
}

TEST_CASE("gossip agent answers a matching query with its own profile") {
  auto m = make(5, organic_apple);
  effects out;
  REQUIRE(m.receive(node(1), query_from(1, 77, tags("grocery", "", "apple"), 2), 0, out).ok());
  auto results = sends_of<search_result>(out);
  REQUIRE(results.size() == 1);
  CHECK(results[0].first == node(1));
  CHECK(out.sends[0].address == address_of(1));
  REQUIRE(results[0].second.matches.size() == 1);
  CHECK(results[0].second.matches[0].key == key_bytes(node(5)));
  CHECK(results[0].second.matches[0].tags == organic_apple);
  CHECK(sends_of<forward_offer>(out).empty());
}

TEST_CASE("gossip contact answers from its request cache") {
  // Agent 2 searched before and holds the answer (agent 9) in its request cache.
  auto c = make(2, tags("tech"));
  c.set_contacts(contacts_of({3}));
  effects out;
  auto id = c.start_search(organic_apple, 0, out);
  REQUIRE(id.ok());
  out.clear();
  REQUIRE(c.receive(node(3), search_result{*id, result_from_query, {row_of(9, organic_apple)}},
                    10, out)
              .ok());
  REQUIRE(c.cached_answers(organic_apple) != nullptr);
  CHECK(c.request_cache_size() == 1);
  CHECK(c.request_cache_bytes() > 0);
  out.clear();
  // Now agent 7 asks agent 2 for the same tags: answered from the cache, no forwarding offered.
  REQUIRE(c.receive(node(3), query_from(7, 500, organic_apple, 2), 20, out).ok());
  auto results = sends_of<search_result>(out);
  REQUIRE(results.size() == 1);
  CHECK(results[0].first == node(7));
  REQUIRE(results[0].second.matches.size() == 1);
  CHECK(results[0].second.matches[0].key == key_bytes(node(9)));
  CHECK(c.statistics().request_cache_hits == 1);
  CHECK(sends_of<forward_offer>(out).empty());
  CHECK(sends_of<referral>(out).empty());
}

TEST_CASE("gossip contact refers to an earlier requester from its gossip cache") {
  auto c = make(2, tags("tech"));
  c.set_contacts(contacts_of({1, 3, 4}));
  effects out;
  REQUIRE(c.receive(node(1), query_from(1, 100, organic_apple, 2), 0, out).ok());
  CHECK(sends_of<forward_offer>(out).size() == 1);  // first requester: nothing known yet
  CHECK(sends_of<referral>(out).empty());
  CHECK(c.gossip_cache_size() == 1);
  out.clear();
  REQUIRE(c.receive(node(3), query_from(3, 200, organic_apple, 2), 5, out).ok());
  auto referrals = sends_of<referral>(out);
  REQUIRE(referrals.size() == 1);
  CHECK(referrals[0].first == node(3));
  CHECK(referrals[0].second.requester.key == key_bytes(node(1)));
  CHECK(referrals[0].second.requester.address == address_of(1));
  CHECK(referrals[0].second.forward_contacts == 2);  // contacts 1 and 4 (not the asker 3)
  CHECK(sends_of<forward_offer>(out).empty());
  // The earlier requester is never referred to itself.
  out.clear();
  REQUIRE(c.receive(node(1), query_from(1, 101, organic_apple, 2), 6, out).ok());
  referrals = sends_of<referral>(out);
  REQUIRE(referrals.size() == 1);
  CHECK(referrals[0].second.requester.key == key_bytes(node(3)));
}

TEST_CASE("gossip forward offer and accept forward the query one hop further") {
  auto c = make(2, tags("tech"));
  c.set_contacts(contacts_of({1, 3, 4, 5}));
  effects out;
  REQUIRE(c.receive(node(1), query_from(1, 300, organic_apple, 2), 0, out).ok());
  auto offers = sends_of<forward_offer>(out);
  REQUIRE(offers.size() == 1);
  CHECK(offers[0].first == node(1));
  CHECK(offers[0].second.contacts == 3);
  CHECK(offers[0].second.offerer_address == address_of(2));

  // The origin's side: an offer for a running search is accepted.
  auto origin = make(1);
  origin.set_contacts(contacts_of({2}));
  effects origin_out;
  auto id = origin.start_search(organic_apple, 0, origin_out);
  REQUIRE(id.ok());
  origin_out.clear();
  REQUIRE(origin.receive(node(2), forward_offer{*id, 3, address_of(2)}, 1, origin_out).ok());
  auto accepts = sends_of<forward_accept>(origin_out);
  REQUIRE(accepts.size() == 1);
  CHECK(accepts[0].first == node(2));
  CHECK(origin_out.sends[0].address == address_of(2));

  // Accept from someone other than the origin is late; from the origin it forwards.
  out.clear();
  REQUIRE(c.receive(node(3), forward_accept{300}, 2, out).ok());
  CHECK(out.sends.empty());
  CHECK(events_of(out, event_kind::late) == 1);
  REQUIRE(c.receive(node(1), forward_accept{300}, 3, out).ok());
  auto forwarded = sends_of<query>(out);
  REQUIRE(forwarded.size() == 3);
  std::set<node_id> targets;
  for (const auto& [to, q] : forwarded) {
    targets.insert(to);
    CHECK(q.hops_left == 1);
    CHECK(q.origin_key == key_bytes(node(1)));
  }
  CHECK(targets == std::set<node_id>{node(3), node(4), node(5)});
  // A second accept for the same offer does nothing: the offer was used.
  out.clear();
  REQUIRE(c.receive(node(1), forward_accept{300}, 4, out).ok());
  CHECK(out.sends.empty());
}

TEST_CASE("gossip forward offers expire") {
  auto c = make(2);
  c.set_contacts(contacts_of({1, 3}));
  effects out;
  REQUIRE(c.receive(node(1), query_from(1, 300, organic_apple, 2), 0, out).ok());
  out.clear();
  REQUIRE(c.receive(node(1), forward_accept{300}, small_config().offer_timeout_us + 1, out).ok());
  CHECK(out.sends.empty());
  CHECK(c.statistics().late == 1);
}

TEST_CASE("gossip hop bound stops forwarding") {
  auto c = make(2);
  c.set_contacts(contacts_of({1, 3, 4}));
  effects out;
  REQUIRE(c.receive(node(1), query_from(1, 400, organic_apple, 0), 0, out).ok());
  CHECK(out.sends.empty());  // no answer, no earlier requester, no hops left: silence
  // A hostile hop count is clamped to our own hops_max - 1.
  REQUIRE(c.receive(node(1), query_from(1, 401, organic_apple, 200), 0, out).ok());
  REQUIRE(c.receive(node(1), forward_accept{401}, 1, out).ok());
  auto forwarded = sends_of<query>(out);
  REQUIRE(!forwarded.empty());
  for (const auto& [to, q] : forwarded) CHECK(q.hops_left == small_config().hops_max - 2);
  // A node with only the sender as contact has nobody to forward to: no offer.
  auto leaf = make(6);
  leaf.set_contacts(contacts_of({1}));
  effects leaf_out;
  REQUIRE(leaf.receive(node(1), query_from(1, 402, organic_apple, 2), 0, leaf_out).ok());
  CHECK(leaf_out.sends.empty());
}

TEST_CASE("gossip duplicate search ids are suppressed") {
  auto c = make(2, organic_apple);
  c.set_contacts(contacts_of({1, 3}));
  effects out;
  REQUIRE(c.receive(node(1), query_from(1, 500, organic_apple, 2), 0, out).ok());
  CHECK(out.sends.size() == 1);
  out.clear();
  REQUIRE(c.receive(node(3), query_from(1, 500, organic_apple, 1), 1, out).ok());
  CHECK(out.sends.empty());
  CHECK(events_of(out, event_kind::duplicate_dropped) == 1);
  CHECK(c.statistics().duplicates_dropped == 1);
  // Same id from another origin is another search.
  REQUIRE(c.receive(node(3), query_from(3, 500, organic_apple, 1), 2, out).ok());
  CHECK(out.sends.size() == 1);
  // Our own search coming back is a duplicate too.
  out.clear();
  auto id = c.start_search(tags("art"), 3, out);
  REQUIRE(id.ok());
  out.clear();
  REQUIRE(c.receive(node(3), query_from(2, *id, tags("art"), 1), 4, out).ok());
  CHECK(out.sends.empty());
}

TEST_CASE("gossip origin aggregates results until enough matches or the deadline") {
  auto cfg = small_config();
  cfg.matches_wanted = 2;
  auto a = make(1, {}, cfg);
  a.set_contacts(contacts_of({2, 3}));
  effects out;
  auto id = a.start_search(tags("grocery"), 0, out);
  REQUIRE(id.ok());
  out.clear();
  // One match (and a row that does not match the query, which is dropped).
  REQUIRE(a.receive(node(2),
                    search_result{*id, result_from_query,
                                  {row_of(9, organic_apple), row_of(8, tags("tech"))}},
                    10, out)
              .ok());
  CHECK(events_of(out, event_kind::match_found) == 1);
  CHECK(a.statistics().rows_rejected == 1);
  CHECK(out.done.empty());
  // The same match again is not counted twice; a second distinct match ends the search.
  REQUIRE(a.receive(node(3),
                    search_result{*id, result_from_query,
                                  {row_of(9, organic_apple), row_of(10, tags("grocery"))}},
                    20, out)
              .ok());
  REQUIRE(out.done.size() == 1);
  CHECK(out.done[0].reason == done_reason::enough_matches);
  CHECK(out.done[0].matches.size() == 2);
  CHECK(a.active_searches() == 0);
  // Offers and results after the end are late, and refused.
  out.clear();
  REQUIRE(a.receive(node(2), forward_offer{*id, 3, address_of(2)}, 30, out).ok());
  CHECK(sends_of<forward_accept>(out).empty());
  CHECK(events_of(out, event_kind::late) == 1);

  // Deadline: a search with no answers ends on tick.
  out.clear();
  auto lonely = a.start_search(tags("art"), 100, out);
  REQUIRE(lonely.ok());
  a.tick(100 + cfg.search_timeout_us - 1, out);
  CHECK(out.done.empty());
  a.tick(100 + cfg.search_timeout_us, out);
  REQUIRE(out.done.size() == 1);
  CHECK(out.done[0].reason == done_reason::deadline);
  CHECK(out.done[0].messages_sent == 2);
  CHECK(out.done[0].matches.empty());

  // The origin's own cache answers a repeated search at once, with no message.
  out.clear();
  auto again = a.start_search(tags("grocery"), 200, out);
  REQUIRE(again.ok());
  CHECK(out.sends.empty());
  REQUIRE(out.done.size() == 1);
  CHECK(out.done[0].reason == done_reason::own_cache);
  CHECK(out.done[0].matches.size() == 2);
}

TEST_CASE("gossip origin follows a referral and an empty answer releases the forward offer") {
  auto a = make(1);
  a.set_contacts(contacts_of({2}));
  effects out;
  auto id = a.start_search(organic_apple, 0, out);
  REQUIRE(id.ok());
  out.clear();
  // Contact 2 refers us to agent 7 and could forward to 3 contacts.
  REQUIRE(a.receive(node(2), referral{*id, row_of(7, organic_apple), 3, address_of(2)}, 1, out)
              .ok());
  auto asks = sends_of<cache_query>(out);
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].first == node(7));
  CHECK(out.sends[0].address == address_of(7));
  CHECK(sends_of<forward_accept>(out).empty());  // held until 7 answers
  out.clear();
  // Agent 7 has nothing cached: now the offer is accepted.
  REQUIRE(a.receive(node(7), search_result{*id, result_from_cache_query, {}}, 2, out).ok());
  auto accepts = sends_of<forward_accept>(out);
  REQUIRE(accepts.size() == 1);
  CHECK(accepts[0].first == node(2));

  // The referred agent's side: a cache_query is always answered, here from its request cache.
  auto referred = make(7);
  referred.set_contacts(contacts_of({9}));
  effects r_out;
  auto rid = referred.start_search(organic_apple, 0, r_out);
  REQUIRE(rid.ok());
  REQUIRE(referred
              .receive(node(9), search_result{*rid, result_from_query, {row_of(5, organic_apple)}},
                       1, r_out)
              .ok());
  r_out.clear();
  REQUIRE(referred.receive(node(1), cache_query{*id, address_of(1), organic_apple}, 2, r_out).ok());
  auto answers = sends_of<search_result>(r_out);
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].second.source == result_from_cache_query);
  REQUIRE(answers[0].second.matches.size() == 1);
  CHECK(answers[0].second.matches[0].key == key_bytes(node(5)));
  r_out.clear();
  REQUIRE(referred.receive(node(1), cache_query{*id, address_of(1), tags("art")}, 3, r_out).ok());
  answers = sends_of<search_result>(r_out);
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].second.matches.empty());
}

TEST_CASE("gossip machine caches stay within their entry and byte bounds") {
  auto cfg = small_config();
  cfg.gossip_cache_entries_max = 50;
  cfg.gossip_cache_bytes_max = 2000;
  cfg.request_cache_entries_max = 4;
  cfg.request_cache_bytes_max = 1 << 20;
  cfg.active_searches_max = 200;
  auto c = make(2, {}, cfg);
  c.set_contacts(contacts_of({1}));
  effects out;
  // 200 gossips with distinct tags: the byte bound (2000) binds before the entry bound (50).
  for (uint32_t i = 0; i < 200; ++i) {
    REQUIRE(c.receive(node(1), query_from(1, 1000 + i, tags("cat" + std::to_string(i)), 1), i, out)
                .ok());
    CHECK(c.gossip_cache_bytes() <= cfg.gossip_cache_bytes_max);
    CHECK(c.gossip_cache_size() <= cfg.gossip_cache_entries_max);
  }
  CHECK(c.gossip_cache_size() < cfg.gossip_cache_entries_max);
  CHECK(c.gossip_cache_evictions() == 200 - c.gossip_cache_size());
  // Request cache: 10 searches answered with distinct tags; only the last 4 stay.
  for (uint32_t i = 0; i < 10; ++i) {
    out.clear();
    auto t = tags("shop" + std::to_string(i));
    auto id = c.start_search(t, 1000, out);
    REQUIRE(id.ok());
    REQUIRE(c.receive(node(1), search_result{*id, result_from_query, {row_of(50 + i, t)}}, 1001,
                      out)
                .ok());
  }
  CHECK(c.request_cache_size() == 4);
  CHECK(c.request_cache_evictions() == 6);
  CHECK(c.cached_answers(tags("shop0")) == nullptr);
  CHECK(c.cached_answers(tags("shop9")) != nullptr);
}

TEST_CASE("gossip malformed input gives an error value and never a crash") {
  auto c = make(2);
  c.set_contacts(contacts_of({1, 3}));
  effects out;
  auto q = query_from(1, 1, organic_apple, 2);
  q.origin_key.resize(31);
  CHECK(c.receive(node(1), q, 0, out).code == errc::malformed);
  q = query_from(1, 1, organic_apple, 2);
  q.origin_address.clear();
  CHECK(c.receive(node(1), q, 0, out).code == errc::malformed);
  q = query_from(1, 1, tags(""), 2);
  CHECK(c.receive(node(1), q, 0, out).code == errc::malformed);
  q = query_from(1, 1, tags(std::string(1000, 'x')), 2);
  CHECK(c.receive(node(1), q, 0, out).code == errc::malformed);
  search_result many{1, result_from_query, {}};
  for (int i = 0; i < 101; ++i) many.matches.push_back(row_of(9, organic_apple));
  CHECK(c.receive(node(1), many, 0, out).code == errc::malformed);
  search_result bad_row{1, result_from_query, {row_of(9, organic_apple)}};
  bad_row.matches[0].key = bytes(3, 0);
  CHECK(c.receive(node(1), bad_row, 0, out).code == errc::malformed);
  referral bad_referral{1, row_of(9, organic_apple), 0, std::string(300, 'a')};
  CHECK(c.receive(node(1), bad_referral, 0, out).code == errc::malformed);
  CHECK(out.sends.empty());
  CHECK(c.statistics().malformed == 7);

  // Bytes off the wire: garbage, a wrong type, a payload of the wrong shape.
  const bytes garbage{0xc1, 0xff, 0x00, 0x12};
  CHECK_FALSE(decode_envelope(garbage.data(), garbage.size()).ok());
  envelope env;
  env.service = services::gossip;
  env.type = 99;
  env.payload = {0x90};
  CHECK(decode_wire(env).err().code == errc::unknown_type);
  env.type = query::type_id;
  env.payload = {0x93, 0x01, 0x02, 0x03};  // an array of 3 ints is not a query
  CHECK(decode_wire(env).err().code == errc::malformed);
  env.service = services::peer;
  CHECK(decode_wire(env).err().code == errc::unknown_type);
  // And a good one round-trips.
  auto encoded = encode_message(node(1), 0, query_from(1, 5, organic_apple, 2));
  REQUIRE(encoded.ok());
  auto decoded_env = decode_envelope(encoded->data(), encoded->size());
  REQUIRE(decoded_env.ok());
  auto decoded = decode_wire(*decoded_env);
  REQUIRE(decoded.ok());
  REQUIRE(std::holds_alternative<query>(*decoded));
  CHECK(std::get<query>(*decoded).tags == organic_apple);
}

// ---- a mesh of agents ------------------------------------------------------------------------

// Agents in a seeded random contact graph exchange encoded envelopes through a queue ordered by
// delivery time (1-5 ms latency). Every message goes through the codec and decode_wire.
class mesh {
public:
  mesh(uint32_t agents, uint32_t links_per_agent, uint64_t seed, config cfg) : net_(seed) {
    std::vector<std::set<uint32_t>> links(agents);
    for (uint32_t i = 0; i < agents; ++i) {
      for (uint32_t l = 0; l < links_per_agent; ++l) {
        uint32_t j = static_cast<uint32_t>(net_.below(agents));
        if (j == i) continue;
        links[i].insert(j);
        links[j].insert(i);
      }
    }
    adjacency_ = links;
    static const char* categories[] = {"clothing", "tech", "grocery", "art", "travel"};
    static const char* names[] = {"apple", "pear", "shirt", "phone", "paint", "ticket"};
    static const char* places[] = {"dubai", "cairo", "paris", "lagos", "lima"};
    static const char* adjectives[] = {"organic", "pink", "cotton", "sustainable"};
    for (uint32_t i = 0; i < agents; ++i) {
      search_tags profile{categories[net_.below(5)], "general", names[net_.below(6)],
                          places[net_.below(5)], adjectives[net_.below(4)]};
      agents_.push_back(std::make_unique<machine>(cfg, node(i), address_of(i), profile,
                                                  rng(mix_seed(seed, i))));
      index_[node(i)] = i;
    }
    for (uint32_t i = 0; i < agents; ++i) {
      std::vector<contact> contacts;
      for (auto j : links[i]) contacts.push_back({node(j), address_of(j)});
      agents_[i]->set_contacts(contacts);
    }
  }

  machine& agent(uint32_t i) { return *agents_[i]; }
  // Sums of every agent's statistics.
  stats totals() const {
    stats sum;
    for (const auto& a : agents_) {
      const auto& s = a->statistics();
      sum.queries_received += s.queries_received;
      sum.duplicates_dropped += s.duplicates_dropped;
      sum.offers_sent += s.offers_sent;
      sum.referrals_sent += s.referrals_sent;
      sum.accepts_sent += s.accepts_sent;
      sum.queries_forwarded += s.queries_forwarded;
      sum.late += s.late;
    }
    return sum;
  }
  uint32_t size() const { return static_cast<uint32_t>(agents_.size()); }

  // Hop distance from `from` to every agent (breadth first over contacts).
  std::vector<int> distances(uint32_t from) const {
    std::vector<int> d(adjacency_.size(), -1);
    std::deque<uint32_t> frontier{from};
    d[from] = 0;
    while (!frontier.empty()) {
      auto v = frontier.front();
      frontier.pop_front();
      for (auto w : adjacency_[v])
        if (d[w] < 0) {
          d[w] = d[v] + 1;
          frontier.push_back(w);
        }
    }
    return d;
  }

  // Starts a search at `origin` and runs until the queue is empty and the search is done.
  // Returns the finished search; `messages` counts every message delivered meanwhile.
  search_done search(uint32_t origin, const search_tags& t, uint64_t& messages) {
    effects out;
    auto id = agents_[origin]->start_search(t, now_us_, out);
    REQUIRE(id.ok());
    const uint64_t delivered_before = delivered_;
    execute(origin, out);
    std::optional<search_done> finished;
    auto take_done = [&] {
      for (auto& d : done_)
        if (d.search_id == *id) finished = d;
    };
    take_done();
    int64_t next_tick_us = now_us_ + tick_us;
    while (!queue_.empty() || !finished) {
      if (!queue_.empty() && queue_.begin()->first.first <= next_tick_us) {
        auto node_message = queue_.begin()->second;
        now_us_ = queue_.begin()->first.first;
        queue_.erase(queue_.begin());
        deliver(node_message);
      } else {
        now_us_ = next_tick_us;
        next_tick_us += tick_us;
        for (uint32_t i = 0; i < size(); ++i) {
          effects tick_out;
          agents_[i]->tick(now_us_, tick_out);
          execute(i, tick_out);
        }
      }
      take_done();
    }
    messages = delivered_ - delivered_before;
    return *finished;
  }

private:
  static constexpr int64_t tick_us = 100'000;
  struct in_flight {
    uint32_t from;
    uint32_t to;
    bytes envelope_bytes;
  };

  void execute(uint32_t from, effects& out) {
    for (auto& s : out.sends) {
      auto to = index_.find(s.to);
      REQUIRE(to != index_.end());
      bytes encoded = std::visit(
          [&](const auto& m) {
            auto e = encode_message(node(from), 0, m);
            REQUIRE(e.ok());
            return std::move(e).value();
          },
          s.message);
      int64_t at = now_us_ + 1000 + static_cast<int64_t>(net_.below(4000));
      queue_.emplace(std::make_pair(at, sequence_++), in_flight{from, to->second, encoded});
    }
    for (auto& d : out.done) done_.push_back(d);
    out.clear();
  }

  void deliver(const in_flight& m) {
    ++delivered_;
    auto env = decode_envelope_from(node(m.from), m.envelope_bytes);
    REQUIRE(env.ok());
    auto message = decode_wire(*env);
    REQUIRE(message.ok());
    effects out;
    auto s = agents_[m.to]->receive(node(m.from), *message, now_us_, out);
    REQUIRE_MESSAGE(s.ok(), s.describe());
    execute(m.to, out);
  }

  rng net_;
  std::vector<std::unique_ptr<machine>> agents_;
  std::vector<std::set<uint32_t>> adjacency_;
  std::map<node_id, uint32_t> index_;
  std::map<std::pair<int64_t, uint64_t>, in_flight> queue_;
  std::vector<search_done> done_;
  uint64_t sequence_ = 0;
  uint64_t delivered_ = 0;
  int64_t now_us_ = 0;
};

config mesh_config() {
  config cfg;
  cfg.matches_wanted = 1;  // one seller is enough: stop accepting offers once it is found
  return cfg;
}

const search_tags unique_wanted = tags("grocery", "fruits", "mango", "accra", "fairtrade");

// Builds a mesh and gives one agent far from agent 0 the only profile matching `unique_wanted`.
struct mesh_setup {
  std::unique_ptr<mesh> world;
  uint32_t target = 0;
  int distance = 0;
};
mesh_setup make_mesh(uint64_t seed, uint32_t agents = 300) {
  mesh_setup setup;
  setup.world = std::make_unique<mesh>(agents, 3, seed, mesh_config());
  auto d = setup.world->distances(0);
  int far = *std::max_element(d.begin(), d.end());
  REQUIRE(far >= 3);
  for (uint32_t i = 0; i < agents; ++i)
    if (d[i] == std::min(far, 4)) {
      setup.target = i;
      setup.distance = d[i];
      break;
    }
  REQUIRE(setup.world->agent(setup.target).set_profile(unique_wanted).ok());
  return setup;
}

TEST_CASE("gossip search finds a matching agent several hops away in a mesh of 300 agents") {
  for (uint64_t seed : {11, 12, 13, 14, 15}) {
    auto setup = make_mesh(seed);
    uint64_t messages = 0;
    auto done = setup.world->search(0, unique_wanted, messages);
    auto sum = setup.world->totals();
    CAPTURE(seed);
    REQUIRE(done.matches.size() == 1);
    CHECK(done.matches[0].key == node(setup.target));
    CHECK(done.reason == done_reason::enough_matches);
    MESSAGE("seed " << seed << ": target at " << setup.distance << " hops found in "
                    << (done.finished_us - done.started_us) / 1000 << " ms with " << messages
                    << " messages: " << sum.queries_received << " agents reached, "
                    << sum.duplicates_dropped << " duplicate queries, " << sum.offers_sent
                    << " offers, " << sum.accepts_sent << " accepts, " << sum.late << " late");
  }
}

TEST_CASE("gossip cache hits reduce messages for a repeated search") {
  uint64_t total_cold = 0;
  uint64_t total_warm = 0;
  for (uint64_t seed : {21, 22, 23, 24, 25}) {
    CAPTURE(seed);
    // Cold: agent `second` searches in a fresh mesh.
    auto cold = make_mesh(seed);
    const uint32_t second = cold.world->size() / 2;
    uint64_t cold_messages = 0;
    auto cold_done = cold.world->search(second, unique_wanted, cold_messages);
    REQUIRE(cold_done.matches.size() == 1);

    // Warm: the same mesh, but agent 0 searched first, leaving gossip rows and a cached answer.
    auto warm = make_mesh(seed);
    REQUIRE(warm.target == cold.target);
    uint64_t first_messages = 0;
    auto first = warm.world->search(0, unique_wanted, first_messages);
    REQUIRE(first.matches.size() == 1);
    uint64_t warm_messages = 0;
    auto warm_done = warm.world->search(second, unique_wanted, warm_messages);
    REQUIRE(warm_done.matches.size() == 1);
    CHECK(warm_done.matches[0].key == node(warm.target));
    // The first searcher repeating its search is answered by its own cache: no message at all.
    uint64_t repeat_messages = 0;
    auto repeat = warm.world->search(0, unique_wanted, repeat_messages);
    CHECK(repeat.reason == done_reason::own_cache);
    CHECK(repeat_messages == 0);
    CHECK(warm_messages < cold_messages);
    total_cold += cold_messages;
    total_warm += warm_messages;
    MESSAGE("seed " << seed << ": first search " << first_messages << " messages, second agent cold "
                    << cold_messages << " vs warm " << warm_messages << " messages (cold "
                    << (cold_done.finished_us - cold_done.started_us) / 1000 << " ms, warm "
                    << (warm_done.finished_us - warm_done.started_us) / 1000 << " ms)");
  }
  MESSAGE("total over 5 seeds: cold " << total_cold << " vs warm " << total_warm << " messages");
}

TEST_CASE("gossip mesh runs are deterministic for a seed") {
  auto a = make_mesh(31);
  auto b = make_mesh(31);
  uint64_t messages_a = 0;
  uint64_t messages_b = 0;
  auto done_a = a.world->search(0, unique_wanted, messages_a);
  auto done_b = b.world->search(0, unique_wanted, messages_b);
  CHECK(messages_a == messages_b);
  CHECK(done_a.search_id == done_b.search_id);
  CHECK(done_a.finished_us == done_b.finished_us);
  CHECK(done_a.matches == done_b.matches);
}

}  // namespace
