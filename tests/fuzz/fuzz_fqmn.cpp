// libFuzzer target for the FQMN parser (actors/router/fqmn) and, through JSON arguments, the JSON
// parser (runtime/core/json). Build and run: see tests/fuzz/build.sh.
//
// For every input: parsing never crashes, hangs or reads out of bounds (ASan, UBSan); a rejected
// input has an error column inside the input (or at the length limit) and renders; an accepted
// input writes back to exactly itself, parses again to an equal FQMN, and its JSON arguments
// survive json::dump and json::parse.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "actors/router/fqmn.hpp"
#include "runtime/core/json.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "fuzz_fqmn: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void check_args(const cmesh::router::fqmn& x, std::string_view input) {
  if (x.args) {
    auto back = cmesh::json::parse(cmesh::json::dump(*x.args));
    if (!back || !(*back == *x.args)) fail("JSON arguments do not survive dump and parse", input);
  }
  if (x.target) check_args(*x.target, input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cmesh::router;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  fqmn_error err;
  auto parsed = parse_fqmn(input, &err);
  if (!parsed) {
    const size_t column_max = input.size() > fqmn_bytes_max ? fqmn_bytes_max : input.size();
    if (err.column > column_max) fail("error column past the input", input);
    if (err.message.empty()) fail("error without a message", input);
    (void)err.render(input);
    return 0;
  }

  const std::string text = to_string(*parsed);
  if (text != input) fail("to_string(parse(s)) != s", input);
  auto again = parse_fqmn(text);
  if (!again) fail("to_string output does not parse", input);
  if (!(*again == *parsed)) fail("parse(to_string(x)) != x", input);
  check_args(*parsed, input);
  (void)required_scope(*parsed);
  (void)is_write(*parsed);
  return 0;
}
