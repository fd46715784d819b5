// FQMN ("fully qualified mesh name"): the address of a request routed by the router (DESIGN §5).
// A hand-written scanner and recursive-descent parser (no regex), a writer that round-trips, and
// the scope table the router checks session tokens against. Spec: docs/fqmn.md.
//
// Pure: no CAF, no I/O, no clock, no randomness. Functions are safe from any thread.
//
// Grammar (EBNF in docs/fqmn.md). Fields are separated by ':'; the last field of 0xS, 0xSW, 0xE,
// 0xEW, 0xR and 0xA may be JSON (which may itself contain ':'), and 0xRW and 0xP end with a whole
// nested FQMN, so "the rest of the input" is always the last field.
//
//   0xS:<contract>[:<function>[:<json>]]        state read         scope "state.read"
//   0xSW:<contract>[:<function>[:<json>]]       state write        scope "state.write"
//   0xE:<subject>[:<json>]                      events read        scope "events.read"
//   0xEW:<subject>[:<json>]                     events publish     scope "events.publish"
//   0xR:<name>[:<json>]                         resolve a name     scope "names.resolve"
//   0xRW:register:<mcom name>:<target FQMN>     register a name    scope "names.register"
//   0xI:<action>                                IAM                scope "iam"
//   0xA:<versions>:<contract>:<function>[:<json>] contract call    scope "contracts"
//   0xC:<service>:<action>                      consensus          scope "consensus"
//   0xP:<router>:<target FQMN>                  proxy              scope "proxy"
//
// Lexical rules (ASCII only outside JSON; no whitespace outside JSON; everything case-sensitive):
// - opcode: exactly one of the ten above ("0xs" is unknown).
// - contract: "0x" then 1 to 64 lowercase hex digits ("0x001"; up to a BLAKE2b-256 hash).
//   Compared as text: "0x1" and "0x001" are different contracts.
// - function, service: identifier [A-Za-z_][A-Za-z0-9_]*, at most 64 characters. In 0xS and 0xSW
//   the function is optional ("0xS:0x001" reads the contract's state as a whole).
// - action (0xI, 0xC): identifiers joined by '.' ("session", "handshake.start"), at most 64.
// - subject: NATS-style tokens joined by '.'; a token is [A-Za-z0-9_$-]+ or, in 0xE only, a
//   wildcard: '*' (one token) or '>' (the rest; last token only). At most 16 tokens, 255 bytes.
// - name (0xR): labels [A-Za-z0-9_-]{1,63} joined by '.', at least two labels, at most 253 bytes;
//   case preserved (compared as bytes). 0xR accepts any such name ("google.com" parses; the
//   registrar only holds .mcom names, so the router answers 404 for it).
// - mcom name (0xRW): a name whose last label is exactly "mcom" ("helloWorld.mcom").
// - versions (0xA): '*' (any), or 1 to 4 comparators joined by ',' (no spaces). A comparator is
//   an optional operator (">=", "<=", ">", "<", "^", "~"; none means exactly) and a version
//   MAJOR[.MINOR[.PATCH]] of decimal numbers without leading zeros, each at most 999999999.
//   Example: "^1.2.0", ">=1.0,<2", "*".
// - router (0xP): a did:key naming an ed25519 key ("did:key:z6Mk..."), the router's node id.
//   Not host:port: routers are authenticated by DID, and an address can change.
// - json: the rest of the input, one JSON value (runtime/core/json.hpp; nesting at most
//   fqmn_args_depth_max). Kept both parsed (`args`) and as written (`args_text`).
// - nesting: 0xRW and 0xP targets nest; at most fqmn_nesting_max targets inside one another.
//   A 0xRW target may not itself be a 0xRW.
//
// Errors: a 0-based byte column into the whole input (nested FQMNs and JSON arguments included)
// and a message, e.g. column 0: "unknown opcode '0xQ' (expected one of 0xS, 0xSW, ...)".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/json.hpp"

namespace cmesh::router {

// ---- limits (each with its reason) ----------------------------------------------------------
// An FQMN is an address, not a payload (bulk data goes in the CMTP body); 4 KiB keeps request
// lines, registrar entries and audit records small.
inline constexpr size_t fqmn_bytes_max = 4096;
// DESIGN §5: "names may nest up to three levels".
inline constexpr size_t fqmn_nesting_max = 3;
// A contract id is at most a 32-byte hash written in hex.
inline constexpr size_t contract_hex_digits_max = 64;
// Functions, services and actions are names a person types.
inline constexpr size_t identifier_chars_max = 64;
// Subjects: 255 bytes and 16 tokens cover events.mined.<tx> and NATS client subjects in use.
inline constexpr size_t subject_bytes_max = 255;
inline constexpr size_t subject_tokens_max = 16;
// Names follow DNS sizes (RFC 1035): 63 per label, 253 in all.
inline constexpr size_t name_label_chars_max = 63;
inline constexpr size_t name_bytes_max = 253;
// Version ranges: a lower and an upper bound need two comparators; four leave room.
inline constexpr size_t version_comparators_max = 4;
inline constexpr uint32_t version_number_max = 999'999'999;
// JSON arguments are small; shallow nesting bounds the parser's recursion.
inline constexpr size_t fqmn_args_depth_max = 32;

// ---- the parsed form ------------------------------------------------------------------------

enum class opcode : uint8_t {
  state_read,      // 0xS
  state_write,     // 0xSW
  events_read,     // 0xE
  events_publish,  // 0xEW
  resolve,         // 0xR
  register_name,   // 0xRW
  iam,             // 0xI
  contract,        // 0xA
  consensus,       // 0xC
  proxy,           // 0xP
};

// "0xS", "0xSW", ...
std::string_view opcode_text(opcode op);
// The opcode spelled exactly `text` ("0xSW"), or nullopt.
std::optional<opcode> opcode_from_text(std::string_view text);

struct version_comparator {
  enum class relation : uint8_t { exact, greater, greater_equal, less, less_equal, caret, tilde };
  relation op = relation::exact;
  uint32_t major = 0;
  std::optional<uint32_t> minor;
  std::optional<uint32_t> patch;  // only with minor
  friend bool operator==(const version_comparator&, const version_comparator&) = default;
};

// All comparators must hold. Empty means '*' (any version).
struct version_range {
  std::vector<version_comparator> comparators;
  friend bool operator==(const version_range&, const version_range&) = default;
};

struct fqmn;

// A nested FQMN (the target of 0xRW and 0xP) with value semantics: copies deeply, compares
// deeply. Empty unless the opcode has a target.
class nested_fqmn {
public:
  nested_fqmn() = default;
  nested_fqmn(const nested_fqmn& other);
  nested_fqmn(nested_fqmn&&) noexcept = default;
  nested_fqmn& operator=(const nested_fqmn& other);
  nested_fqmn& operator=(nested_fqmn&&) noexcept = default;
  ~nested_fqmn();
  explicit nested_fqmn(fqmn inner);

