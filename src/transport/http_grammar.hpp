#pragma once
// The grammar checks of RFC 9110 and RFC 9112 that the request parser applies to a whole
// element once it has its bytes: a token, a field value, a Host value, a chunk's extensions.
// Pure functions of their input, no allocation.

#include <string_view>

namespace gatehouse::detail {

// token = 1*tchar (RFC 9110 5.6.2).
bool is_token(std::string_view s) noexcept;

// field-value (RFC 9110 5.5): VCHAR, obs-text, SP and HTAB. CR, LF and NUL are named there as
// the characters a recipient must reject or replace; every other CTL and DEL is refused too.
bool is_field_value(std::string_view s) noexcept;

// Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): the characters of a reg-name,
// an IP literal and a port. No userinfo ("@"), no path, no whitespace.
bool is_host_value(std::string_view s) noexcept;

// What follows a chunk size on its line, possibly nothing: chunk-ext = *( BWS ";" BWS
// chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 7.1.1), chunk-ext-val = token /
// quoted-string (RFC 9110 5.6.4).
bool is_chunk_ext(std::string_view s) noexcept;

}  // namespace gatehouse::detail
