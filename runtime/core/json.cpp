#include "runtime/core/json.hpp"

#include <cassert>
#include <charconv>
#include <cstdio>
#include <limits>
#include <set>
#include <system_error>

namespace cmesh::json {

// ---- value ----------------------------------------------------------------------------------

const value* value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [name, member] : as_object())
    if (name == key) return &member;
  return nullptr;
}

const std::string* value::find_string(std::string_view key) const {
  const value* member = find(key);
  return member != nullptr && member->is_string() ? &member->as_string() : nullptr;
}

std::optional<int64_t> value::find_int(std::string_view key) const {
  const value* member = find(key);
  if (member == nullptr || !member->is_int()) return std::nullopt;
  return member->as_int();
}

void value::set(std::string key, value v) {
  assert(is_object());
  for (auto& [name, member] : as_object()) {
    if (name == key) {
      member = std::move(v);
      return;
    }
  }
  as_object().emplace_back(std::move(key), std::move(v));
}

// ---- parser ---------------------------------------------------------------------------------

namespace {

// Members of one object checked for duplicates by a linear scan; past this many, a sorted set
// keeps the check O(n log n) against hostile inputs with thousands of members.
constexpr size_t linear_duplicate_scan_max = 16;

bool is_json_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string hex_byte(unsigned char c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
  return buf;
}

// "'x'" for printable ASCII, else "byte 0xNN": error messages never carry raw control bytes.
std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
  return hex_byte(c);
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += char(code_point);
  } else if (code_point < 0x800) {
    out += char(0xC0 | (code_point >> 6));
    out += char(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += char(0xE0 | (code_point >> 12));
    out += char(0x80 | ((code_point >> 6) & 0x3F));
    out += char(0x80 | (code_point & 0x3F));
  } else {
    out += char(0xF0 | (code_point >> 18));
    out += char(0x80 | ((code_point >> 12) & 0x3F));
    out += char(0x80 | ((code_point >> 6) & 0x3F));
    out += char(0x80 | (code_point & 0x3F));
  }
}

constexpr const char* unterminated = "unterminated string (no closing '\"')";

class parser {
public:
  parser(std::string_view text, parse_limits limits) : text_(text), limits_(limits) {}

  std::optional<value> run(parse_error* err) {
    value out;
    skip_whitespace();
    bool ok = parse_value(out, 0);
    if (ok) {
      skip_whitespace();
      if (pos_ < text_.size())
        ok = fail(pos_, "unexpected " + describe_byte(peek()) + " after the JSON value");
    }
    if (!ok) {
      if (err != nullptr) *err = std::move(error_);
      return std::nullopt;
    }
    return out;
  }

private:
  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

  bool fail(size_t offset, std::string message) {
    error_.offset = offset;
    error_.message = std::move(message);
    return false;
  }
  bool fail_unexpected(const char* expected) {
    if (at_end())
      return fail(pos_, std::string("unexpected end of input (expected ") + expected + ")");
    return fail(pos_, "unexpected " + describe_byte(peek()) + " (expected " + expected + ")");
  }

  void skip_whitespace() {
    while (!at_end() && is_json_whitespace(text_[pos_])) ++pos_;
  }

  bool parse_value(value& out, size_t depth) {
    if (at_end()) return fail_unexpected("a JSON value");
    switch (text_[pos_]) {
      case '{': return parse_object(out, depth);
      case '[': return parse_array(out, depth);
      case '"': {
        std::string s;
        if (!parse_string(s)) return false;
        out = value(std::move(s));
        return true;
      }
      case 't': return parse_literal("true", value(true), out);
      case 'f': return parse_literal("false", value(false), out);
      case 'n': return parse_literal("null", value(nullptr), out);
      default:
        if (text_[pos_] == '-' || is_digit(text_[pos_])) return parse_number(out);
        return fail_unexpected("a JSON value");
    }
  }

