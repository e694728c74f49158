#pragma once
// What an account request must hold (docs/protocol.md section 2's field rules: username, email,
// password and display-name limits, JSON bodies) and the problem answers the account routes
// share. Pure functions: they run on the gateway's I/O thread, before a job is queued.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "gatehouse/http.hpp"

namespace gatehouse::detail {

// docs/protocol.md section 2's limits.
inline constexpr std::size_t username_min = 3, username_max = 32;
inline constexpr std::size_t password_min = 8, password_max = 128;
inline constexpr std::size_t email_max = 254;
inline constexpr std::size_t display_name_max = 32;
inline constexpr std::size_t preferences_max_bytes = std::size_t{16} * 1024;

// Code points of valid UTF-8 (nlohmann validated it): bytes that do not continue a sequence.
std::size_t code_points(std::string_view s) noexcept;

bool valid_username(std::string_view u) noexcept;

// One `@` with something on each side, no whitespace or control characters: deliverability is
// the mail system's business, not the gateway's.
bool valid_email(std::string_view e) noexcept;

bool valid_password(std::string_view p) noexcept;

// A login name longer than any username or email can be (an email is anything with an `@`).
bool within_login_name_length(std::string_view name) noexcept;

// The body as a JSON object, or the response to send instead: 415 for another media type,
// 400 `invalid_json` when it does not parse or nests too deeply, 400 `invalid_request` when it
// is not an object.
std::optional<http_response> parse_object(const http_request& request, nlohmann::json& out,
                                          bool merge_patch_allowed = false);

// A required string member, or nullopt (absent or not a string).
std::optional<std::string> string_member(const nlohmann::json& o, const char* name);

// 400 `invalid_request`.
http_response invalid(std::string_view detail);

// One answer for an unknown name and a wrong password (docs/accounts.md, "Login and lockout").
http_response invalid_credentials();

// 503 `store_unavailable`.
http_response store_failed();

// 429 with `code` and a Retry-After of `retry_after` (at least 1 s).
http_response too_many(std::string_view code, std::chrono::seconds retry_after,
                       std::string_view detail);

// 503 `busy` with `Retry-After: 1`: no worker can take the request soon enough.
http_response busy();

// 404: an access token of a player the store has no account for.
http_response no_account();

}  // namespace gatehouse::detail
