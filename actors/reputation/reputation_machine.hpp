// Reputation (seed 003): signed endorsements and gossiped reports, verified by anyone with public
// keys, cached by neighbours, summed into a score per subject.
//
// An endorsement is a signed hash of the resource accessed, by the identity that accessed it. A
// report of reputation-damaging behaviour is signed by its reporter and gossiped to contacts for a
// bounded number of hops; every agent it reaches verifies it, caches it (bounded LRU) and counts
// it. Forged, replayed, future-dated and self-made claims are rejected with a named reason.
// Spec: docs/reputation.md.
//
// Pure in the machine sense: no CAF, no I/O, no clock, no global randomness. Time comes in as
// `now_us`; nonces and gossip samples come from the seeded `rng` handed in. Signing goes through
// the `sign_function` handed in (ed25519 is deterministic); verification calls
// verify_signature(), a pure function. resource_hash() is BLAKE2b (deterministic). No unordered
// container is iterated.
//
// Thread confinement: one owner (the reputation actor of the node); not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "actors/gossip/lru_cache.hpp"
#include "messages/codec.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "messages/reputation_messages.hpp"
#include "runtime/core/flat_map.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::reputation {

using hash32 = std::array<uint8_t, 32>;
using signature64 = std::array<uint8_t, 64>;
// Signs [data, data + size) with the agent's ed25519 secret key.
using sign_function = std::function<signature64(const uint8_t* data, size_t size)>;

// A sign_function holding its own copy of `id`'s key pair (the closure owns the secret; do not
// log it).
sign_function signer_for(const identity& id);
// BLAKE2b-256 of a resource (libsodium crypto_generichash, unkeyed): what an endorsement signs.
hash32 resource_hash(const uint8_t* data, size_t size);

// The exact bytes a signature covers (docs/reputation.md section 2): a domain tag for the format
// version, then every other field in fixed-width, fixed order. REQUIRES: the key, hash and nonce
// fields have their documented lengths (check with verify_* first; these never fail).
bytes endorsement_signed_bytes(const endorsement& e);
bytes report_signed_bytes(const report& r);

// A signed claim by the holder of `sign`'s key (`signer`): what endorse() and report_subject()
// build, and what a client (cmesh reputation) builds with its own identity. No checks.
endorsement sign_endorsement(const node_id& signer, const sign_function& sign, const node_id& subject,
                             const hash32& resource, int64_t issued_at_us, uint64_t nonce);
report sign_report(const node_id& signer, const sign_function& sign, const node_id& subject,
                   uint8_t reason, const hash32& evidence, int64_t issued_at_us, uint64_t nonce);

// "fraud", "impersonation", "spam", "malformed", "unresponsive"; "unknown" otherwise.
const char* reason_name(uint8_t reason);
// The reason code for a name above (exact, lower case); 0 when there is none.
uint8_t reason_from_name(std::string_view name);

// Why a claim was accepted or rejected.
enum class verdict : uint8_t {
  accepted,
  malformed,            // a key, hash or signature of the wrong length
  unsupported_version,  // unknown format version: no domain tag to check against
  bad_signature,        // forged, altered, or signed by another key
  from_future,          // issued more than clock_skew_us_max after our now
  stale,                // older than the oldest claim our replay window still remembers
  replay,               // the same (signer, nonce), i.e. the same signed bytes, seen before
  self_claim,           // an endorsement of oneself, or a report about oneself
  unknown_reason,       // a report reason code we do not know
};
inline constexpr size_t verdict_count = 9;
const char* verdict_name(verdict v);
// The error a rejection maps to (replay -> errc::replayed, bad_signature -> errc::bad_signature,
// malformed -> errc::malformed, unsupported_version -> errc::unsupported_version, the rest ->
// errc::invalid_argument). REQUIRES: v != accepted.
errc verdict_code(verdict v);

// Stateless checks anyone can run (no replay check): lengths, version, signer != subject,
// reason known, not from the future, signature. Pure.
verdict verify_endorsement(const endorsement& e, int64_t now_us, int64_t clock_skew_us_max);
verdict verify_report(const report& r, int64_t now_us, int64_t clock_skew_us_max);

