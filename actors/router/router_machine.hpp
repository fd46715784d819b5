// The router and dispatcher as a pure machine (docs/router.md): CMTP request in; token check
// through the verified-token cache and the revoked set; per-subject rate limit; FQMN parse; scope
// check; registrar resolution (nested names, loops refused); dispatch to the kv service or the
// events bus as effects; exactly one CMTP response per request; the audit trail (requests,
// responses.<tx>, mined.<tx>, confirmed.<tx>) as publishes.
//
// Pure: no CAF, no I/O, no clock, no randomness. Time comes in as `now_us` (mesh time: Unix
// microseconds in real mode). Hashing is BLAKE2b (libsodium, deterministic). No unordered
// container is iterated.
//
// Thread confinement: one owner (the router actor of the node); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "actors/gossip/lru_cache.hpp"
#include "actors/iam/token.hpp"
#include "actors/router/fqmn.hpp"
#include "actors/router/slot_index.hpp"
#include "messages/cmtp_messages.hpp"
#include "messages/error.hpp"
#include "messages/iam_messages.hpp"
#include "messages/kv_messages.hpp"
#include "messages/node_id.hpp"

namespace cmesh::router {

// Every bound, with its reason (docs/router.md §6). Checked by validate().
struct config {
  // A body is an argument, not bulk data; well under the envelope limit with room for headers.
  size_t body_bytes_max = 64 * 1024;
  // Requests in flight, each holding at most one service call; past it, 503.
  size_t pending_max = 4096;
  // A kv write waits for a Raft commit (ms); 5 s covers an election.
  int64_t dispatch_timeout_us = 5'000'000;
  // Per subject: one identity cannot starve the router.
  uint32_t rate_per_s = 1000;
  uint32_t rate_burst = 2000;
  size_t rate_subjects_max = 10000;
  // Verified tokens cached (as IAM's cache: one per active session).
  size_t verified_tokens_max = 10000;
  // Revoked token ids held until their tokens expire.
  size_t revoked_max = 65536;
  // Header entries and their total size: metadata, not a second body.
  size_t headers_max = 32;
  size_t header_bytes_max = 8 * 1024;
  // The handshake through CMTP (0xI:challenge, 0xI:session) needs no token, so it is limited per
  // client key instead (the transport peer; in-process callers share one bucket): a client cannot
  // flood the IAM's bounded table of outstanding challenges. A handshake takes two requests.
  uint32_t handshake_rate_per_s = 5;
  uint32_t handshake_burst = 10;
  size_t handshake_clients_max = 10000;
};

// Checks every bound above (all positive, burst >= 1); the reason names the field.
status validate(const config& cfg);

// tx: 1 to 64 of [A-Za-z0-9_-] (docs/router.md §1), so events.*.<tx> is a valid subject.
bool valid_tx(std::string_view tx);

using hash32 = std::array<uint8_t, 32>;
// BLAKE2b-256 of the msgpack encoding of `r` with its token left out (a bearer secret).
hash32 request_hash(const cmtp::request& r);
// BLAKE2b-256 of the msgpack encoding of {status, reason, headers, body}.
hash32 response_hash(const cmtp::response& r);
// BLAKE2b-256 of "cmesh-audit-v1" 0x00 || tx || request hash || response hash.
hash32 audit_hash(std::string_view tx, const hash32& request, const hash32& response);

// The kv key a state FQMN addresses: "state/<contract>" or "state/<contract>/<function>".
std::string state_key(const fqmn& x);

// The audience a router expects by default ("cmesh", what `cmesh id session` asks for). Tokens are
// bound to this router by their issuer: only this node's key signs what it accepts.
inline constexpr const char* default_audience = "cmesh";

using request_id = uint64_t;

// Audit records published on the bus (msgpack maps; docs/router.md §3 step 7 and 9).
struct audit_request {
  std::string tx;
  std::string sub;
  std::string fqmn;
  bytes request_hash;
  MSGPACK_DEFINE_MAP(tx, sub, fqmn, request_hash);
};
struct audit_response {
  std::string tx;
  uint16_t status = 0;
  bytes response_hash;
  MSGPACK_DEFINE_MAP(tx, status, response_hash);
};
struct audit_mined {
  std::string tx;
  bytes request_hash;
  bytes response_hash;
  MSGPACK_DEFINE_MAP(tx, request_hash, response_hash);
};
struct audit_confirmed {
  std::string tx;
  uint64_t index = 0;
  MSGPACK_DEFINE_MAP(tx, index);
};

struct effects {
  // Ask the local kv service; answer with on_kv_answer(id, ...). `caller` is the token's subject
  // key: the registrar's owner of a name registered by this request.
  struct kv_call {
    request_id id = 0;
    kv::request req;
    node_id caller;
  };
  struct publish {
    std::string subject;
    bytes payload;
  };
  // The publishes of a step, packed as the bus takes them (events_pub_packed_atom): subjects end to
  // end, payloads end to end, and where each ends. The machine writes the audit records straight
  // into these buffers, so a record costs no allocation of its own.
  struct publish_list {
    std::string subjects;
    std::vector<uint32_t> subject_ends;
    bytes payloads;
    std::vector<uint32_t> payload_ends;

