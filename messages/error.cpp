#include "messages/error.hpp"

namespace cmesh {

const char* errc_name(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::malformed: return "malformed";
    case errc::truncated: return "truncated";
    case errc::too_large: return "too_large";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unknown_type: return "unknown_type";
    case errc::bad_signature: return "bad_signature";
    case errc::auth_failed: return "auth_failed";
    case errc::identity_mismatch: return "identity_mismatch";
    case errc::replayed: return "replayed";
    case errc::io_error: return "io_error";
    case errc::permission_denied: return "permission_denied";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::invalid_argument: return "invalid_argument";
    case errc::timeout: return "timeout";
    case errc::unavailable: return "unavailable";
    case errc::storage_error: return "storage_error";
    case errc::closed: return "closed";
  }
  return "unknown_error";
}

std::string error::describe() const {
  std::string out = errc_name(code);
  if (!message.empty()) {
    out += ": ";
    out += message;
  }
  return out;
}

}  // namespace cmesh
