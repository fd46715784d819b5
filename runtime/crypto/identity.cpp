#include "runtime/crypto/identity.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/crypto/base58.hpp"

namespace cmesh {

namespace {

constexpr std::string_view did_prefix = "did:key:z";
constexpr uint8_t ed25519_multicodec[2] = {0xed, 0x01};
// A did:key for ed25519 is 57 characters; anything much longer is not one (and base58 decoding
// is quadratic, so hostile input is refused before decoding).
constexpr size_t did_chars_max = 128;
// A key file is three short lines; anything larger is not one.
constexpr size_t identity_file_bytes_max = 4096;
constexpr std::string_view file_header = "# cmesh identity. Keep this file secret (mode 0600).\n";

std::string errno_text(int code) { return std::strerror(code); }

errc errc_from_errno(int code) {
  switch (code) {
    case EACCES:
    case EPERM:
    case EROFS:
      return errc::permission_denied;
    case EEXIST:
      return errc::already_exists;
    case ENOENT:
      return errc::not_found;
    default:
      return errc::io_error;
  }
}

error errno_error(const std::string& what, int code) {
  return error{errc_from_errno(code), what + ": " + errno_text(code)};
}


int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses exactly 64 hex characters into a 32-byte seed.
bool seed_from_hex(std::string_view text, std::array<uint8_t, 32>& seed) {
  if (text.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    const int high = hex_value(text[2 * i]);
    const int low = hex_value(text[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    seed[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return true;
}

std::string_view trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

void store_le64(uint8_t* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

}  // namespace

void crypto_init() {
  static const bool ready = [] {
    if (sodium_init() < 0) {
      std::fputs("cmesh: fatal: libsodium failed to initialize (sodium_init)\n", stderr);
      std::abort();
    }
    return true;
  }();
  (void)ready;
}

identity identity::from_seed(const std::array<uint8_t, 32>& seed) {
  crypto_init();
  identity id;
  id.seed = seed;
  const int rc =
      crypto_sign_seed_keypair(id.public_key.key.data(), id.secret_key.data(), seed.data());
  assert(rc == 0);
  (void)rc;
  return id;
}

identity identity::generate() {
  crypto_init();
  std::array<uint8_t, 32> seed{};
  randombytes_buf(seed.data(), seed.size());
  identity id = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return id;
}

identity identity::derive_for_simulation(uint64_t sim_seed, uint64_t node_index) {
  crypto_init();
  constexpr std::string_view label = "cmesh-sim-identity";
  uint8_t input[label.size() + 16];
  std::memcpy(input, label.data(), label.size());
  store_le64(input + label.size(), sim_seed);
  store_le64(input + label.size() + 8, node_index);
  std::array<uint8_t, 32> seed{};
  const int rc = crypto_generichash(seed.data(), seed.size(), input, sizeof input, nullptr, 0);
  assert(rc == 0);
  (void)rc;
  return from_seed(seed);
}

std::string identity::did() const { return did_from_node_id(public_key); }

std::array<uint8_t, 64> identity::sign(const uint8_t* data, size_t size) const {
  crypto_init();
  static const uint8_t empty = 0;
  std::array<uint8_t, 64> signature{};
  const int rc = crypto_sign_detached(signature.data(), nullptr, size == 0 ? &empty : data, size,
                                      secret_key.data());
  assert(rc == 0);
  (void)rc;
  return signature;
}

bool verify_signature(const node_id& signer, const uint8_t* data, size_t size,
                      const uint8_t* signature64) {
  crypto_init();
  static const uint8_t empty = 0;
  return crypto_sign_verify_detached(signature64, size == 0 ? &empty : data, size,
                                     signer.key.data()) == 0;
}

std::string did_from_node_id(const node_id& key) {
  uint8_t prefixed[34];
  std::memcpy(prefixed, ed25519_multicodec, 2);
  std::memcpy(prefixed + 2, key.key.data(), 32);
  return std::string(did_prefix) + base58btc_encode(prefixed, sizeof prefixed);
}

result<node_id> node_id_from_did(std::string_view did) {
  if (did.substr(0, did_prefix.size()) != did_prefix)
    return error{errc::malformed, "not a did:key in base58btc (expected prefix \"did:key:z\")"};
  if (did.size() > did_chars_max)
    return error{errc::malformed, "did of " + std::to_string(did.size()) +
                                      " characters is too long for an ed25519 did:key"};
  auto decoded = base58btc_decode(did.substr(did_prefix.size()));
  if (!decoded)
    return error{errc::malformed, "did:key is not valid base58btc: " + decoded.err().message};
  const bytes& raw = *decoded;
  if (raw.size() < 2 || raw[0] != ed25519_multicodec[0] || raw[1] != ed25519_multicodec[1])
    return error{errc::malformed, "did:key multicodec prefix is not ed25519-pub (0xed 0x01)"};
  if (raw.size() != 34)
    return error{errc::malformed,
                 "did:key key is " + std::to_string(raw.size() - 2) + " bytes, expected 32"};
  return node_id::from_bytes(raw.data() + 2);
}

namespace {

status write_all(int fd, const std::string& content) {
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return error{errc_from_errno(errno), errno_text(errno)};
    }
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

// Makes the new directory entry durable. Filesystems that cannot fsync a directory are ignored.
status sync_parent_directory(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string directory = slash == std::string::npos ? "."
                                : slash == 0               ? "/"
                                                           : path.substr(0, slash);
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ok_status();
  const bool failed = ::fsync(fd) != 0 && errno != EINVAL;
  const int code = errno;
  ::close(fd);
  if (failed) return errno_error("cannot fsync directory " + directory, code);
  return ok_status();
}

status write_key_file_body(int fd, const std::string& path, const identity& id) {
  if (::fchmod(fd, 0600) != 0) return errno_error("cannot chmod identity file " + path, errno);
  std::string content(file_header);
  content += "did = " + id.did() + "\n";
  content += "seed = " + to_hex(id.seed.data(), id.seed.size()) + "\n";
  status written = write_all(fd, content);
  sodium_memzero(content.data(), content.size());
  if (written)
    return error{written.code, "cannot write identity file " + path + ": " + written.message};
  if (::fsync(fd) != 0) return errno_error("cannot fsync identity file " + path, errno);
  return ok_status();
}

}  // namespace

status write_identity_file(const std::string& path, const identity& id) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int code = errno;
    if (code == EEXIST)
      return error{errc::already_exists,
                   "identity file " + path + " already exists; refusing to overwrite it"};
    return errno_error("cannot create identity file " + path, code);
  }
  status written = write_key_file_body(fd, path, id);
  if (::close(fd) != 0 && !written)
    written = errno_error("cannot close identity file " + path, errno);
  if (!written) written = sync_parent_directory(path);
  if (written) ::unlink(path.c_str());
  return written;
}

namespace {

// Reads the whole (small) file. Fails with malformed if it is larger than identity_file_bytes_max.
result<std::string> read_small_file(int fd, const std::string& path) {
  std::string content(identity_file_bytes_max + 1, '\0');
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::read(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read identity file " + path, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done > identity_file_bytes_max)
    return error{errc::malformed, "identity file " + path + " is larger than " +
                                      std::to_string(identity_file_bytes_max) + " bytes"};
  content.resize(done);
  return content;
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Refuses a key file that anyone but its owner can read or write.
status check_private_mode(mode_t mode, const std::string& path) {
  if ((mode & 077) == 0) return ok_status();
  const bool others = (mode & 007) != 0;
  const mode_t bits = others ? (mode & 007) : ((mode & 070) >> 3);
  const char* access = (bits & 4) ? "readable" : (bits & 2) ? "writable" : "accessible";
  return error{errc::permission_denied, "identity file " + path + " is " + access + " by " +
                                            (others ? "others" : "group") + " (mode " +
                                            mode_text(mode) + "); run: chmod 600 " + path};
}

result<identity> parse_key_file(std::string_view content, const std::string& path) {
  const std::string where = "identity file " + path + ": ";
  std::string_view did_text;
  std::string_view seed_text;
  bool have_did = false;
  bool have_seed = false;
  size_t line_number = 0;
  while (!content.empty()) {
    const size_t end = content.find('\n');
    const std::string_view line = trim(content.substr(0, end));
    content.remove_prefix(end == std::string_view::npos ? content.size() : end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos)
      return error{errc::malformed,
                   where + "line " + std::to_string(line_number) + " is not 'key = value'"};
    const std::string_view key = trim(line.substr(0, equals));
    const std::string_view value = trim(line.substr(equals + 1));
    bool* seen = key == "did" ? &have_did : key == "seed" ? &have_seed : nullptr;
    if (seen == nullptr)
      return error{errc::malformed, where + "unknown key on line " + std::to_string(line_number)};
    if (*seen)
      return error{errc::malformed, where + "key '" + std::string(key) + "' appears twice"};
    *seen = true;
    (key == "did" ? did_text : seed_text) = value;
  }
  if (!have_seed)
    return error{errc::malformed, where + "missing 'seed = <64 hex characters>' line"};
  std::array<uint8_t, 32> seed{};
  if (!seed_from_hex(seed_text, seed))
    return error{errc::malformed, where + "seed is not 64 hexadecimal characters"};
  identity id = identity::from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  if (have_did && did_text != id.did())
    return error{errc::malformed, where + "did " + std::string(did_text) +
                                      " does not match the seed's did " + id.did()};
  return id;
}

}  // namespace

result<identity> read_identity_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int code = errno;
    if (code == ENOENT) return error{errc::not_found, "identity file " + path + " does not exist"};
    return errno_error("cannot open identity file " + path, code);
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int code = errno;
    ::close(fd);
    return errno_error("cannot stat identity file " + path, code);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return error{errc::malformed, "identity file " + path + " is not a regular file"};
  }
  if (status refused = check_private_mode(info.st_mode, path); refused) {
    ::close(fd);
    return refused;
  }
  auto content = read_small_file(fd, path);
  ::close(fd);
  if (!content) return content.err();
  auto parsed = parse_key_file(*content, path);
  sodium_memzero(content->data(), content->size());
  return parsed;
}

}  // namespace cmesh