    size_t size() const { return subject_ends.size(); }
    bool empty() const { return subject_ends.empty(); }
    // Publish i, copied out (tests and logs; the shell moves the buffers instead).
    publish operator[](size_t i) const;
    void reserve(size_t records, size_t bytes_per_record);
    void clear();
    // `payload` as is, on the subject `prefix` + `tail`.
    void add(std::string_view prefix, std::string_view tail, const uint8_t* payload, size_t size);

  private:
    void append_subject(std::string_view prefix, std::string_view tail);
  };
  struct respond {
    request_id id = 0;
    cmtp::response response;
  };
  // 0xP: send `request` to the router of node `router` over the transport; answer with
  // on_proxy_answer(id, ...).
  struct proxy {
    request_id id = 0;
    node_id router;
    cmtp::request request;
  };
  // 0xE: a request on the events bus (request/reply through an inbox); answer with
  // on_bus_answer(id, ...).
  struct bus_request {
    request_id id = 0;
    std::string subject;
    bytes payload;
    uint32_t timeout_ms = 0;
  };
  // 0xC:kv:status: the local replica's Raft status; answer with on_consensus_answer(id, ...).
  struct consensus_query {
    request_id id = 0;
  };
  // 0xI: the node's IAM. challenge: ask for a challenge for `audience`, answer with
  // on_challenge_reply; session: redeem `answer`, answer with on_session_reply.
  struct iam_call {
    request_id id = 0;
    bool session = false;  // false: challenge
    std::string audience;
    iam::answer_message answer;
  };
  std::vector<kv_call> calls;
  std::vector<proxy> proxies;
  std::vector<bus_request> bus_requests;
  std::vector<consensus_query> consensus_queries;
  std::vector<iam_call> iam_calls;
  publish_list publishes;  // in order
  std::vector<respond> responses;

  void clear() {
    proxies.clear();
    calls.clear();
    bus_requests.clear();
    consensus_queries.clear();
    iam_calls.clear();
    publishes.clear();
    responses.clear();
  }
};

struct stats {
  uint64_t requests = 0;
  uint64_t answered = 0;
  std::map<uint16_t, uint64_t> by_status;
  uint64_t kv_calls = 0;
  uint64_t resolutions = 0;
  uint64_t timeouts = 0;
  uint64_t late_answers = 0;   // a service answered after its request timed out
  uint64_t rate_limited = 0;
  uint64_t proxied = 0;
  uint64_t handshakes = 0;     // 0xI:challenge and 0xI:session requests dispatched to the IAM
};

class machine {
public:
  // REQUIRES: validate(cfg) is ok. Tokens must be issued by `issuer_key` (this node's IAM) for
  // `audience` (this router).
  machine(config cfg, node_id issuer_key, std::string audience);

