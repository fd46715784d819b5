// A node's identity: an ed25519 key pair (libsodium), its did:key name, and its key file.
//
// The public key is the node_id used on the wire and in every table. The did:key form is
//   "did:key:z" + base58btc(0xed 0x01 || public_key)
// (multibase 'z' = base58btc, multicodec 0xed 0x01 = ed25519-pub).
//
// Where keys come from:
//   real mode   identity::generate() (random seed from libsodium), stored in a key file
//   simulation  identity::derive_for_simulation(sim_seed, node_index), so a run replays exactly
// Only runtime/ may call generate(); actors/ and sim/ never touch a random source of their own.
//
// Key file (text, mode 0600, written once with O_EXCL):
//   # cmesh identity. Keep this file secret (mode 0600).
//   did = did:key:z6Mk...
//   seed = <64 lowercase hex chars>
//
// All functions return errors as values and never throw. The identity struct holds secrets:
// do not log it; pass it by reference.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "messages/error.hpp"
#include "messages/node_id.hpp"

namespace cmesh {

// Initializes libsodium (sodium_init) once per process; later calls do nothing. Thread-safe.
// Aborts the process with a message on stderr if libsodium cannot initialize (no usable
// random source): nothing safe can be done without it. Every function below calls it as needed.
void crypto_init();

struct identity {
  std::array<uint8_t, 32> seed{};        // ed25519 seed (secret)
  node_id public_key;                    // the node's id on the wire
  std::array<uint8_t, 64> secret_key{};  // libsodium's expanded secret key (secret)

  // The key pair for `seed` (crypto_sign_seed_keypair). Deterministic.
  static identity from_seed(const std::array<uint8_t, 32>& seed);
  // A fresh identity from libsodium's random source.
  // REAL MODE ONLY: call it from runtime/, never from actors/ or sim/.
  static identity generate();
  // Deterministic identity for simulated node `node_index` of the run seeded with `sim_seed`:
  // seed = BLAKE2b-256("cmesh-sim-identity" || le64(sim_seed) || le64(node_index)).
  static identity derive_for_simulation(uint64_t sim_seed, uint64_t node_index);

  // "did:key:z6Mk..." for public_key.
  std::string did() const;
  // Detached ed25519 signature of [data, data + size) (data may be null if size == 0).
  std::array<uint8_t, 64> sign(const uint8_t* data, size_t size) const;
};

// True iff signature64 (64 bytes) is a valid ed25519 signature by `signer` over
// [data, data + size).
bool verify_signature(const node_id& signer, const uint8_t* data, size_t size,
                      const uint8_t* signature64);

// "did:key:z" + base58btc(0xed 0x01 || key).
std::string did_from_node_id(const node_id& key);

// Parses a did:key naming an ed25519 public key. Errors (all errc::malformed): text that does not
// start with "did:key:z", too long, bad base58btc, a multicodec prefix other than ed25519-pub
// (0xed 0x01), or a key that is not 32 bytes.
result<node_id> node_id_from_did(std::string_view did);

// Writes `id` to a new key file at `path`: created with O_CREAT|O_EXCL and mode 0600, written,
// fsynced (and its directory fsynced). Never overwrites. On failure no partial file is left.
// Errors: already_exists if path exists; permission_denied (EACCES, EPERM, EROFS); not_found if
// the directory does not exist; io_error otherwise. Messages carry the path and strerror text.
status write_identity_file(const std::string& path, const identity& id);

// Reads a key file written by write_identity_file. The did line is optional; if present it must
// match the seed. Blank lines and lines starting with '#' are ignored.
// Errors: not_found if missing; permission_denied if the file is readable or writable by group or
// others (mode & 077; the message says which and how to fix it) or cannot be opened; malformed for
// bad content (not a regular file, over 4096 bytes, unknown or repeated key, missing seed line,
// bad hex, did not matching the seed); io_error for other read failures.
result<identity> read_identity_file(const std::string& path);

}  // namespace cmesh
