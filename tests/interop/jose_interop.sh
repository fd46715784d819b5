#!/usr/bin/env bash
# Interop of cmesh session tokens with a real JOSE implementation, the `jose` package from npm
# (docs/iam.md §12):
#   (a) a token from `cmesh id token issue` verifies with jose's jwtVerify under the issuer's public
#       JWK (from `cmesh id show --jwk`), with typ, alg, iss, sub, aud, scope and exp checked;
#   (b) tokens jose signs (alg EdDSA, and Ed25519 when this jose supports it) with a key pair it
#       generated verify with `cmesh id token verify`, the issuer given as its did:key (computed by
#       the .mjs independently of cmesh) or as its public JWK;
#   (c) negatives: a tampered token is refused by both, a jose token checked against another issuer
#       is refused by cmesh.
# jose is installed with npm into CACHE (under the build tree) once. Exit 77 (ctest SKIP) only when
# node/npm are missing or npm cannot install jose (e.g. no registry access).
#
# Usage: jose_interop.sh CMESH_BINARY CACHE_DIR
set -uo pipefail

cmesh=$1
cache=$2
here=$(cd "$(dirname "$0")" && pwd)

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

command -v node >/dev/null || skip "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || skip "npm is not installed (Debian: apt-get install nodejs npm)"
mkdir -p "$cache" || fail "cannot create $cache"
if [ ! -f "$cache/node_modules/jose/package.json" ]; then
  echo "installing jose@6 with npm into $cache"
  if ! (cd "$cache" && timeout 300 npm install --prefix "$cache" --no-audit --no-fund --no-package-lock \
          --loglevel=error jose@6) >"$cache/npm.log" 2>&1; then
    skip "npm could not install jose (registry unreachable?): $(tail -n 3 "$cache/npm.log" | tr '\n' ' ')"
  fi
fi
echo "jose $(node -p "require('$cache/node_modules/jose/package.json').version"), node $(node --version)"
cp "$here/jose_interop.mjs" "$cache/jose_interop.mjs" || fail "cannot copy the script"
js() { node "$cache/jose_interop.mjs" "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- (a) cmesh issues, jose verifies --------------------------------------------------------------
issuer=$("$cmesh" id new "$work/issuer.key") || fail "cmesh id new"
holder=$("$cmesh" id new "$work/holder.key") || fail "cmesh id new"
jwk=$("$cmesh" id show "$work/issuer.key" --jwk) || fail "cmesh id show --jwk"
echo "issuer $issuer jwk $jwk"
token=$("$cmesh" id token issue --identity "$work/issuer.key" --subject "$holder" --audience interop-svc \
          --scope "state.read events.publish" --ttl 10m) || fail "cmesh id token issue"
js verify "$token" "$jwk" "$issuer" "$holder" interop-svc "state.read events.publish" \
  || fail "(a) jose refused a token cmesh issued"
"$cmesh" id token verify "$token" --issuer "$issuer" --audience interop-svc --scope state.read >/dev/null \
  || fail "(a) cmesh refused its own token"

# ---- (b) jose signs, cmesh verifies ---------------------------------------------------------------
checked=0
for alg in EdDSA Ed25519; do
  out=$(js sign "$alg" "$holder" interop-svc "state.read names.register")
  rc=$?
  if [ $rc -eq 3 ] && [ "$alg" = Ed25519 ]; then
    echo "note: this jose cannot sign with alg Ed25519; only EdDSA was checked"
    continue
  fi
  [ $rc -eq 0 ] || fail "(b) jose could not sign with $alg"
  jose_token=$(sed -n 1p <<<"$out")
  jose_did=$(sed -n 2p <<<"$out")
  jose_jwk=$(sed -n 3p <<<"$out")
  header=$(cut -d. -f1 <<<"$jose_token" | tr '_-' '/+' | base64 -d 2>/dev/null)
  echo "jose $alg token header $header issuer $jose_did"
  "$cmesh" id token verify "$jose_token" --issuer "$jose_did" --audience interop-svc --scope "state.read names.register" \
    || fail "(b) cmesh refused a $alg token jose signed (issuer as did:key)"
  "$cmesh" id token verify "$jose_token" --issuer-jwk "$jose_jwk" --audience interop-svc >/dev/null \
    || fail "(b) cmesh refused a $alg token jose signed (issuer as JWK)"
  # Negative: the same token against another issuer.
  if "$cmesh" id token verify "$jose_token" --issuer "$issuer" >/dev/null 2>&1; then
    fail "(c) cmesh accepted a jose token for the wrong issuer"
  fi
  checked=$((checked + 1))
done
[ $checked -ge 1 ] || fail "(b) no algorithm checked"

# ---- (c) a tampered token is refused by both ------------------------------------------------------
# Change one character in the middle of the signature (never the last, whose low bits are unused).
signature=${token##*.}
middle=$(( ${#signature} / 2 ))
c=${signature:$middle:1}
[ "$c" = A ] && r=B || r=A
tampered="${token%.*}.${signature:0:$middle}$r${signature:$((middle + 1))}"
[ "$tampered" != "$token" ] || fail "tampering did not change the token"
if js verify "$tampered" "$jwk" "$issuer" "$holder" interop-svc "state.read events.publish" 2>/dev/null; then
  fail "(c) jose accepted a tampered token"
fi
if out=$("$cmesh" id token verify "$tampered" --issuer "$issuer" 2>&1); then
  fail "(c) cmesh accepted a tampered token"
fi
grep -q "refused: bad_signature" <<<"$out" || fail "(c) cmesh refused the tampered token for another reason: $out"
# A tampered payload (scope widened) is refused too.
payload=$(cut -d. -f2 <<<"$token")
widened=$(node -e "const p=JSON.parse(Buffer.from(process.argv[1],'base64url'));p.scope+=' admin';console.log(Buffer.from(JSON.stringify(p)).toString('base64url'))" "$payload")
forged="${token%%.*}.$widened.${token##*.}"
if js verify "$forged" "$jwk" "$issuer" "$holder" interop-svc "state.read events.publish admin" 2>/dev/null; then
  fail "(c) jose accepted a token with a widened scope"
fi
if "$cmesh" id token verify "$forged" --issuer "$issuer" >/dev/null 2>&1; then
  fail "(c) cmesh accepted a token with a widened scope"
fi
echo "PASS: cmesh <-> jose interop ($checked jose algorithm(s) signed, tampered tokens refused by both)"