  // A request; `id` is unique among this router's requests (the shell numbers them). Always
  // answers, at once (refusals) or later (through on_kv_answer or tick). `client` is the
  // authenticated transport peer the request came from (zero for in-process callers): never an
  // identity for authorization, only the key the token-less handshake is rate-limited by.
  void on_request(request_id id, cmtp::request&& req, int64_t now_us, effects& out, const node_id& client = node_id{});
  void on_request(request_id id, const cmtp::request& req, int64_t now_us, effects& out,
                  const node_id& client = node_id{}) {
    cmtp::request copy = req;
    on_request(id, std::move(copy), now_us, out, client);
  }
  // The kv service's answer to a kv_call. An answer for an unknown or timed-out id is counted
  // and dropped.
  void on_kv_answer(request_id id, const kv::response& answer, int64_t now_us, effects& out);
  // Whether the router serves: false until the router has authenticated its own identity with
  // its node's IAM (seed 000: a router authenticates before its protected services start).
  // Requests meanwhile are answered 503. Starts false.
  void set_serving(bool serving) { serving_ = serving; }
  bool serving() const { return serving_; }
  // The remote router's answer to a proxy effect. An answer for an unknown or timed-out id is
  // counted and dropped.
  void on_proxy_answer(request_id id, const cmtp::response& answer, int64_t now_us, effects& out);
  // The bus answered a 0xE request: 200 with the reply's payload, 404 no responders, 408 no reply
  // in time, 400/413/503 refused (the events client statuses).
  void on_bus_answer(request_id id, uint16_t status, const std::string& reason, const bytes& payload,
                     int64_t now_us, effects& out);
  // The replica answered a 0xC query (status 200 with its status line, or 503 without a replica).
  void on_consensus_answer(request_id id, uint16_t status, const std::string& text, int64_t now_us, effects& out);
  // The IAM answered an iam_call: the reply's status becomes the CMTP status; on 200 the body is
  // JSON (the challenge to sign, or the session token and what it grants).
  void on_challenge_reply(request_id id, const iam::challenge_reply& reply, int64_t now_us, effects& out);
  void on_session_reply(request_id id, const iam::session_reply& reply, int64_t now_us, effects& out);
  // Other nodes whose IAM this router trusts to issue session tokens (for requests proxied to it
  // by their routers: 0xP). Its own node is always trusted.
  void trust_issuer(const node_id& issuer) { trusted_.insert(issuer); }
  // `token_id` of a token `issuer` signed is revoked (the token expires at `expires_at_s`): told by
  // this node's IAM, for its own tokens and for those other nodes' IAMs revoked (docs/iam.md §4).
  void revoke(const node_id& issuer, const std::string& token_id, int64_t expires_at_s);
  // Answers 408 to requests whose call outlived dispatch_timeout_us; forgets expired revocations.
  void tick(int64_t now_us, effects& out);
  // The earliest call deadline, or INT64_MAX.
  int64_t next_deadline_us() const;

  size_t pending() const { return by_id_.size(); }
  const stats& statistics() const { return stats_; }
  const config& configuration() const { return config_; }
  const iam::verified_token_cache& token_cache() const { return tokens_; }

private:
  struct pending_request {
    uint32_t slot = 0;             // its place in slots_ (and heads_)
    cmtp::request req;             // token cleared
    std::string token;             // kept only to forward the request (0xP)
    iam::shared_claims claims;     // the token's (shared with the verified-token cache)
    node_id caller;                // the subject's key
    fqmn current;                  // what is being dispatched now (the target after a resolve)
    std::vector<std::string> names;  // followed so far (0xR), in order
    bool resolving = false;        // the outstanding call is a name_resolve
    hash32 request_hash{};
  };
  // What the deadline queue checks of a slot, kept apart from the large pending entries so that
  // skipping answered deadlines touches a few bytes per entry.
  struct slot_head {
    request_id id = 0;         // 0: a free slot
    int64_t deadline_us = 0;   // 0: no call outstanding
  };
  struct deadline_entry {
    int64_t deadline_us = 0;
    request_id id = 0;
    uint32_t slot = 0;
  };
  struct bucket {
    int64_t millitokens = 0;
    int64_t last_us = 0;
    node_id caller;  // the subject's key, decoded from its did:key once per bucket
  };

