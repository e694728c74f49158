#pragma once
/// @file
/// `redis_reply`: one reply of a Redis server (RESP2), as an owning value.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse {

/// The RESP2 kinds of reply a Redis server sends.
enum class redis_reply_kind {
    nil,      ///< Null bulk string or null array.
    string,   ///< Bulk string: `str` holds the bytes (binary-safe).
    status,   ///< Simple string such as `OK` or `PONG`: `str` holds it.
    error,    ///< Error reply such as `ERR ...` or `WRONGPASS ...`: `str` holds the message.
    integer,  ///< Integer: `integer` holds it.
    array,    ///< Array (multi-bulk): `elements` holds the members, in order.
};

/// One owning Redis reply.
///
/// Thread safety: a plain value; distinct objects may be used concurrently.
struct redis_reply {
    redis_reply_kind kind = redis_reply_kind::nil;  ///< Which member below carries the value.
    std::string str;                                ///< For string, status and error.
    std::int64_t integer = 0;                       ///< For integer.
    std::vector<redis_reply> elements;              ///< For array.

    /// True for a Redis error reply (`-ERR ...`).
    bool is_error() const noexcept { return kind == redis_reply_kind::error; }
    /// True for an error reply whose message starts with `prefix` (`"NOGROUP"`, `"BUSYGROUP"`).
    bool is_error(std::string_view prefix) const noexcept {
        return is_error() && std::string_view(str).substr(0, prefix.size()) == prefix;
    }
    /// True for a bulk string or a status equal to `text`.
    bool is_text(std::string_view text) const noexcept {
        return (kind == redis_reply_kind::string || kind == redis_reply_kind::status) &&
               str == text;
    }
};

}  // namespace gatehouse