  bool has_value() const { return inner_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  const fqmn& operator*() const { return *inner_; }
  const fqmn* operator->() const { return inner_.get(); }
  fqmn& operator*() { return *inner_; }
  fqmn* operator->() { return inner_.get(); }

  friend bool operator==(const nested_fqmn& a, const nested_fqmn& b);

private:
  std::unique_ptr<fqmn> inner_;
};

// One parsed FQMN. Only the fields of its opcode are set; the others stay empty.
struct fqmn {
  opcode op = opcode::state_read;
  std::string contract;             // 0xS, 0xSW, 0xA
  std::string function;             // 0xS, 0xSW (may be empty), 0xA
  version_range versions;           // 0xA
  std::string subject;              // 0xE, 0xEW
  std::string name;                 // 0xR, 0xRW
  std::string service;              // 0xC
  std::string action;               // 0xI, 0xC
  std::string router;               // 0xP: the did:key as written
  node_id router_key;               // 0xP: the ed25519 key it names
  nested_fqmn target;               // 0xRW, 0xP
  std::optional<json::value> args;  // 0xS, 0xSW, 0xE, 0xEW, 0xR, 0xA: the trailing JSON
  // The JSON exactly as written (what to_string writes back, so signatures and audit hashes over
  // the FQMN text survive a round trip). Empty when args is absent; when args is set and this is
  // empty, to_string writes json::dump(*args). Not part of equality.
  std::string args_text;

  // Compares every field except args_text (args compare as JSON values).
  friend bool operator==(const fqmn& a, const fqmn& b);
};

// ---- parsing and writing --------------------------------------------------------------------

struct fqmn_error {
  size_t column = 0;    // 0-based byte offset into the whole input; input.size() = at the end
  std::string message;  // e.g. "unknown opcode '0xQ' (expected one of 0xS, 0xSW, ...)"

  // "column 0: unknown opcode ..."
  std::string describe() const;
  // describe(), then the input and a caret line under `column` (three lines, no final newline).
  // Bytes outside printable ASCII show as '?'; inputs over 80 bytes show an 80-byte window
  // around the column, cut marks "...".
  std::string render(std::string_view input) const;
};

// Parses one FQMN (the whole input). On failure returns nullopt and fills *err if given.
// Inputs longer than fqmn_bytes_max fail at column fqmn_bytes_max.
std::optional<fqmn> parse_fqmn(std::string_view input, fqmn_error* err = nullptr);

// The same, parsed into `out` (every field reset first; its strings keep their capacity). On
// failure `out` holds whatever was parsed before the error.
bool parse_fqmn_into(std::string_view input, fqmn& out, fqmn_error* err = nullptr);

// The same as a result: errc::malformed with describe() as its message (the router answers 400).
result<fqmn> parse_fqmn_result(std::string_view input);

// Writes the FQMN. REQUIRES: x obeys the rules above (every FQMN parse_fqmn returns does). Then
// parse_fqmn(to_string(x)) == x, and to_string(*parse_fqmn(s)) == s for every s that parses (the
// text of each field is kept as written and every version range has one spelling).
std::string to_string(const fqmn& x);
std::string to_string(const version_range& versions);

// ---- what a request does, for the router's token check -------------------------------------
//
//   opcode  scope             write
//   0xS     state.read        no
//   0xSW    state.write       yes
//   0xE     events.read       no
//   0xEW    events.publish    yes
//   0xR     names.resolve     no   (the resolved target is then checked on its own)
//   0xRW    names.register    yes
//   0xI     iam               no
//   0xA     contracts         yes  (a contract call may change its state; Raft orders it)
//   0xC     consensus         no   (the consensus service decides per action)
//   0xP     proxy             as its target (the remote router checks the target's scope)
//
// A token must carry the scope of the FQMN's own opcode; for 0xP and 0xR the next router, or
// the dispatch after resolution, checks the target's scope in turn.
std::string_view required_scope(opcode op);
inline std::string_view required_scope(const fqmn& x) { return required_scope(x.op); }
bool is_write(opcode op);
// is_write(x.op), except 0xP which is a write when its target is.
bool is_write(const fqmn& x);

}  // namespace cmesh::router
