#pragma once
/// @file
/// The envelope limits of docs/protocol.md section 3, shared by every codec.

#include <cstddef>

namespace gatehouse::client {

/// Longest envelope `type`, in characters (always ASCII: `[A-Za-z0-9_.:-]`).
inline constexpr std::size_t max_type_length = 64;

/// Longest `correlation_id`, in Unicode characters (code points).
inline constexpr std::size_t max_correlation_id_chars = 128;

/// Longest `correlation_id` in UTF-8 bytes (128 characters of at most 4 bytes).
inline constexpr std::size_t max_correlation_id_bytes = 4 * max_correlation_id_chars;

/// Longest `update_id`, in characters (always visible ASCII, `!` to `~`).
inline constexpr std::size_t max_update_id_length = 64;

/// The length of a `traceparent` (W3C Trace Context, `00-<32 hex>-<16 hex>-<2 hex>`).
inline constexpr std::size_t traceparent_length = 55;

/// Deepest nesting of maps and arrays accepted in a frame, the envelope itself counting
/// as the first level. Deeper frames are refused with `status::too_deep`, so no decoder
/// recursion or stack can be driven by input.
inline constexpr std::size_t max_nesting_depth = 64;

}  // namespace gatehouse::client
