#pragma once
// The library's internal spellings of the public `redis_reply`
// (include/gatehouse/redis_reply.hpp), and the copy out of hiredis's reply type.

#include "gatehouse/redis_reply.hpp"

// hiredis's reply type, forward-declared so that this header does not pull hiredis into every
// file that handles a reply (hiredis's own header is included by connection.cpp only).
struct redisReply;

namespace gatehouse::detail::redis {

using reply_kind = redis_reply_kind;
using reply = redis_reply;

/// Deep-copies a hiredis reply (any nesting) into an owning `reply`; the caller still frees
/// `r` with `freeReplyObject`. Unknown reply types (none exist in hiredis 0.14) become nil.
reply from_hiredis(const ::redisReply& r);

}  // namespace gatehouse::detail::redis