// Every bound, with its reason. Checked by validate().
struct config {
  // Clocks of honest agents disagree by seconds; a claim dated further ahead is refused so that it
  // cannot sit in the replay window past its fair share.
  int64_t clock_skew_us_max = 60'000'000;
  // (signer, nonce) pairs remembered per kind of claim. When full, the oldest by issued_at is
  // forgotten and anything at or before its time is refused as stale, so a forgotten claim can
  // never be replayed. 65,536 x ~56 B = 3.5 MB.
  size_t replay_entries_max = 65536;
  // Subjects with a score; like the gossip cache (seed 003: 10,000 gossips).
  size_t subjects_max = 10000;
  // 10,000 subjects at ~400 B (a dozen endorsers and reporters each) = 4 MB.
  size_t subject_bytes_max = size_t{4} << 20;
  // Endorsers and reporters counted per subject: caps one subject's record at ~16 KB; a score
  // saturates at +256 (more endorsers add nothing).
  size_t endorsers_per_subject_max = 256;
  size_t reporters_per_subject_max = 256;
  // Reports kept as evidence (seed 003: "cached by neighbours"), ~180 B each: 10,000 = 1.8 MB.
  size_t report_cache_entries_max = 10000;
  size_t report_cache_bytes_max = size_t{2} << 20;
  // Longest path of a report from its reporter, in contact hops (1 = contacts only). Reports
  // warn neighbours; three hops reach 8^3 = 512 agents with 8 contacts each.
  uint8_t report_hops_max = 3;
  // Contacts a report is passed to per agent: bounds one report's messages per agent.
  size_t report_fanout = 8;
  // Contacts used; same reason as limits::peer_table_max.
  size_t contacts_max = 64;
  // Score weights per reason (docs/reputation.md section 4): one fraud report outweighs ten
  // endorsers; a nuisance outweighs two.
  std::array<int64_t, report_reason_max + 1> reason_weight = {0, 10, 10, 3, 2, 2};
};

// Checks every bound above (all positive); the reason names the field.
status validate(const config& cfg);

struct contact {
  node_id id;
  std::string address;
};

// A subject's standing as this agent knows it.
// score = endorsers - sum over distinct reporters of the heaviest reason weight they reported.
struct score_card {
  int64_t score = 0;
  uint32_t endorsers = 0;        // distinct endorsers (all resources)
  uint32_t reporters = 0;        // distinct reporters
  int64_t report_weight = 0;     // the subtracted sum
  uint64_t endorsements = 0;     // accepted endorsements, counting each resource
};

enum class event_kind { endorsement_accepted, report_accepted, rejected };
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id peer;       // the sender
  node_id subject;
  verdict outcome = verdict::accepted;
};

using wire_message = std::variant<endorsement, report_gossip>;

struct effects {
  struct send {
    node_id to;
    std::string address;  // where `to` listens when it may not be a contact; empty = known
    wire_message message;
  };
  std::vector<send> sends;
  std::vector<event> events;

  void clear() {
    sends.clear();
    events.clear();
  }
};

struct stats {
  uint64_t endorsements_issued = 0;
  uint64_t reports_issued = 0;
  uint64_t endorsements_accepted = 0;
  uint64_t reports_accepted = 0;
  uint64_t reports_forwarded = 0;  // report_gossip messages sent for other reporters
  uint64_t messages_sent = 0;
  std::array<uint64_t, verdict_count> rejected{};  // by verdict
};

// Decodes the payload of a reputation envelope.
// Errors: unknown_type (not service 7 or an unknown type), then as decode_payload.
result<wire_message> decode_wire(const envelope& env);

// A claim a simulation scenario makes a node issue at `at_us` (actor clock; run by the reputation
// actor, docs/reputation.md §8). The last two kinds make the node behave as an adversary, so the
// scenario can check that the others refuse.
struct scheduled_claim {
  enum class kind : uint8_t {
    endorse,          // endorse `subject` (resource: "resource of <subject>"), sent to the subject
    report,           // report `subject` for `reason`, gossiped to contacts
    replay_endorsement,  // send the last endorsement this node issued to its subject again
    forged_report,    // gossip a report naming `impersonated` as reporter, signed with our key
  };
  int64_t at_us = 0;
  kind what = kind::report;
  node_id subject;
  std::string subject_address;  // endorse: where the subject listens
  uint8_t reason = 1;
  node_id impersonated;         // forged_report
};

