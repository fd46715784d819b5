#!/bin/sh
# Builds the libFuzzer target for the FQMN parser with Debian's clang++ (clang-14 on Debian 12),
# with AddressSanitizer and UndefinedBehaviorSanitizer. Works from any clone: paths are taken
# relative to this script.
#
#   tests/fuzz/build.sh                     # writes build/fuzz/fuzz_fqmn under the repo root
#   OUT=/tmp/fuzz tests/fuzz/build.sh       # or into $OUT
#
# Run (the corpus directory grows; copy the seeds first to keep the checked-in ones small):
#   mkdir -p /tmp/corpus && cp tests/fuzz/corpus_fqmn/* /tmp/corpus/
#   build/fuzz/fuzz_fqmn /tmp/corpus -max_total_time=120 -max_len=4200
# A crash leaves crash-<hash> in the current directory; replay it with
#   build/fuzz/fuzz_fqmn crash-<hash>
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/build/fuzz}
cxx=${CXX:-clang++}
mkdir -p "$out"

# The parser and what it links against: JSON for arguments, did:key decoding for 0xP routers
# (identity.cpp needs libsodium), the error type and node ids.
"$cxx" -std=c++20 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root" \
  "$here/fuzz_fqmn.cpp" \
  "$root/actors/router/fqmn.cpp" \
  "$root/runtime/core/json.cpp" \
  "$root/runtime/crypto/identity.cpp" \
  "$root/runtime/crypto/base58.cpp" \
  "$root/messages/error.cpp" \
  "$root/messages/node_id.cpp" \
  -lsodium \
  -o "$out/fuzz_fqmn"

echo "built $out/fuzz_fqmn"