  bool parse_literal(std::string_view word, value v, value& out) {
    if (text_.substr(pos_, word.size()) != word)
      return fail(pos_, "invalid literal (expected '" + std::string(word) + "')");
    pos_ += word.size();
    out = std::move(v);
    return true;
  }

  bool enter(size_t depth) {
    if (depth >= limits_.max_depth)
      return fail(pos_, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    return true;
  }

  bool parse_array(value& out, size_t depth) {
    if (!enter(depth)) return false;
    ++pos_;  // '['
    array items;
    skip_whitespace();
    if (!at_end() && text_[pos_] == ']') {
      ++pos_;
      out = value(std::move(items));
      return true;
    }
    for (;;) {
      skip_whitespace();
      value item;
      if (!parse_value(item, depth + 1)) return false;
      items.push_back(std::move(item));
      skip_whitespace();
      if (!at_end() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (!at_end() && text_[pos_] == ']') {
        ++pos_;
        out = value(std::move(items));
        return true;
      }
      return fail_unexpected("',' or ']' after an array element");
    }
  }

  bool parse_object(value& out, size_t depth) {
    if (!enter(depth)) return false;
    ++pos_;  // '{'
    object members;
    std::set<std::string, std::less<>> seen;  // used past linear_duplicate_scan_max members
    skip_whitespace();
    if (!at_end() && text_[pos_] == '}') {
      ++pos_;
      out = value(std::move(members));
      return true;
    }
    for (;;) {
      skip_whitespace();
      if (at_end() || text_[pos_] != '"')
        return fail_unexpected("a string naming an object member");
      const size_t name_offset = pos_;
      std::string name;
      if (!parse_string(name)) return false;
      if (is_duplicate(members, seen, name))
        return fail(name_offset, "duplicate object member name \"" + printable(name) + "\"");
      skip_whitespace();
      if (at_end() || text_[pos_] != ':') return fail_unexpected("':' after an object member name");
      ++pos_;
      skip_whitespace();
      value member;
      if (!parse_value(member, depth + 1)) return false;
      members.emplace_back(std::move(name), std::move(member));
      skip_whitespace();
      if (!at_end() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (!at_end() && text_[pos_] == '}') {
        ++pos_;
        out = value(std::move(members));
        return true;
      }
      return fail_unexpected("',' or '}' after an object member");
    }
  }

  // Checks `name` against the members parsed so far (and records it in `seen` once the object
  // is large enough to use it).
  static bool is_duplicate(const object& members, std::set<std::string, std::less<>>& seen,
                           const std::string& name) {
    if (members.size() < linear_duplicate_scan_max) {
      for (const auto& member : members)
        if (member.first == name) return true;
      return false;
    }
    if (seen.empty())
      for (const auto& member : members) seen.insert(member.first);
    return !seen.insert(name).second;
  }

  // A member name for an error message: escapes what dump() would, cut at 64 bytes.
  static std::string printable(const std::string& name) {
    std::string shown = dump(value(name.substr(0, 64)));
    shown = shown.substr(1, shown.size() - 2);
    if (name.size() > 64) shown += "...";
    return shown;
  }

  bool parse_hex4(size_t at, uint32_t& out) {
    if (at + 4 > text_.size())
      return fail(at, "invalid \\u escape (expected 4 hex digits)");
    out = 0;
    for (size_t i = 0; i < 4; ++i) {
      const char c = text_[at + i];
      uint32_t digit;
      if (c >= '0' && c <= '9') digit = uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') digit = uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') digit = uint32_t(c - 'A' + 10);
      else return fail(at + i, "invalid \\u escape (expected 4 hex digits)");
      out = out * 16 + digit;
    }
    return true;
  }

  // pos_ is at the backslash; open_offset is the string's opening quote.
  bool parse_escape(std::string& out, size_t open_offset) {
    const size_t escape_offset = pos_;
    if (pos_ + 1 >= text_.size()) return fail(open_offset, unterminated);
    const char kind = text_[pos_ + 1];
    pos_ += 2;
    switch (kind) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default: {
        const auto c = static_cast<unsigned char>(kind);
        if (c >= 0x20 && c < 0x7f)
          return fail(escape_offset, std::string("invalid escape '\\") + kind + "'");
        return fail(escape_offset,
                    "invalid escape (backslash followed by " + describe_byte(c) + ")");
      }
    }
    uint32_t unit;
    if (!parse_hex4(pos_, unit)) return false;
    pos_ += 4;
    if (unit >= 0xDC00 && unit <= 0xDFFF)
      return fail(escape_offset, "lone low surrogate \\u escape (no high surrogate before it)");
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u")
        return fail(escape_offset,
                    "lone high surrogate \\u escape (expected a \\uDC00-\\uDFFF escape after it)");
      uint32_t low;
      if (!parse_hex4(pos_ + 2, low)) return false;
      if (low < 0xDC00 || low > 0xDFFF)
        return fail(escape_offset,
                    "lone high surrogate \\u escape (expected a \\uDC00-\\uDFFF escape after it)");
      pos_ += 6;
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, unit);
    return true;
  }