class machine {
public:
  // REQUIRES: validate(cfg) is ok; `sign` signs with the secret key of `self`.
  machine(config cfg, node_id self, sign_function sign, rng random);

  // Replaces the contact list (the membership layer owns it): drops self and duplicates, keeps at
  // most contacts_max in the order given.
  void set_contacts(const std::vector<contact>& contacts);

  // Signs "we accessed `resource` served by `subject`", counts it, and sends it to the subject
  // (at `subject_address` if not empty). Errors: invalid_argument if subject is self.
  result<endorsement> endorse(const node_id& subject, const std::string& subject_address,
                              const hash32& resource, int64_t now_us, effects& out);
  // Signs a report about `subject`, counts it and gossips it to contacts.
  // Errors: invalid_argument if subject is self or the reason is unknown.
  result<report> report_subject(const node_id& subject, report_reason reason,
                                const hash32& evidence, int64_t now_us, effects& out);

  // A message from `from` (authenticated by the transport). An accepted report_gossip is cached
  // and passed on. Errors (nothing changes but the counters): the rejection's errc, with a
  // message that starts with the verdict name ("replay: ...").
  status receive(const node_id& from, const wire_message& message, int64_t now_us, effects& out);

  // Verifies, checks for replay and counts a claim shown to us out of band (for example an
  // endorsement a subject presents). Returns the verdict; only `accepted` changes state.
  verdict accept(const endorsement& e, int64_t now_us);
  verdict accept(const report& r, int64_t now_us);

  score_card score(const node_id& subject) const;
  // Cached reports about `subject`, most recent first (at most report_cache_entries_max scanned).
  std::vector<report> reports_about(const node_id& subject) const;

  const node_id& self() const { return self_; }
  const config& configuration() const { return config_; }
  const stats& statistics() const { return stats_; }
  size_t report_cache_size() const { return report_cache_.size(); }
  size_t report_cache_bytes() const { return report_cache_.bytes(); }
  uint64_t report_cache_evictions() const { return report_cache_.evictions(); }
  size_t subjects_known() const { return subjects_.size(); }

private:
  // Remembers (signer, nonce) pairs, bounded; forgetting the oldest raises a floor below which
  // everything is stale, so a forgotten claim cannot come back.
  class replay_guard {
  public:
    explicit replay_guard(size_t entries_max) : entries_max_(entries_max) {}
    bool stale(int64_t issued_at_us) const { return has_floor_ && issued_at_us <= floor_us_; }
    bool seen(const node_id& signer, uint64_t nonce) const {
      return by_key_.count({signer, nonce}) != 0;
    }
    void remember(const node_id& signer, uint64_t nonce, int64_t issued_at_us);

  private:
    size_t entries_max_;
    std::set<std::tuple<int64_t, node_id, uint64_t>> by_time_;
    std::map<std::pair<node_id, uint64_t>, int64_t> by_key_;
    bool has_floor_ = false;
    int64_t floor_us_ = 0;
  };
  struct subject_record {
    std::vector<node_id> endorsers;                      // sorted, distinct
    std::vector<std::pair<node_id, uint8_t>> reporters;  // sorted; heaviest reason per reporter
    uint64_t endorsements = 0;
  };
  using report_key = std::pair<node_id, uint64_t>;  // (reporter, nonce)

  verdict check_replay(replay_guard& guard, const node_id& signer, uint64_t nonce,
                       int64_t issued_at_us) const;
  void record_endorsement(const node_id& endorser, const node_id& subject);
  void record_report(const report& r);
  void gossip_report(const report& r, uint8_t hops_left, const node_id& received_from,
                     effects& out);
  void put_subject(const node_id& subject, subject_record record);
  status rejected(verdict v, const node_id& from, const node_id& subject, effects& out);
  void send(const node_id& to, const std::string& address, wire_message message, effects& out);

  config config_;
  node_id self_;
  sign_function sign_;
  rng rng_;
  flat_map<node_id, std::string> contacts_;
  replay_guard endorsement_replays_;
  replay_guard report_replays_;
  lru_cache<node_id, subject_record> subjects_;
  lru_cache<report_key, report> report_cache_;
  stats stats_;
};

}  // namespace cmesh::reputation
