#include "actors/router/fqmn.hpp"

#include <array>
#include <cassert>
#include <cstdio>
#include <utility>

#include "runtime/crypto/identity.hpp"

namespace cmesh::router {

// ---- opcodes and the scope table ------------------------------------------------------------

namespace {

struct opcode_row {
  opcode op;
  std::string_view text;
  std::string_view scope;
  bool write;
};

constexpr std::array<opcode_row, 10> opcode_table{{
    {opcode::state_read, "0xS", "state.read", false},
    {opcode::state_write, "0xSW", "state.write", true},
    {opcode::events_read, "0xE", "events.read", false},
    {opcode::events_publish, "0xEW", "events.publish", true},
    {opcode::resolve, "0xR", "names.resolve", false},
    {opcode::register_name, "0xRW", "names.register", true},
    {opcode::iam, "0xI", "iam", false},
    {opcode::contract, "0xA", "contracts", true},
    {opcode::consensus, "0xC", "consensus", false},
    {opcode::proxy, "0xP", "proxy", false},
}};

const opcode_row& row_of(opcode op) {
  const auto index = static_cast<size_t>(op);
  assert(index < opcode_table.size() && opcode_table[index].op == op);
  return opcode_table[index];
}

constexpr std::string_view opcode_list = "0xS, 0xSW, 0xE, 0xEW, 0xR, 0xRW, 0xI, 0xA, 0xC, 0xP";

}  // namespace

std::string_view opcode_text(opcode op) { return row_of(op).text; }

std::optional<opcode> opcode_from_text(std::string_view text) {
  for (const auto& row : opcode_table)
    if (row.text == text) return row.op;
  return std::nullopt;
}

std::string_view required_scope(opcode op) { return row_of(op).scope; }

bool is_write(opcode op) { return row_of(op).write; }

bool is_write(const fqmn& x) {
  if (x.op == opcode::proxy) return x.target.has_value() && is_write(*x.target);
  return is_write(x.op);
}

// ---- nested_fqmn and equality ---------------------------------------------------------------

nested_fqmn::nested_fqmn(const nested_fqmn& other)
    : inner_(other.inner_ ? std::make_unique<fqmn>(*other.inner_) : nullptr) {}

nested_fqmn& nested_fqmn::operator=(const nested_fqmn& other) {
  if (this != &other) inner_ = other.inner_ ? std::make_unique<fqmn>(*other.inner_) : nullptr;
  return *this;
}

nested_fqmn::~nested_fqmn() = default;

nested_fqmn::nested_fqmn(fqmn inner) : inner_(std::make_unique<fqmn>(std::move(inner))) {}

bool operator==(const nested_fqmn& a, const nested_fqmn& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a.has_value() || *a == *b;
}

bool operator==(const fqmn& a, const fqmn& b) {
  return a.op == b.op && a.contract == b.contract && a.function == b.function &&
         a.versions == b.versions && a.subject == b.subject && a.name == b.name &&
         a.service == b.service && a.action == b.action && a.router == b.router &&
         a.router_key == b.router_key && a.target == b.target && a.args == b.args;
}

// ---- errors ---------------------------------------------------------------------------------

std::string fqmn_error::describe() const {
  return "column " + std::to_string(column) + ": " + message;
}

std::string fqmn_error::render(std::string_view input) const {
  constexpr size_t window_bytes = 80;
  size_t begin = 0;
  size_t end = input.size();
  if (input.size() > window_bytes) {
    begin = column > window_bytes / 2 ? column - window_bytes / 2 : 0;
    if (begin > input.size()) begin = input.size();
    end = begin + window_bytes < input.size() ? begin + window_bytes : input.size();
  }
  std::string line;
  if (begin > 0) line += "...";
  const size_t caret = line.size() + (column >= begin ? column - begin : 0);
  for (size_t i = begin; i < end; ++i) {
    const auto c = static_cast<unsigned char>(input[i]);
    line += c >= 0x20 && c < 0x7f ? char(c) : '?';
  }
  if (end < input.size()) line += "...";
  return describe() + "\n" + line + "\n" + std::string(caret, ' ') + "^";
}

result<fqmn> parse_fqmn_result(std::string_view input) {
  fqmn_error err;
  auto parsed = parse_fqmn(input, &err);
  if (!parsed) return error{errc::malformed, err.describe()};
  return std::move(*parsed);
}

// ---- the scanner ----------------------------------------------------------------------------

namespace {

std::optional<opcode> case_insensitive_opcode(std::string_view word) {
  for (const auto& row : opcode_table) {
    if (row.text.size() != word.size()) continue;
    bool same = true;
    for (size_t i = 0; i < word.size() && same; ++i) {
      const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
      same = lower(row.text[i]) == lower(word[i]);
    }
    if (same) return row.op;
  }
  return std::nullopt;
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_identifier_start(char c) { return is_letter(c) || c == '_'; }
bool is_identifier_char(char c) { return is_identifier_start(c) || is_digit(c); }
bool is_label_char(char c) { return is_letter(c) || is_digit(c) || c == '_' || c == '-'; }
bool is_subject_char(char c) { return is_label_char(c) || c == '$'; }
bool is_base58_char(char c) {
  return (c >= '1' && c <= '9') || (c >= 'A' && c <= 'Z' && c != 'I' && c != 'O') ||
         (c >= 'a' && c <= 'z' && c != 'l');
}

// One parse over the whole input. Every method either advances pos_ past what it accepted and
// returns true, or records the first error and returns false.
class scanner {
public:
  explicit scanner(std::string_view input) : input_(input) {}

  bool parse(fqmn& out) {
    if (input_.size() > fqmn_bytes_max)
      return fail(fqmn_bytes_max, "FQMN of " + std::to_string(input_.size()) +
                                      " bytes is longer than the limit of " +
                                      std::to_string(fqmn_bytes_max));
    if (input_.empty())
      return fail(0, "empty FQMN (expected an opcode: " + std::string(opcode_list) + ")");
    if (!parse_fqmn_at(out, 0)) return false;
    assert(at_end());  // every opcode's last field runs to the end or fails
    return true;
  }

  fqmn_error& error() { return error_; }

private:
  // ---- helpers ----

  bool at_end() const { return pos_ >= input_.size(); }
  char peek() const { return input_[pos_]; }

  bool fail(size_t column, std::string message) {
    error_.column = column;
    error_.message = std::move(message);
    return false;
  }

  // "'x'", "byte 0xNN" or "the end of the FQMN", for what stands at pos_.
  std::string found() const {
    if (at_end()) return "the end of the FQMN";
    const auto c = static_cast<unsigned char>(peek());
    if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }

  bool fail_expected(const std::string& expected) {
    return fail(pos_, "expected " + expected + ", found " + found());
  }

  // Like fail_expected, but shows the whole field at pos_ (up to 16 characters).
  bool fail_expected_field(const std::string& expected) {
    return fail(pos_, "expected " + expected + ", found " +
                          (at_end() ? found() : "'" + shown_field(pos_) + "'"));
  }

  // After a field that may be the last one: true at ':' (consumed) or at the end.
  // `more` reports which of the two it was.
  bool end_of_field(std::string_view field, std::string_view allowed, bool& more) {
    more = false;
    if (at_end()) return true;
    if (peek() == ':') {
      ++pos_;
      more = true;
      return true;
    }
    return fail(pos_, "unexpected " + found() + " in " + std::string(field) + " (expected " +
                          std::string(allowed) + ", ':' or the end)");
  }

  // After a field that must be followed by ':' and more.
  bool expect_separator(std::string_view after, std::string_view next) {
    if (!at_end() && peek() == ':') {
      ++pos_;
      return true;
    }
    if (at_end())
      return fail(pos_, "expected ':' and " + std::string(next) + " after " + std::string(after) +
                            ", found the end of the FQMN");
    return fail(pos_, "unexpected " + found() + " after " + std::string(after) + " (expected ':')");
  }

  // After the last field of an opcode that takes nothing more.
  bool expect_end(std::string_view field, std::string_view allowed) {
    if (at_end()) return true;
    if (peek() == ':')
      return fail(pos_, "unexpected ':' after " + std::string(field) + " (nothing may follow it)");
    return fail(pos_, "unexpected " + found() + " in " + std::string(field) + " (expected " +
                          std::string(allowed) + " or the end)");
  }

  // ---- one FQMN (nested ones recurse here) ----

  bool parse_fqmn_at(fqmn& out, size_t nesting) {
    const size_t start = pos_;
    while (!at_end() && (is_letter(peek()) || is_digit(peek()))) ++pos_;
    const std::string_view word = input_.substr(start, pos_ - start);
    if (word.empty()) {
      pos_ = start;
      return fail_expected("an opcode (" + std::string(opcode_list) + ")");
    }
    const auto op = opcode_from_text(word);
    if (!op) {
      const std::string shown(word.substr(0, 16));
      std::string message = "unknown opcode '" + shown + (word.size() > 16 ? "...'" : "'") +
                            " (expected one of " + std::string(opcode_list) + ")";
      if (auto near = case_insensitive_opcode(word))
        message += "; opcodes are case-sensitive: " + std::string(opcode_text(*near));
      return fail(start, std::move(message));
    }
    out.op = *op;
    const std::string after = "opcode " + std::string(word);
    switch (*op) {
      case opcode::state_read:
      case opcode::state_write:
        return expect_separator(after, "a contract id") && parse_state(out);
      case opcode::events_read:
      case opcode::events_publish:
        return expect_separator(after, "a subject") && parse_events(out);
      case opcode::resolve:
        return expect_separator(after, "a name") && parse_resolve(out);
      case opcode::register_name:
        return expect_separator(after, "'register'") && parse_register(out, nesting);
      case opcode::iam:
        return expect_separator(after, "an action") && scan_action(out.action) &&
               expect_end("action", "a letter, digit, '_', '.'");
      case opcode::contract:
        return expect_separator(after, "a version range") && parse_contract_call(out);
      case opcode::consensus:
        return expect_separator(after, "a service") && scan_identifier(out.service, "service") &&
               expect_separator("service", "an action") && scan_action(out.action) &&
               expect_end("action", "a letter, digit, '_', '.'");
      case opcode::proxy:
        return expect_separator(after, "a router did:key") && parse_proxy(out, nesting);
    }
    assert(false);
    return false;
  }

  bool parse_state(fqmn& out) {
    bool more = false;
    if (!scan_contract(out.contract) || !end_of_field("contract id", "a lowercase hex digit", more))
      return false;
    if (!more) return true;
    if (!scan_identifier(out.function, "function name") ||
        !end_of_field("function name", "a letter, digit or '_'", more))
      return false;
    return !more || parse_args(out);
  }

  bool parse_events(fqmn& out) {
    bool more = false;
    if (!scan_subject(out.subject, out.op == opcode::events_read) ||
        !end_of_field("subject", "a letter, digit, '_', '-', '$' or '.'", more))
      return false;
    return !more || parse_args(out);
  }

  bool parse_resolve(fqmn& out) {
    bool more = false;
    if (!scan_name(out.name, false) ||
        !end_of_field("name", "a letter, digit, '_', '-' or '.'", more))
      return false;
    return !more || parse_args(out);
  }

  bool parse_register(fqmn& out, size_t nesting) {
    constexpr std::string_view keyword = "register";
    const size_t start = pos_;
    while (!at_end() && is_letter(peek())) ++pos_;
    if (input_.substr(start, pos_ - start) != keyword) {
      pos_ = start;
      return fail_expected_field("'register' (the only action of 0xRW)");
    }
    if (!expect_separator("'register'", "a name ending in .mcom") || !scan_name(out.name, true))
      return false;
    if (!expect_separator("name", "the target FQMN")) return false;
    const size_t target_start = pos_;
    fqmn target;
    if (!parse_target(target, nesting)) return false;
    if (target.op == opcode::register_name)
      return fail(target_start, "a name cannot map to a registration (0xRW target is 0xRW)");
    out.target = nested_fqmn(std::move(target));
    return true;
  }

  bool parse_contract_call(fqmn& out) {
    return scan_versions(out.versions) && expect_separator("version range", "a contract id") &&
           scan_contract(out.contract) && expect_separator("contract id", "a function name") &&
           scan_identifier(out.function, "function name") && parse_optional_args(out);
  }

  bool parse_optional_args(fqmn& out) {
    bool more = false;
    if (!end_of_field("function name", "a letter, digit or '_'", more)) return false;
    return !more || parse_args(out);
  }

  bool parse_proxy(fqmn& out, size_t nesting) {
    if (!scan_router(out)) return false;
    if (!expect_separator("router did:key", "the target FQMN")) return false;
    fqmn target;
    if (!parse_target(target, nesting)) return false;
    out.target = nested_fqmn(std::move(target));
    return true;
  }

  bool parse_target(fqmn& target, size_t nesting) {
    if (nesting + 1 > fqmn_nesting_max)
      return fail(pos_, "FQMN nested too deeply (at most " + std::to_string(fqmn_nesting_max) +
                            " nested targets of 0xRW and 0xP)");
    if (at_end()) return fail_expected("a target FQMN");
    return parse_fqmn_at(target, nesting + 1);
  }

  // The rest of the input is one JSON value.
  bool parse_args(fqmn& out) {
    const size_t start = pos_;
    const std::string_view text = input_.substr(start);
    json::parse_error json_error;
    auto parsed = json::parse(text, &json_error, json::parse_limits{fqmn_args_depth_max});
    if (!parsed)
      return fail(start + json_error.offset, "invalid JSON arguments: " + json_error.message);
    out.args = std::move(*parsed);
    out.args_text = std::string(text);
    pos_ = input_.size();
    return true;
  }

  // Up to 16 characters of the field starting at `start`, for messages.
  std::string shown_field(size_t start) const {
    size_t end = start;
    while (end < input_.size() && input_[end] != ':' && end - start < 16) ++end;
    std::string shown;
    for (size_t i = start; i < end; ++i) {
      const auto c = static_cast<unsigned char>(input_[i]);
      shown += c >= 0x20 && c < 0x7f ? char(c) : '?';
    }
    return shown;
  }

  // ---- fields ----

  bool scan_contract(std::string& out) {
    const size_t start = pos_;
    if (input_.substr(pos_, 2) != "0x")
      return fail_expected_field("a contract id ('0x' and lowercase hex digits, e.g. 0x001)");
    pos_ += 2;
    const size_t digits_start = pos_;
    while (!at_end() && is_lower_hex(peek())) ++pos_;
    if (!at_end() && peek() >= 'A' && peek() <= 'F')
      return fail(pos_, "contract ids use lowercase hex digits, found " + found());
    if (pos_ == digits_start)
      return fail_expected("a lowercase hex digit after '0x' in contract id");
    if (pos_ - digits_start > contract_hex_digits_max)
      return fail(digits_start + contract_hex_digits_max,
                  "contract id longer than " + std::to_string(contract_hex_digits_max) +
                      " hex digits");
    out.assign(input_.substr(start, pos_ - start));
    return true;
  }

  bool scan_identifier(std::string& out, std::string_view what) {
    const size_t start = pos_;
    if (at_end() || !is_identifier_start(peek()))
      return fail_expected("a " + std::string(what) + " (a letter or '_' first)");
    while (!at_end() && is_identifier_char(peek())) ++pos_;
    if (pos_ - start > identifier_chars_max)
      return fail(start + identifier_chars_max, std::string(what) + " longer than " +
                                                    std::to_string(identifier_chars_max) +
                                                    " characters");
    out.assign(input_.substr(start, pos_ - start));
    return true;
  }

  // identifier ('.' identifier)*
  bool scan_action(std::string& out) {
    const size_t start = pos_;
    for (;;) {
      if (at_end() || !is_identifier_start(peek()))
        return fail_expected(pos_ == start ? "an action (a letter or '_' first)"
                                           : "an identifier after '.' in action");
      while (!at_end() && is_identifier_char(peek())) ++pos_;
      if (at_end() || peek() != '.') break;
      ++pos_;
    }
    if (pos_ - start > identifier_chars_max)
      return fail(start + identifier_chars_max,
                  "action longer than " + std::to_string(identifier_chars_max) + " characters");
    out.assign(input_.substr(start, pos_ - start));
    return true;
  }

  bool scan_subject(std::string& out, bool wildcards_allowed) {
    const size_t start = pos_;
    size_t tokens = 0;
    for (;;) {
      const size_t token_start = pos_;
      if (++tokens > subject_tokens_max)
        return fail(token_start, "subject has more than " + std::to_string(subject_tokens_max) +
                                     " tokens");
      if (!at_end() && (peek() == '*' || peek() == '>')) {
        const char wildcard = peek();
        if (!wildcards_allowed)
          return fail(pos_, std::string("wildcard '") + wildcard +
                                "' is not allowed in a publish subject (0xEW); only reads (0xE) "
                                "take wildcards");
        ++pos_;
        if (wildcard == '>' && !at_end() && peek() == '.')
          return fail(token_start, "wildcard '>' must be the last token of a subject");
        if (!at_end() && peek() != '.' && peek() != ':')
          return fail(token_start, std::string("wildcard '") + wildcard +
                                       "' must be a whole token");
      } else {
        while (!at_end() && is_subject_char(peek())) ++pos_;
        if (pos_ == token_start) {
          if (at_end() || peek() == '.' || peek() == ':')
            return fail(pos_, "empty token in subject (expected a letter, digit, '_', '-', '$'" +
                                  std::string(wildcards_allowed ? ", '*' or '>'" : "") +
                                  "), found " + found());
          return fail_expected("a subject token");
        }
        if (!at_end() && (peek() == '*' || peek() == '>'))
          return fail(pos_, "wildcard '" + std::string(1, peek()) + "' must be a whole token");
      }
      if (at_end() || peek() != '.') break;
      ++pos_;
    }
    if (pos_ - start > subject_bytes_max)
      return fail(start + subject_bytes_max,
                  "subject longer than " + std::to_string(subject_bytes_max) + " bytes");
    out.assign(input_.substr(start, pos_ - start));
    return true;
  }

  // labels joined by '.', at least two; `mcom_only` requires the last label to be "mcom".
  bool scan_name(std::string& out, bool mcom_only) {
    const size_t start = pos_;
    size_t labels = 0;
    size_t last_label_start = start;
    for (;;) {
      const size_t label_start = pos_;
      while (!at_end() && is_label_char(peek())) ++pos_;
      if (pos_ == label_start) {
        if (labels == 0) return fail_expected("a name (labels of letters, digits, '_' or '-')");
        return fail_expected("a label after '.' in name");
      }
      if (pos_ - label_start > name_label_chars_max)
        return fail(label_start + name_label_chars_max,
                    "name label longer than " + std::to_string(name_label_chars_max) +
                        " characters");
      ++labels;
      last_label_start = label_start;
      if (at_end() || peek() != '.') break;
      ++pos_;
    }
    if (!at_end() && peek() != ':')
      return fail(pos_, "unexpected " + found() +
                            " in name (expected a letter, digit, '_', '-', '.', ':' or the end)");
    if (pos_ - start > name_bytes_max)
      return fail(start + name_bytes_max,
                  "name longer than " + std::to_string(name_bytes_max) + " bytes");
    const std::string_view name = input_.substr(start, pos_ - start);
    if (labels < 2)
      return fail(start, "name '" + shown_field(start) +
                             "' has no '.' (expected a dotted name such as helloWorld.mcom)");
    if (mcom_only && input_.substr(last_label_start, pos_ - last_label_start) != "mcom")
      return fail(last_label_start, "only .mcom names can be registered, found '." +
                                        shown_field(last_label_start) + "'");
    out = std::string(name);
    return true;
  }

  bool scan_router(fqmn& out) {
    constexpr std::string_view prefix = "did:key:z";
    constexpr size_t did_chars_max = 64;  // an ed25519 did:key has 56; bounds the base58 decode
    const size_t start = pos_;
    if (input_.substr(pos_, prefix.size()) != prefix)
      return fail_expected_field("a router did:key (did:key:z6Mk...)");
    pos_ += prefix.size();
    while (!at_end() && is_base58_char(peek())) ++pos_;
    if (!at_end() && peek() != ':')
      return fail(pos_, "unexpected " + found() + " in router did:key (not a base58btc character)");
    if (pos_ - start > did_chars_max)
      return fail(start, "router did:key longer than " + std::to_string(did_chars_max) +
                             " characters (an ed25519 did:key has 56)");
    const std::string_view did = input_.substr(start, pos_ - start);
    auto key = node_id_from_did(did);
    if (!key) return fail(start, "invalid router did:key: " + key.err().message);
    out.router = std::string(did);
    out.router_key = *key;
    return true;
  }

  // One version number: '0' or [1-9][0-9]*, at most version_number_max.
  bool scan_version_number(uint32_t& out) {
    const size_t start = pos_;
    if (at_end() || !is_digit(peek())) return fail_expected("a version number");
    uint64_t value = 0;
    while (!at_end() && is_digit(peek())) {
      value = value * 10 + uint64_t(peek() - '0');
      if (value > version_number_max)
        return fail(start, "version number larger than " + std::to_string(version_number_max));
      ++pos_;
    }
    if (input_[start] == '0' && pos_ - start > 1)
      return fail(start, "leading zeros are not allowed in a version number");
    out = uint32_t(value);
    return true;
  }

  bool scan_comparator(version_comparator& out) {
    using relation = version_comparator::relation;
    const std::string_view rest = input_.substr(pos_);
    struct spelling {
      std::string_view text;
      relation op;
    };
    // Two-character operators first.
    constexpr std::array<spelling, 6> operators{{{">=", relation::greater_equal},
                                                 {"<=", relation::less_equal},
                                                 {">", relation::greater},
                                                 {"<", relation::less},
                                                 {"^", relation::caret},
                                                 {"~", relation::tilde}}};
    out.op = relation::exact;
    for (const auto& s : operators) {
      if (rest.substr(0, s.text.size()) == s.text) {
        out.op = s.op;
        pos_ += s.text.size();
        break;
      }
    }
    if (out.op == relation::exact && !at_end() && peek() == '=')
      return fail(pos_, "unexpected '=' in version range (write an exact version without '=')");
    if (!scan_version_number(out.major)) return false;
    if (at_end() || peek() != '.') return true;
    ++pos_;
    uint32_t minor = 0;
    if (!scan_version_number(minor)) return false;
    out.minor = minor;
    if (at_end() || peek() != '.') return true;
    ++pos_;
    uint32_t patch = 0;
    if (!scan_version_number(patch)) return false;
    out.patch = patch;
    return true;
  }

  bool scan_versions(version_range& out) {
    out.comparators.clear();
    if (!at_end() && peek() == '*') {
      ++pos_;
    } else {
      for (;;) {
        if (out.comparators.size() == version_comparators_max)
          return fail(pos_, "version range has more than " +
                                std::to_string(version_comparators_max) + " comparators");
        version_comparator comparator;
        if (!scan_comparator(comparator)) return false;
        out.comparators.push_back(comparator);
        if (at_end() || peek() != ',') break;
        ++pos_;
      }
    }
    if (!at_end() && peek() != ':')
      return fail(pos_, "unexpected " + found() +
                            " in version range (expected a range such as ^1.2.0, >=1.0,<2 or *)");
    return true;
  }

  std::string_view input_;
  size_t pos_ = 0;
  fqmn_error error_;
};

// ---- writer ---------------------------------------------------------------------------------

void write_args(const fqmn& x, std::string& out) {
  if (!x.args) return;
  out += ':';
  out += x.args_text.empty() ? json::dump(*x.args) : x.args_text;
}

std::string_view relation_text(version_comparator::relation op) {
  using relation = version_comparator::relation;
  switch (op) {
    case relation::exact: return "";
    case relation::greater: return ">";
    case relation::greater_equal: return ">=";
    case relation::less: return "<";
    case relation::less_equal: return "<=";
    case relation::caret: return "^";
    case relation::tilde: return "~";
  }
  assert(false);
  return "";
}

void write_fqmn(const fqmn& x, std::string& out) {
  out += opcode_text(x.op);
  out += ':';
  switch (x.op) {
    case opcode::state_read:
    case opcode::state_write:
      out += x.contract;
      if (!x.function.empty()) out += ':' + x.function;
      write_args(x, out);
      return;
    case opcode::events_read:
    case opcode::events_publish:
      out += x.subject;
      write_args(x, out);
      return;
    case opcode::resolve:
      out += x.name;
      write_args(x, out);
      return;
    case opcode::register_name:
      assert(x.target.has_value());
      out += "register:" + x.name + ':';
      write_fqmn(*x.target, out);
      return;
    case opcode::iam:
      out += x.action;
      return;
    case opcode::contract:
      out += to_string(x.versions) + ':' + x.contract + ':' + x.function;
      write_args(x, out);
      return;
    case opcode::consensus:
      out += x.service + ':' + x.action;
      return;
    case opcode::proxy:
      assert(x.target.has_value());
      out += x.router + ':';
      write_fqmn(*x.target, out);
      return;
  }
  assert(false);
}

}  // namespace

bool parse_fqmn_into(std::string_view input, fqmn& out, fqmn_error* err) {
  // Every field back to empty, keeping the strings' capacity for the fields parsed next.
  out.op = opcode::state_read;
  out.contract.clear();
  out.function.clear();
  out.versions.comparators.clear();
  out.subject.clear();
  out.name.clear();
  out.service.clear();
  out.action.clear();
  out.router.clear();
  out.router_key = node_id{};
  if (out.target) out.target = nested_fqmn{};
  out.args.reset();
  out.args_text.clear();
  scanner s(input);
  if (!s.parse(out)) {
    if (err != nullptr) *err = std::move(s.error());
    return false;
  }
  return true;
}

std::optional<fqmn> parse_fqmn(std::string_view input, fqmn_error* err) {
  scanner s(input);
  fqmn out;
  if (!s.parse(out)) {
    if (err != nullptr) *err = std::move(s.error());
    return std::nullopt;
  }
  return out;
}

std::string to_string(const version_range& versions) {
  if (versions.comparators.empty()) return "*";
  std::string out;
  for (size_t i = 0; i < versions.comparators.size(); ++i) {
    const auto& c = versions.comparators[i];
    if (i > 0) out += ',';
    out += relation_text(c.op);
    out += std::to_string(c.major);
    if (c.minor) out += '.' + std::to_string(*c.minor);
    if (c.minor && c.patch) out += '.' + std::to_string(*c.patch);
  }
  return out;
}

std::string to_string(const fqmn& x) {
  std::string out;
  write_fqmn(x, out);
  return out;
}

}  // namespace cmesh::router
