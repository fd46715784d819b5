// Every limit in one place, each with the reason for its value (TigerBeetle style).
// Config loading validates user overrides against these bounds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cmesh::limits {

// ---- wire -----------------------------------------------------------------------------------
// Largest encoded envelope. 1 MiB keeps a single frame's decrypt buffer small and bounds the
// damage one hostile peer can do per frame; bulk data will be chunked by its service.
inline constexpr size_t envelope_bytes_max = 1u << 20;
// Largest frame body on the wire: an envelope plus the AEAD tag.
inline constexpr size_t frame_bytes_max = envelope_bytes_max + 64;
// Handshake messages are small and fixed-shape; anything longer is hostile.
inline constexpr size_t handshake_message_bytes_max = 1024;
// A node address string such as "127.0.0.1:7001" or "sim:42".
inline constexpr size_t address_chars_max = 255;
// Nesting depth accepted when decoding msgpack (protects the stack against hostile input).
inline constexpr size_t decode_depth_max = 16;
// Elements in any one decoded array or map (protects memory against hostile length prefixes).
inline constexpr size_t decode_elements_max = 1u << 16;

// ---- transport ------------------------------------------------------------------------------
// A connection must finish its handshake within this time or it is closed (slowloris defence).
inline constexpr uint32_t handshake_timeout_ms = 5000;
// Frames waiting for a peer (before its connection is up, or while the socket is backed up).
// Past either bound new frames for that peer are dropped and counted ("tail drop").
inline constexpr size_t peer_queue_frames_max = 4096;
inline constexpr size_t peer_queue_bytes_max = 16u << 20;
// Bytes handed to the socket but not yet written; above this we queue instead of writing.
inline constexpr size_t socket_unacked_bytes_max = 4u << 20;
// Reconnect backoff: doubles from min to max, with +-25% seeded jitter; gives up after attempts.
inline constexpr uint32_t dial_backoff_ms_min = 100;
inline constexpr uint32_t dial_backoff_ms_max = 5000;
inline constexpr uint32_t dial_attempts_max = 8;
// Simultaneous connections; a node with more is being flooded.
inline constexpr size_t connections_max = 1024;

// ---- peer protocol (first protocol) ----------------------------------------------------------
// Peers a node keeps. Bounded so memory per node is O(1) at 10,000 simulated nodes.
inline constexpr size_t peer_table_max = 64;
// Entries in one peer-list message: enough to spread, small enough to stay one short frame.
inline constexpr size_t peer_list_entries_max = 16;

// ---- storage --------------------------------------------------------------------------------
// Named databases per LMDB environment (mdb_env_set_maxdbs must be set before open).
inline constexpr unsigned store_databases_max = 32;
// Default map size for a node (real mode). LMDB reserves address space, not disk.
inline constexpr size_t store_map_bytes_default = size_t{1} << 30;
// Simulated nodes are many; each gets a small map.
inline constexpr size_t store_map_bytes_sim = size_t{8} << 20;

// ---- simulator ------------------------------------------------------------------------------
inline constexpr uint32_t sim_nodes_max = 100000;

}  // namespace cmesh::limits
