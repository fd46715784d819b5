// The `jose` npm package's side of the IAM interop test (tests/interop/jose_interop.sh).
//
//   node jose_interop.mjs verify TOKEN ISSUER_JWK ISSUER_DID SUBJECT_DID AUDIENCE SCOPE
//       jwtVerify a cmesh session token with the issuer's public JWK; checks typ, alg, iss, sub,
//       aud, scope and exp; also checks that ISSUER_DID is the did:key of the JWK (our encoding,
//       recomputed here independently). Exit 0 accepted, 1 refused.
//   node jose_interop.mjs sign ALG SUBJECT_DID AUDIENCE SCOPE
//       generates an Ed25519 key pair with jose, signs a cmesh session token with alg ALG
//       ("EdDSA" or "Ed25519") and prints three lines: the token, the issuer's did:key, its public
//       JWK. Exit 0 signed, 3 this jose does not support ALG, 1 other failure.
//
// This file is copied next to the node_modules folder the test installs jose into, so the bare
// import below resolves there.

// jose uses the WebCrypto global; Node 18 only has it behind a flag.
if (!globalThis.crypto?.subtle) globalThis.crypto = (await import('node:crypto')).webcrypto;
const jose = await import('jose');

const tokenType = 'cmesh-session+jwt';
const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

// base58btc (Bitcoin alphabet): leading zero bytes become '1', the rest is the number in base 58.
function base58btc(bytes) {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  let value = 0n;
  for (const b of bytes) value = value * 256n + BigInt(b);
  let out = '';
  while (value > 0n) {
    out = alphabet[Number(value % 58n)] + out;
    value /= 58n;
  }
  return '1'.repeat(zeros) + out;
}

// did:key of an Ed25519 public key: multibase 'z' + base58btc(multicodec 0xed 0x01 || key).
function didKeyOf(jwk) {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw new Error(`not an Ed25519 JWK: ${JSON.stringify(jwk)}`);
  const key = Buffer.from(jwk.x, 'base64url');
  if (key.length !== 32) throw new Error('JWK x is not 32 bytes');
  return 'did:key:z' + base58btc(Uint8Array.from([0xed, 0x01, ...key]));
}

function fail(message) {
  console.error(`jose: ${message}`);
  process.exit(1);
}

async function verify([token, jwkText, issuerDid, subjectDid, audience, scope]) {
  const jwk = JSON.parse(jwkText);
  if (didKeyOf(jwk) !== issuerDid) fail(`did:key of the JWK is ${didKeyOf(jwk)}, cmesh says ${issuerDid}`);
  const key = await jose.importJWK(jwk, 'Ed25519').catch(() => jose.importJWK(jwk, 'EdDSA'));
  let verified;
  try {
    verified = await jose.jwtVerify(token, key, {
      algorithms: ['Ed25519', 'EdDSA'],
      typ: tokenType,
      issuer: issuerDid,
      audience,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'scope'],
    });
  } catch (e) {
    fail(`refused: ${e.code ?? ''} ${e.message}`);
  }
  const { payload, protectedHeader } = verified;
  if (payload.sub !== subjectDid) fail(`sub is ${payload.sub}, expected ${subjectDid}`);
  if (payload.scope !== scope) fail(`scope is "${payload.scope}", expected "${scope}"`);
  const now = Math.floor(Date.now() / 1000);
  if (!(payload.exp > now && payload.iat <= now + 30)) fail(`iat ${payload.iat} / exp ${payload.exp} do not bracket now ${now}`);
  console.log(`jose: accepted (alg ${protectedHeader.alg}, sub ${payload.sub}, aud ${payload.aud}, scope "${payload.scope}", exp ${payload.exp})`);
}

async function sign([alg, subjectDid, audience, scope]) {
  let pair;
  try {
    pair = alg === 'EdDSA'
      ? await jose.generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
      : await jose.generateKeyPair(alg, { extractable: true });
  } catch (e) {
    if (e.code === 'ERR_JOSE_NOT_SUPPORTED') {
      console.error(`jose: alg ${alg} is not supported by this jose`);
      process.exit(3);
    }
    throw e;
  }
  const jwk = await jose.exportJWK(pair.publicKey);
  const issuer = didKeyOf(jwk);
  const now = Math.floor(Date.now() / 1000);
  let token;
  try {
    token = await new jose.SignJWT({ scope })
      .setProtectedHeader({ alg, typ: tokenType })
      .setIssuer(issuer)
      .setSubject(subjectDid)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .setJti(Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url'))
      .sign(pair.privateKey);
  } catch (e) {
    if (e.code === 'ERR_JOSE_NOT_SUPPORTED') {
      console.error(`jose: alg ${alg} is not supported by this jose`);
      process.exit(3);
    }
    throw e;
  }
  console.log(token);
  console.log(issuer);
  console.log(JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }));
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'verify') await verify(args);
  else if (mode === 'sign') await sign(args);
  else fail(`unknown mode ${mode}`);
} catch (e) {
  fail(`${e.code ?? ''} ${e.message}`);
}