  // Validates one multi-byte UTF-8 sequence at pos_ (lead byte >= 0x80) and copies it.
  bool copy_utf8_sequence(std::string& out) {
    const unsigned char lead = peek();
    size_t continuation = 0;
    unsigned char second_min = 0x80, second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation = 2;
      if (lead == 0xE0) second_min = 0xA0;
      if (lead == 0xED) second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation = 3;
      if (lead == 0xF0) second_min = 0x90;
      if (lead == 0xF4) second_max = 0x8F;
    } else if (lead >= 0x80 && lead <= 0xBF) {
      return fail(pos_, "invalid UTF-8 in string (unexpected continuation " + hex_byte(lead) +
                            ")");
    } else if (lead == 0xC0 || lead == 0xC1) {
      return fail(pos_, "invalid UTF-8 in string (overlong encoding, " + hex_byte(lead) + ")");
    } else {
      return fail(pos_, "invalid UTF-8 in string (" + hex_byte(lead) + " is never valid)");
    }
    for (size_t i = 1; i <= continuation; ++i) {
      if (pos_ + i >= text_.size())
        return fail(pos_, "invalid UTF-8 in string (truncated sequence)");
      const unsigned char c = static_cast<unsigned char>(text_[pos_ + i]);
      const unsigned char min = i == 1 ? second_min : 0x80;
      const unsigned char max = i == 1 ? second_max : 0xBF;
      if (c < min || c > max) {
        if (i == 1 && lead == 0xED && c >= 0xA0 && c <= 0xBF)
          return fail(pos_, "invalid UTF-8 in string (encoded surrogate U+D800-U+DFFF)");
        if (i == 1 && lead == 0xF4 && c >= 0x90 && c <= 0xBF)
          return fail(pos_, "invalid UTF-8 in string (code point above U+10FFFF)");
        if (i == 1 && (lead == 0xE0 || lead == 0xF0) && c >= 0x80 && c < min)
          return fail(pos_, "invalid UTF-8 in string (overlong encoding)");
        return fail(pos_ + i, "invalid UTF-8 in string (" + hex_byte(c) +
                                  " is not a continuation byte)");
      }
    }
    out.append(text_.substr(pos_, continuation + 1));
    pos_ += continuation + 1;
    return true;
  }

  // pos_ is at the opening quote.
  bool parse_string(std::string& out) {
    const size_t open_offset = pos_;
    ++pos_;
    for (;;) {
      const size_t run_start = pos_;
      while (!at_end()) {
        const unsigned char c = peek();
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++pos_;
      }
      out.append(text_.substr(run_start, pos_ - run_start));
      if (at_end()) return fail(open_offset, unterminated);
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!parse_escape(out, open_offset)) return false;
      } else if (c < 0x20) {
        return fail(pos_, "control character (" + describe_byte(c) +
                              ") in string must be escaped");
      } else if (!copy_utf8_sequence(out)) {
        return false;
      }
    }
  }

  bool scan_digits() {
    const size_t start = pos_;
    while (!at_end() && is_digit(text_[pos_])) ++pos_;
    return pos_ > start;
  }

  bool parse_number(value& out) {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (at_end() || !is_digit(text_[pos_])) return fail_unexpected("a digit in the number");
    const size_t int_start = pos_;
    if (text_[pos_] == '0') {
      ++pos_;
      if (!at_end() && is_digit(text_[pos_]))
        return fail(int_start, "leading zeros are not allowed in a number");
    } else {
      scan_digits();
    }
    const size_t int_end = pos_;
    bool is_integer = true;
    if (!at_end() && text_[pos_] == '.') {
      ++pos_;
      is_integer = false;
      if (!scan_digits()) return fail_unexpected("a digit after '.'");
    }
    const size_t mantissa_end = pos_;
    int64_t exponent = 0;
    if (!at_end() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      is_integer = false;
      bool negative = false;
      if (!at_end() && (text_[pos_] == '+' || text_[pos_] == '-')) negative = text_[pos_++] == '-';
      const size_t exp_start = pos_;
      if (!scan_digits()) return fail_unexpected("a digit in the exponent");
      for (size_t i = exp_start; i < pos_ && exponent < 1'000'000'000; ++i)
        exponent = exponent * 10 + (text_[i] - '0');
      if (negative) exponent = -exponent;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (is_integer) {
      int64_t i = 0;
      auto [ptr, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && ptr == last) {
        out = value(i);
        return true;
      }
      // Out of int64 range: fall through to double.
    }
    double d = 0;
    auto [ptr, ec] = std::from_chars(first, last, d);
    if (ec == std::errc::result_out_of_range) {
      // Overflow or underflow. The decimal exponent of the first non-zero digit tells which.
      int64_t magnitude = exponent;
      if (text_[int_start] != '0') {
        magnitude += int64_t(int_end - int_start) - 1;
      } else {
        size_t k = int_end + 1;
        while (k < mantissa_end && text_[k] == '0') ++k;
        magnitude -= int64_t(k - int_end);
      }
      if (magnitude >= 0) return fail(start, "number out of range for a double");
      d = text_[start] == '-' ? -0.0 : 0.0;
    } else if (ec != std::errc() || ptr != last) {
      return fail(start, "invalid number");  // not expected: the grammar was checked above
    }
    out = value(d);
    return true;
  }

  std::string_view text_;
  parse_limits limits_;
  size_t pos_ = 0;
  parse_error error_;
};

// ---- writer ---------------------------------------------------------------------------------

void dump_string(const std::string& s, std::string& out) {
  out += '"';
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void dump_double(double d, std::string& out) {
  if (d != d || d == std::numeric_limits<double>::infinity() ||
      d == -std::numeric_limits<double>::infinity()) {
    out += "null";  // JSON has no NaN or infinity; parse never produces them
    return;
  }
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);
  assert(ec == std::errc());
  const std::string_view text(buf, size_t(ptr - buf));
  out += text;
  // Shortest form may look like an integer ("1", "-0", "1e+21" does not): keep it a double.
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void dump_value(const value& v, std::string& out) {
  struct visitor {
    std::string& out;
    void operator()(std::nullptr_t) const { out += "null"; }
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(int64_t i) const { out += std::to_string(i); }
    void operator()(double d) const { dump_double(d, out); }
    void operator()(const std::string& s) const { dump_string(s, out); }
    void operator()(const array& a) const {
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i > 0) out += ',';
        dump_value(a[i], out);
      }
      out += ']';
    }
    void operator()(const object& o) const {
      out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i > 0) out += ',';
        dump_string(o[i].first, out);
        out += ':';
        dump_value(o[i].second, out);
      }
      out += '}';
    }
  };
  std::visit(visitor{out}, v.raw());
}

}  // namespace

std::optional<value> parse(std::string_view text, parse_error* err, parse_limits limits) {
  return parser(text, limits).run(err);
}

std::string dump(const value& v) {
  std::string out;
  dump_value(v, out);
  return out;
}

}  // namespace cmesh::json