  void refuse(request_id id, uint16_t status, std::string reason, effects& out);
  // 0xI:challenge and 0xI:session: the handshake, without a token (docs/router.md §3, step 2).
  void on_handshake(request_id id, cmtp::request&& req, bool session, int64_t now_us, effects& out,
                    const node_id& client);
  enum class rate_verdict { ok, limited, bad_subject };
  // Takes one request token from `sub`'s bucket; fills `caller` with the subject's key.
  rate_verdict take_token(const std::string& sub, int64_t now_us, int64_t& retry_ms, node_id& caller);
  void dispatch(request_id id, pending_request& p, int64_t now_us, effects& out);
  void call_kv(request_id id, pending_request& p, kv::request req, int64_t now_us, effects& out);
  void await(request_id id, pending_request& p, int64_t now_us);
  // The outstanding call of `id` answered: its pending entry, or nullptr if unknown or late.
  pending_request* settle(request_id id);
  // The pending entry of `id`, or nullptr.
  pending_request* find(request_id id);
  // A pending entry for `id` (REQUIRES: none yet), with (caller, tx) not yet in flight.
  pending_request& open(request_id id);
  // Marks (p.caller, p.req.tx) in flight: the duplicate check refuses it until p is finished.
  void mark_in_flight(const pending_request& p);
  bool in_flight(const node_id& caller, std::string_view tx) const;
  // Frees p's slot (and its in-flight mark) for the next request.
  void release(pending_request& p);
  static uint64_t id_hash(request_id id) { return id; }
  static uint64_t tx_hash(const node_id& caller, std::string_view tx);
  void finish(request_id id, cmtp::response response, effects& out, uint64_t committed_index = 0);
  template <class T>
  void publish(std::string subject, const T& record, effects& out);
  // Whether the request's token grants `scope`.
  static bool granted(const pending_request& p, std::string_view scope);

  config config_;
  bool serving_ = false;
  node_id issuer_key_;
  std::set<node_id> trusted_;                   // other issuers accepted (0xP)
  std::string audience_;
  iam::verified_token_cache tokens_;
  // issuer -> token id -> its token's exp (Unix seconds)
  std::map<node_id, std::map<std::string, int64_t, std::less<>>> revoked_;
  size_t revoked_count_ = 0;
  lru_cache<std::string, bucket> buckets_;
  lru_cache<node_id, bucket> handshake_buckets_;  // per client key (zero: in-process callers)
  // The requests in flight, in a pool of slots (a finished request's slot is reused, so a request
  // costs no allocation of its own), found by id and by (caller, tx) for the duplicate check. The
  // indexes are looked up only, never iterated, so the machine stays deterministic.
  std::deque<pending_request> slots_;  // a deque: entries keep their address as it grows
  std::vector<slot_head> heads_;       // by slot
  std::vector<uint32_t> free_slots_;
  slot_index by_id_;
  slot_index by_tx_;
  // (deadline, id) in deadline order: every call waits dispatch_timeout_us, so deadlines arrive in
  // order (a clock stepping back is clamped to the last deadline). An entry whose request was
  // answered, or waits again with a later deadline, is stale and skipped when it comes up.
  std::deque<deadline_entry> deadlines_;
  // Whether `d` no longer applies: its request was answered, or waits again with a later deadline.
  bool stale(const deadline_entry& d) const;
  // Drops stale entries from the front of deadlines_ (and compacts it if stale ones pile up).
  void trim_deadlines();
  stats stats_;
};

}  // namespace cmesh::router
