#pragma once
/// @file
/// Codec errors as `std::error_code`: `client::status` in `codec_category()`, and the
/// mapping onto the protocol's error codes.
///
/// Thread safety: the categories are immutable singletons; every function here is safe to
/// call from any thread.

#include <string_view>
#include <system_error>

#include "gatehouse/client/status.hpp"

namespace gatehouse {

/// The category of `client::status` values; its name is `"gatehouse.codec"`.
const std::error_category& codec_category() noexcept;

/// The docs/protocol.md error code to send a client whose message failed to decode with `ec`:
/// `"invalid_frame"` or `"invalid_envelope"` for codec errors; `"invalid_frame"` for an
/// error of any other category (a custom codec's own codes, say). Empty for no error.
std::string_view protocol_error_code(const std::error_code& ec) noexcept;

namespace client {
/// Makes an error code of `s` in `codec_category()`; found by argument-dependent lookup.
std::error_code make_error_code(status s) noexcept;
}  // namespace client

}  // namespace gatehouse

template <>
struct std::is_error_code_enum<gatehouse::client::status> : std::true_type {};
