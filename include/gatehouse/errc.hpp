#pragma once
/// @file
/// `gatehouse::errc`: the library's runtime errors, as `std::error_code`s.
///
/// Thread safety: the category is an immutable singleton, safe to use from any thread.

#include <system_error>

namespace gatehouse {

/// Runtime errors of the library (codec errors proper are `client::status`, in
/// `codec_category()`).
enum class errc {
    unknown_codec = 1,              ///< No codec is registered under that name.
    codec_already_registered = 2,   ///< A codec with that name is registered already.
    invalid_codec_name = 3,         ///< A codec name outside 1-32 of `[a-z0-9_.-]`.
    payload_not_representable = 4,  ///< The payload cannot be carried in the target format.
};

/// The category of `errc` values; its name is `"gatehouse"`.
const std::error_category& gatehouse_category() noexcept;

/// Makes an error code of `e` in `gatehouse_category()`.
std::error_code make_error_code(errc e) noexcept;

}  // namespace gatehouse

template <>
struct std::is_error_code_enum<gatehouse::errc> : std::true_type {};
