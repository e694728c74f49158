#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// hiredis's reply type, forward-declared so that this header does not pull hiredis into every
// file that handles a reply (hiredis's own header is included by connection.cpp only).
struct redisReply;

namespace gatehouse::detail::redis {

/// The RESP2 kinds of reply a Redis server sends.
enum class reply_kind {
    nil,      ///< Null bulk string or null array.
    string,   ///< Bulk string: `str` holds the bytes (binary-safe).
    status,   ///< Simple string such as `OK` or `PONG`: `str` holds it.
    error,    ///< Error reply such as `ERR ...` or `WRONGPASS ...`: `str` holds the message.
    integer,  ///< Integer: `integer` holds it.
    array,    ///< Array (multi-bulk): `elements` holds the members, in order.
};

/// One owning Redis reply, independent of hiredis's allocation.
///
/// Thread safety: a plain value; distinct objects may be used concurrently.
struct reply {
    reply_kind kind = reply_kind::nil;  ///< Which of the members below carries the value.
    std::string str;                    ///< For string, status and error.
    std::int64_t integer = 0;           ///< For integer.
    std::vector<reply> elements;        ///< For array.

    /// True for a Redis error reply (`-ERR ...`).
    bool is_error() const noexcept { return kind == reply_kind::error; }
    /// True for a bulk string or a status equal to `text`.
    bool is_text(std::string_view text) const noexcept {
        return (kind == reply_kind::string || kind == reply_kind::status) && str == text;
    }
};

/// Deep-copies a hiredis reply (any nesting) into an owning `reply`; the caller still frees
/// `r` with `freeReplyObject`. Unknown reply types (none exist in hiredis 0.14) become nil.
reply from_hiredis(const ::redisReply& r);

}  // namespace gatehouse::detail::redis
