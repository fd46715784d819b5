// base58btc: the Bitcoin alphabet base58 used by multibase ('z' prefix) and did:key.
// Leading zero bytes encode as leading '1' characters and decode back to zero bytes.
// Quadratic in the input length: meant for keys and identifiers, not bulk data.
// Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "messages/error.hpp"
#include "messages/node_id.hpp"

namespace cmesh {

// Encodes size bytes at data (data may be null if size == 0). Never fails.
std::string base58btc_encode(const uint8_t* data, size_t size);

// Decodes base58btc text. Errors: malformed for a character outside the alphabet (the message
// names it and its position). The empty string decodes to no bytes.
result<bytes> base58btc_decode(std::string_view text);

}  // namespace cmesh
